//! The dispatcher: runs one decoded call and returns its outcome; and the
//! policy it applies (`[commands] deny`, gates).
//!
//! Architecture invariant: this is the only place that decides whether a
//! command may run. An unknown command is answered `UnknownCommand`; a denied
//! one, or one a closed gate holds, `Disabled` (the message empty for deny,
//! the gate's reason for a gate); the parser decides how each reads on the
//! wire. It never logs a call's arguments or an outcome's value or message:
//! they carry passwords, keys and ciphertexts.
//!
//! Each call leaves one log line: at debug for a successful query (see
//! [`QUERIES`]), at info for anything else, so that a host's polling does not
//! fill the journal while every change to the system and every failure is
//! still there. A command name is logged whole up to 64 characters.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nova_agent_plugin_api::ffi::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use nova_agent_plugin_api::ffi::{
    ExchangeBox, FfiCall, FfiCall_TO, FfiError, FfiOutcome, FfiParsedCall, FfiResult,
};
use nova_agent_plugin_api::ErrorKind;

use crate::plugins::gates::Gates;
use crate::plugins::instance::CommandEntry;
use crate::plugins::registry::{Asleep, Provided, Table};
use crate::plugins::wake::Waker;

/// Who may run: `[commands] deny`, and the state of every gate (see
/// `gates`). The gates' declarations come from the serving table.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    deny: BTreeSet<String>,
    gates: Gates,
}

impl Policy {
    /// Gates kept in memory only.
    #[cfg(test)]
    pub(crate) fn new(deny: BTreeSet<String>) -> Policy {
        Policy::with_gates(deny, Gates::default())
    }

    pub(crate) fn with_gates(deny: BTreeSet<String>, gates: Gates) -> Policy {
        Policy { deny, gates }
    }

    /// Some gate is closed: the agent writes nothing of its own.
    pub(crate) fn any_gate_closed(&self) -> bool {
        self.gates.any_closed()
    }

    /// The names of the closed gates (declared by a loaded plugin or not).
    pub(crate) fn closed_gates(&self) -> Vec<String> {
        self.gates.closed_names()
    }

    /// Why `command` may not run under `table` now: `Some("")` when denied,
    /// `Some(reason)` when a closed gate holds it.
    pub(crate) fn refusal(&self, table: &Table, command: &str) -> Option<String> {
        if self.deny.contains(command) {
            return Some(String::new());
        }
        if table.gates.is_empty() || !self.gates.any_closed() {
            return None;
        }
        table
            .gates
            .values()
            .find(|gate| {
                self.gates.is_closed(&gate.name) && !gate.allow.iter().any(|c| c == command)
            })
            .map(|gate| gate.reason.clone())
    }

    /// Closes or opens a gate `table` declares.
    pub(crate) fn set_gate(&self, table: &Table, gate: &str, closed: bool) -> Result<(), String> {
        if !table.gates.contains_key(gate) {
            return Err(format!("no loaded plugin declares gate '{gate}'"));
        }
        self.gates.set(gate, closed)
    }

    /// Whether `gate` is declared in `table` and closed.
    pub(crate) fn gate_closed(&self, table: &Table, gate: &str) -> bool {
        table.gates.contains_key(gate) && self.gates.is_closed(gate)
    }
}

/// One request's context, as the command sees it: its channel, and
/// metadata through its exchange.
pub(crate) struct RequestContext<'a> {
    pub(crate) channel: &'a str,
    pub(crate) exchange: &'a ExchangeBox,
}

fn panicked() -> FfiError {
    FfiError::Panicked("the agent panicked while serving a metadata request".into())
}

// These run inside a command's call stack, behind `extern "C"` frames: a
// panic here would abort the agent.
impl FfiCall for RequestContext<'_> {
    fn channel(&self) -> RString {
        self.channel.into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>> {
        catch_unwind(AssertUnwindSafe(|| self.exchange.metadata_read(key)))
            .unwrap_or_else(|_| RResult::RErr(panicked()))
    }

    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>> {
        catch_unwind(AssertUnwindSafe(|| self.exchange.metadata_list(dir)))
            .unwrap_or_else(|_| RResult::RErr(panicked()))
    }
}

/// Runs calls against one table snapshot.
pub(crate) struct Dispatcher<'a> {
    pub(crate) table: &'a Table,
    pub(crate) policy: &'a Policy,
    /// Loads the plugin of a command that is installed but not loaded.
    pub(crate) waker: &'a Waker,
    pub(crate) context: RequestContext<'a>,
}

