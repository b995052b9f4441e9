//! One initialised generation of one plugin: the objects its `init` returned,
//! where its code came from, and what it has served.
//!
//! A generation is shared (`Arc`) by every registry that serves it, every
//! request that holds such a registry, and every channel running its
//! exchange. It is retired when the last of them lets go: its `Drop` runs the
//! plugin's `shutdown`, then drops its objects.
//!
//! Architecture invariant: `shutdown` runs at most once per instance (it is
//! the `Drop`), and never while a request may be inside its code (a request
//! holds a reference for its whole life, and a channel holds its exchange's
//! until its workers are joined).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nova_agent_plugin_api::ffi::abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use nova_agent_plugin_api::ffi::{
    CommandBox, ExchangeBox, HostBox, LifecycleBox, ParserBox, PluginRootRef,
};
use nova_agent_plugin_api::manifest::Declared;
use nova_agent_plugin_api::Gate;
use nova_agent_support::sync::{lock, wait_timeout};

use crate::plugins::isolated;
use crate::plugins::loader::{valid_name, Manifest, Opened, Origin};

/// A command as its plugin provides it.
pub(crate) struct CommandEntry {
    /// `false`: a success is not answered (QGA's `guest-shutdown`).
    pub(crate) success_response: bool,
    pub(crate) object: CommandBox,
}