/// An outcome the agent decides itself.
pub(crate) fn agent_outcome(kind: ErrorKind, message: &str) -> FfiOutcome {
    FfiOutcome {
        kind: kind.to_u8(),
        text: message.into(),
        success_response: true,
    }
}

/// The commands that only read, and that hosts poll (libvirt pings, syncs
/// and gathers guest information every few seconds; Nova asks `version`):
/// their successes are logged at debug. So is every QGA `guest-get-*`.
/// Anything else, a vendor's command included, is logged at info.
const QUERIES: [&str; 9] = [
    "version",
    "features",
    "guest-ping",
    "guest-sync",
    "guest-sync-delimited",
    "guest-info",
    "guest-fsfreeze-status",
    "guest-exec-status",
    "guest-network-get-interfaces",
];

/// Whether a call of `command` answered `outcome` is routine: a query that
/// succeeded.
fn routine(command: &str, outcome: &FfiOutcome) -> bool {
    outcome.kind == 0 && (QUERIES.contains(&command) || command.starts_with("guest-get-"))
}

/// `name` as the log shows it (an unknown name is the request's, of any
/// size).
use nova_agent_support::echo::echoed as shown;

/// The one line a call leaves.
fn log_answer(
    channel: &str,
    plugin: Option<&str>,
    name: &str,
    outcome: &FfiOutcome,
    elapsed: Duration,
) {
    let command = shown(name);
    let command = command.as_ref();
    let label = label(outcome);
    if routine(name, outcome) {
        tracing::debug!(
            channel,
            plugin,
            command,
            "command {command:?} answered {label} in {elapsed:.1?}"
        );
    } else {
        tracing::info!(
            channel,
            plugin,
            command,
            "command {command:?} answered {label} in {elapsed:.1?}"
        );
    }
}

/// How an outcome reads in the log: `ok`, or its kind.
pub(crate) fn label(outcome: &FfiOutcome) -> &'static str {
    if outcome.kind == 0 {
        return "ok";
    }
    match ErrorKind::from_u8(outcome.kind) {
        ErrorKind::UnknownCommand => "unknown-command",
        ErrorKind::Disabled => "disabled",
        ErrorKind::BadArguments => "bad-arguments",
        ErrorKind::NotFound => "not-found",
        ErrorKind::Panicked => "panicked",
        _ => "failed",
    }
}

impl Dispatcher<'_> {
    /// Runs `call` if the policy lets it, and counts it against the
    /// command's plugin; a command whose plugin is installed but not loaded
    /// loads it first (unless the policy refuses the call).
    pub(crate) fn dispatch(&self, call: &FfiParsedCall) -> FfiOutcome {
        let name = call.command.as_str();
        let started = Instant::now();
        if let Some(command) = self.table.commands.get(name) {
            return self.run(self.table, command, call, started);
        }
        let Some(asleep) = self.table.asleep.get(name) else {
            return self.answer(
                None,
                name,
                agent_outcome(ErrorKind::UnknownCommand, ""),
                started,
            );
        };
        let plugin = Some(asleep.plugin.as_str());
        if let Some(reason) = self.policy.refusal(self.table, name) {
            return self.answer(
                plugin,
                name,
                agent_outcome(ErrorKind::Disabled, &reason),
                started,
            );
        }
        let woken = match &asleep.error {
            Some(error) => Err(cannot_load(&asleep.plugin, error)),
            None => self.waker.wake(&asleep.plugin),
        };
        let table = match woken {
            Ok(table) => table,
            Err(message) => {
                let outcome = agent_outcome(ErrorKind::Failed, &message);
                return self.answer(plugin, name, outcome, started);
            }
        };
        if let Some(command) = table.commands.get(name) {
            return self.run(&table, command, call, started);
        }
        // It failed to load, or its file changed since it was inspected.
        let outcome = match table.asleep.get(name) {
            Some(Asleep {
                plugin,
                error: Some(error),
            }) => agent_outcome(ErrorKind::Failed, &cannot_load(plugin, error)),
            Some(asleep) => agent_outcome(
                ErrorKind::Failed,
                &format!("plugin '{}' is not loaded", asleep.plugin),
            ),
            None => agent_outcome(ErrorKind::UnknownCommand, ""),
        };
        self.answer(plugin, name, outcome, started)
    }

    /// Runs `command`, loaded in `table`, if the policy lets it.
    fn run(
        &self,
        table: &Table,
        command: &Provided<CommandEntry>,
        call: &FfiParsedCall,
        started: Instant,
    ) -> FfiOutcome {
        let name = call.command.as_str();
        let plugin = command.plugin();
        let mut outcome = match self.policy.refusal(table, name) {
            Some(reason) => agent_outcome(ErrorKind::Disabled, &reason),
            None => {
                let context = FfiCall_TO::from_ptr(&self.context, TD_Opaque);
                let arguments = call.arguments.as_rstr();
                let outcome = command.object.object.run(context, arguments);
                command.instance.count(outcome.kind == 0);
                outcome
            }
        };
        if outcome.kind == ErrorKind::Panicked.to_u8() {
            tracing::error!(
                channel = self.context.channel,
                plugin,
                command = name,
                "command {name:?} panicked: {}",
                outcome.text
            );
            outcome.text =
                format!("command '{name}' failed unexpectedly; see the agent's log").into();
        }
        self.answer(Some(plugin), name, outcome, started)
    }

    fn answer(
        &self,
        plugin: Option<&str>,
        name: &str,
        outcome: FfiOutcome,
        started: Instant,
    ) -> FfiOutcome {
        log_answer(
            self.context.channel,
            plugin,
            name,
            &outcome,
            started.elapsed(),
        );
        outcome
    }
}