pub(crate) struct Instance {
    /// The module it came from (never unloaded).
    pub(crate) root: PluginRootRef,
    pub(crate) manifest: Manifest,
    pub(crate) exchanges: Vec<(String, Arc<ExchangeBox>)>,
    pub(crate) parsers: Vec<(String, Arc<ParserBox>)>,
    pub(crate) commands: Vec<(String, Arc<CommandEntry>)>,
    /// The gates it declares; the agent keeps their state.
    pub(crate) gates: Vec<Gate>,
    pub(crate) origin: Origin,
    /// 1 for the first load of this plugin name in this process.
    pub(crate) generation: u64,
    pub(crate) loaded_at: SystemTime,
    served: AtomicU64,
    failed: AtomicU64,
    lifecycle: LifecycleBox,
    retired: Arc<Retired>,
    /// The child process its commands run in (`[isolation] process`).
    pub(crate) isolation: Option<Arc<isolated::Supervisor>>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Runs the plugin's `init` with its config table (as JSON), here or,
    /// with `isolation`, in a child process of its own, and checks the names
    /// of what it provides. The error is one line.
    pub(crate) fn init(
        opened: Opened,
        generation: u64,
        config_json: &str,
        host: HostBox,
        isolation: Option<&isolated::Settings>,
    ) -> Result<Instance, String> {
        let Opened {
            root,
            manifest,
            origin,
        } = opened;
        let (provided, supervisor) = match (isolation, origin.descriptor) {
            (None, _) => match (root.init())(host, RStr::from_str(config_json)) {
                RResult::ROk(provided) => (provided, None),
                RResult::RErr(e) => return Err(format!("init failed: {e}")),
            },
            (Some(settings), Some(descriptor)) => {
                let (provided, supervisor) = isolated::start(
                    &manifest.name,
                    &origin.file,
                    descriptor,
                    config_json,
                    settings,
                    host,
                )?;
                (provided, Some(supervisor))
            }
            (Some(_), None) => return Err("cannot run isolated: its descriptor is gone".into()),
        };
        let gates: Vec<Gate> = provided.gates.iter().map(Gate::from).collect();
        let commands = provided.commands.iter().map(|c| c.name.to_string());
        let provided_names = [
            names(&provided.exchanges),
            names(&provided.parsers),
            commands.collect(),
            gates.iter().map(|g| g.name.clone()).collect(),
        ];
        let checked = KINDS
            .iter()
            .zip(&provided_names)
            .try_for_each(|(kind, names)| check_names(kind, names.clone()))
            .and_then(|()| match &manifest.declared {
                Some(declared) => check_declared(declared, &provided_names),
                None => Ok(()),
            });
        if let Err(reason) = checked {
            provided.lifecycle.shutdown();
            return Err(reason);
        }
        Ok(Instance {
            root,
            manifest,
            exchanges: objects(provided.exchanges),
            parsers: objects(provided.parsers),
            commands: provided
                .commands
                .into_iter()
                .map(|c| {
                    let entry = CommandEntry {
                        success_response: c.success_response,
                        object: c.object,
                    };
                    (c.name.into_string(), Arc::new(entry))
                })
                .collect(),
            gates,
            origin,
            generation,
            loaded_at: SystemTime::now(),
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lifecycle: provided.lifecycle,
            retired: Arc::default(),
            isolation: supervisor,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Counts one request this instance's code handled.
    pub(crate) fn count(&self, ok: bool) {
        self.served.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(served, failed)`.
    pub(crate) fn requests(&self) -> (u64, u64) {
        (
            self.served.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// What tells when this instance has been retired (its `shutdown` has
    /// returned), for whoever must wait for that.
    pub(crate) fn retirement(&self) -> Retirement {
        Retirement(Arc::clone(&self.retired))
    }

    /// The names of what it provides, in the order `init` gave them:
    /// exchanges, parsers, commands.
    pub(crate) fn provided(&self) -> [Vec<String>; 3] {
        fn names<T>(list: &[(String, T)]) -> Vec<String> {
            list.iter().map(|(name, _)| name.clone()).collect()
        }
        [
            names(&self.exchanges),
            names(&self.parsers),
            names(&self.commands),
        ]
    }
}

impl Drop for Instance {
    /// The last reference is gone: no request is inside its code and its
    /// exchanges have stopped. Its objects are dropped after this, in the
    /// plugin's code.
    fn drop(&mut self) {
        tracing::debug!(
            plugin = %self.manifest.name,
            "shutting down generation {}",
            self.generation
        );
        self.lifecycle.shutdown();
        *lock(&self.retired.done) = true;
        self.retired.changed.notify_all();
    }
}

#[derive(Default)]
struct Retired {
    done: Mutex<bool>,
    changed: Condvar,
}

/// Waits for one instance's retirement without keeping it alive.
pub(crate) struct Retirement(Arc<Retired>);

impl Retirement {
    /// Blocks until the instance has been retired or `timeout` passed;
    /// `true` once retired.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = lock(&self.0.done);
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = wait_timeout(&self.0.changed, done, left);
        }
        true
    }
}

fn objects<T>(list: RVec<Tuple2<RString, T>>) -> Vec<(String, Arc<T>)> {
    list.into_iter()
        .map(|t| (t.0.into_string(), Arc::new(t.1)))
        .collect()
}

fn names<T>(list: &RVec<Tuple2<RString, T>>) -> Vec<String> {
    list.iter().map(|t| t.0.to_string()).collect()
}

/// The kinds of object a plugin provides, in the order of [`Declared`]'s
/// lists.
const KINDS: [&str; 4] = ["exchange", "parser", "command", "gate"];

/// What `init` provided is what the manifest section declared: the agent
/// routed requests by the declaration before the plugin was loaded.
fn check_declared(declared: &Declared, provided: &[Vec<String>; 4]) -> Result<(), String> {
    let declared = [
        &declared.exchanges,
        &declared.parsers,
        &declared.commands,
        &declared.gates,
    ];
    for ((kind, declared), provided) in KINDS.iter().zip(declared).zip(provided) {
        if let Some(extra) = provided.iter().find(|name| !declared.contains(name)) {
            return Err(format!(
                "init provided {kind} '{extra}', which its manifest does not declare; \
                 list it in export_plugin!'s provides and rebuild"
            ));
        }
        if let Some(missing) = declared.iter().find(|name| !provided.contains(name)) {
            return Err(format!(
                "its manifest declares {kind} '{missing}', which init did not provide; \
                 fix export_plugin!'s provides and rebuild"
            ));
        }
    }
    Ok(())
}

/// Every name valid and none twice.
fn check_names(kind: &str, names: Vec<String>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for name in names {
        if !valid_name(&name) {
            return Err(format!("init provided an invalid {kind} name {name:?}"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("init provided {kind} '{name}' twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{self, ffi_init, ToyAgent};

    #[test]
    fn provided_names_are_checked() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        check_names("command", names(&["version", "features"])).unwrap();
        check_names("command", names(&[])).unwrap();
        assert_eq!(
            check_names("command", names(&["version", "features", "version"])).unwrap_err(),
            "init provided command 'version' twice"
        );
        assert_eq!(
            check_names("parser", names(&["has space"])).unwrap_err(),
            "init provided an invalid parser name \"has space\""
        );
        assert!(check_names("exchange", names(&[""])).is_err());
        assert!(check_names("gate", names(&["new\nline"])).is_err());
    }

    #[test]
    fn what_init_provides_must_be_what_the_manifest_declared() {
        let declared = Declared {
            commands: vec!["version".into(), "features".into()],
            gates: vec!["frozen".into()],
            ..Declared::default()
        };
        let provided = |commands: &[&str], gates: &[&str]| {
            let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
            [Vec::new(), Vec::new(), list(commands), list(gates)]
        };
        check_declared(&declared, &provided(&["features", "version"], &["frozen"])).unwrap();
        assert_eq!(
            check_declared(
                &declared,
                &provided(&["version", "features", "extra"], &["frozen"])
            )
            .unwrap_err(),
            "init provided command 'extra', which its manifest does not declare; \
             list it in export_plugin!'s provides and rebuild"
        );
        assert_eq!(
            check_declared(&declared, &provided(&["version", "features"], &[])).unwrap_err(),
            "its manifest declares gate 'frozen', which init did not provide; \
             fix export_plugin!'s provides and rebuild"
        );
    }

    #[test]
    fn a_name_provided_twice_fails_init_in_one_line() {
        let agent = ToyAgent::new(&testing::config("lines", &[]));
        let e = testing::instance("twice", ffi_init!(testing::twice), 1, &agent.host).unwrap_err();
        assert_eq!(e, "init provided command 'echo' twice");
    }

    #[test]
    fn an_instance_is_retired_when_its_last_reference_drops() {
        let agent = ToyAgent::new(&testing::config("lines", &[]));
        let toy = Arc::clone(&agent.registry.table.commands["echo"].instance);
        assert_eq!(
            toy.provided()[2],
            ["echo", "panics", "freeze", "quiet", "big"]
        );
        let retirement = toy.retirement();
        drop(agent);
        assert!(!retirement.wait(Duration::from_millis(10)));
        let waiter = std::thread::spawn(move || retirement.wait(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        drop(toy);
        assert!(waiter.join().unwrap());
    }
}