/// What a command answers while its plugin cannot be loaded.
fn cannot_load(plugin: &str, error: &str) -> String {
    format!("plugin '{plugin}' cannot be loaded: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{self, ToyAgent};
    use nova_agent_plugin_api::Gate;

    fn table_with_gate() -> Table {
        let mut table = Table::default();
        let gate = Gate::new("frozen")
            .reason("the agent is in frozen state")
            .allow(["guest-thaw", "guest-ping"]);
        table.gates.insert(gate.name.clone(), gate);
        table
    }

    #[test]
    fn deny_and_closed_gates_refuse_with_their_reason() {
        let table = table_with_gate();
        let policy = Policy::new(["password".to_owned()].into());
        assert_eq!(policy.refusal(&table, "password"), Some(String::new()));
        assert_eq!(policy.refusal(&table, "version"), None);
        policy.set_gate(&table, "frozen", true).unwrap();
        assert!(policy.gate_closed(&table, "frozen"));
        assert_eq!(
            policy.refusal(&table, "version").as_deref(),
            Some("the agent is in frozen state")
        );
        assert_eq!(policy.refusal(&table, "guest-thaw"), None);
        // Deny wins over a gate that allows the command.
        assert_eq!(policy.refusal(&table, "password"), Some(String::new()));
        policy.set_gate(&table, "frozen", false).unwrap();
        assert_eq!(policy.refusal(&table, "version"), None);
    }

    #[test]
    fn gate_state_outlives_its_declaration() {
        let table = table_with_gate();
        let policy = Policy::default();
        policy.set_gate(&table, "frozen", true).unwrap();
        // A registry without the declaring plugin: nothing is held.
        let empty = Table::default();
        assert!(!policy.gate_closed(&empty, "frozen"));
        assert_eq!(policy.refusal(&empty, "version"), None);
        // The plugin is back (a new generation): the gate is still closed.
        assert!(policy.gate_closed(&table, "frozen"));
    }

    #[test]
    fn an_undeclared_gate_cannot_be_set() {
        let policy = Policy::default();
        assert_eq!(
            policy.set_gate(&Table::default(), "frozen", true),
            Err("no loaded plugin declares gate 'frozen'".to_owned())
        );
    }

    #[test]
    fn outcomes_are_labelled_by_kind() {
        assert_eq!(
            label(&agent_outcome(ErrorKind::UnknownCommand, "")),
            "unknown-command"
        );
        assert_eq!(label(&agent_outcome(ErrorKind::Panicked, "x")), "panicked");
        let ok = FfiOutcome {
            kind: 0,
            text: "\"2.0.0\"".into(),
            success_response: true,
        };
        assert_eq!(label(&ok), "ok");
    }

    fn run(agent: &ToyAgent, command: &str, arguments: &str) -> FfiOutcome {
        let table = agent.serving.load_full();
        let exchange = &agent.registry.exchanges["queue"].object;
        let waker = Waker::default();
        let dispatcher = Dispatcher {
            table: &table,
            policy: &agent.policy,
            waker: &waker,
            context: RequestContext {
                channel: "queue+lines",
                exchange,
            },
        };
        let call = FfiParsedCall {
            command: command.into(),
            arguments: arguments.into(),
            context: "".into(),
        };
        dispatcher.dispatch(&call)
    }

    fn error(kind: ErrorKind, message: &str) -> FfiOutcome {
        agent_outcome(kind, message)
    }

    #[test]
    fn the_dispatcher_runs_what_the_policy_lets_through() {
        let agent = ToyAgent::new(&testing::config("lines", &["big"]));
        let ok = run(&agent, "echo", "[1]");
        assert_eq!(ok.kind, 0);
        assert_eq!(ok.text.as_str(), r#"["queue+lines","[1]"]"#);
        assert!(ok.success_response);
        assert!(!run(&agent, "quiet", "null").success_response);

        assert_eq!(
            run(&agent, "nope", "null"),
            error(ErrorKind::UnknownCommand, "")
        );
        assert_eq!(run(&agent, "big", "3"), error(ErrorKind::Disabled, ""));

        assert_eq!(run(&agent, "freeze", "true").kind, 0);
        assert_eq!(
            run(&agent, "quiet", "null"),
            error(ErrorKind::Disabled, "the agent is frozen")
        );
        assert_eq!(run(&agent, "echo", "2").kind, 0);
        assert_eq!(run(&agent, "freeze", "false").kind, 0);
        assert_eq!(run(&agent, "quiet", "null").kind, 0);
    }

    #[test]
    fn a_long_unknown_name_is_logged_by_its_first_64_characters() {
        let agent = ToyAgent::new(&testing::config("lines", &[]));
        let kept = "n".repeat(nova_agent_support::echo::ECHOED);
        let name = format!("{kept}{}", "x".repeat(1 << 20));
        let log = nova_agent_support::testing::captured_log(|| {
            assert_eq!(
                run(&agent, &name, "null"),
                error(ErrorKind::UnknownCommand, "")
            );
        });
        assert!(log.len() < 1000, "{} bytes logged", log.len());
        assert!(
            log.contains(&format!("command \"{kept}...\" answered unknown-command")),
            "{log}"
        );
        assert!(log.contains(&format!("command=\"{kept}...\"")), "{log}");
        assert_eq!(shown(&kept), kept);
        assert_eq!(
            shown(&format!(
                "{}x",
                "\u{e9}".repeat(nova_agent_support::echo::ECHOED)
            ))
            .chars()
            .count(),
            67
        );
    }

    #[test]
    fn successful_queries_are_logged_at_debug_the_rest_at_info() {
        let agent = ToyAgent::new(&testing::config("lines", &["big"]));
        let ok = |kind| FfiOutcome {
            kind,
            text: "{}".into(),
            success_response: true,
        };
        let log = nova_agent_support::testing::captured_log(|| {
            run(&agent, "echo", "1");
            run(&agent, "big", "1");
            log_answer("c", Some("core"), "version", &ok(0), Duration::ZERO);
            log_answer(
                "c",
                Some("qga-core"),
                "guest-get-time",
                &ok(0),
                Duration::ZERO,
            );
            let failed = agent_outcome(ErrorKind::Failed, "no");
            log_answer(
                "c",
                Some("qga-core"),
                "guest-get-time",
                &failed,
                Duration::ZERO,
            );
        });
        let level = |line: &str| {
            log.lines()
                .find(|l| l.contains(line))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or_else(|| panic!("no {line:?} in {log}"))
                .to_owned()
        };
        assert_eq!(level("command \"echo\" answered ok"), "INFO");
        assert_eq!(level("command \"big\" answered disabled"), "INFO");
        assert_eq!(level("command \"version\" answered ok"), "DEBUG");
        assert_eq!(level("command \"guest-get-time\" answered ok"), "DEBUG");
        assert_eq!(level("command \"guest-get-time\" answered failed"), "INFO");
        for query in [
            "guest-ping",
            "guest-sync-delimited",
            "guest-network-get-interfaces",
        ] {
            assert!(routine(query, &ok(0)), "{query}");
        }
        for change in [
            "password",
            "keyinit",
            "resetnetwork",
            "injectfile",
            "agentupdate",
            "guest-set-user-password",
            "guest-fsfreeze-freeze",
            "guest-shutdown",
            "guest-file-read",
            "guest-exec",
        ] {
            assert!(!routine(change, &ok(0)), "{change}");
        }
    }

    #[test]
    fn a_panicking_command_is_answered_without_its_panic_text() {
        let agent = ToyAgent::new(&testing::config("lines", &[]));
        let outcome = run(&agent, "panics", "null");
        assert_eq!(
            outcome,
            error(
                ErrorKind::Panicked,
                "command 'panics' failed unexpectedly; see the agent's log"
            )
        );
        let toy = &agent.registry.table.commands["panics"].instance;
        assert_eq!(toy.requests(), (1, 1));
        run(&agent, "echo", "1");
        // Refused calls never reach the plugin, and are not counted.
        run(&agent, "nope", "1");
        assert_eq!(toy.requests(), (2, 1));
    }
}
