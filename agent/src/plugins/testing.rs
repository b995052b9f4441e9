//! Plugins for the agent's own tests, written as any plugin is (plain author
//! traits, `init` run through the export macro's guard), and loaded as the
//! pipeline loads them, without `dlopen`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use nova_agent_plugin_api::__private::{root_module, Manifest as RootManifest};
use nova_agent_plugin_api::ffi::InitFn;
use nova_agent_plugin_api::{
    Call, Command, CommandError, Decoded, Exchange, Gate, Host, Incoming, Outcome, ParsedCall,
    Parser, PluginError, Provides, StreamDecoder,
};
use nova_agent_support::sync::{lock, wait_timeout};
use serde_json::{json, Value};

use crate::config::Config;
use crate::plugins::dispatch::Policy;
use crate::plugins::host::AgentHost;
use crate::plugins::instance::Instance;
use crate::plugins::loader::{Manifest, Opened, Origin};
use crate::plugins::record::PluginRecord;
use crate::plugins::registry::{Registry, Table};

/// Sets the test binary's log subscriber before any plugin's log bridge is
/// installed (which would otherwise forward the agent's own events to
/// itself), and keeps test failures printed as usual.
fn prepare_logging() {
    crate::logging::init("off");
}

/// Initialises a plugin made of `init`, as generation `generation` of
/// plugin `name`.
pub(crate) fn instance(
    name: &'static str,
    init: InitFn,
    generation: u64,
    host: &AgentHost,
) -> Result<Arc<Instance>, String> {
    prepare_logging();
    let root = root_module(
        RootManifest {
            name,
            version: "1.0.0",
            description: "test",
        },
        init,
    );
    let opened = Opened {
        root,
        manifest: Manifest {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            description: "test".to_owned(),
            declared: None,
        },
        origin: Origin::default(),
    };
    let instance = Instance::init(opened, generation, "{}", host.to_ffi(), None);
    // The bridge's panic hook sends panics to the host's log; tests want
    // theirs on stderr.
    let _ = std::panic::take_hook();
    instance.map(Arc::new)
}

/// An `extern "C"` init for an author's `init`, as `export_plugin!` writes.
macro_rules! ffi_init {
    ($init:path) => {{
        extern "C" fn init(
            host: nova_agent_plugin_api::ffi::HostBox,
            config: nova_agent_plugin_api::ffi::abi_stable::std_types::RStr<'_>,
        ) -> nova_agent_plugin_api::ffi::FfiResult<nova_agent_plugin_api::ffi::Instance> {
            nova_agent_plugin_api::__private::run_init(host, config, $init)
        }
        init as nova_agent_plugin_api::ffi::InitFn
    }};
}
pub(crate) use ffi_init;

/// `toy`: commands `echo` (its arguments back), `panics`, `freeze` (closes
/// or opens gate `frozen`, which allows `echo`), `quiet` (no answer on
/// success), `big` (a value of the length asked); parser `lines` (framed or
/// streamed: `name arguments` per line, `ok <value>` / `err <kind>
/// <message>` back; a line `!` panics the parser); parser `framed` (no
/// streams); exchange `queue`.
pub(crate) fn toy(host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("echo", Echo)
        .command("panics", Panics)
        .command("freeze", Freeze(host))
        .command("quiet", Quiet)
        .command("big", Big)
        .parser("lines", Lines)
        .parser("framed", Framed)
        .exchange("queue", QueueExchange(Queue::shared()))
        .gate(
            Gate::new("frozen")
                .reason("the agent is frozen")
                .allow(["echo", "freeze"]),
        ))
}

/// A plugin that provides a command twice.
pub(crate) fn twice(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new().command("echo", Echo).command("echo", Echo))
}

/// A config with one channel, `queue` + `parser`, denying `deny`.
pub(crate) fn config(parser: &str, deny: &[&str]) -> Config {
    let deny: Vec<String> = deny.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        "[[channel]]\nexchange = \"queue\"\nparser = \"{parser}\"\n\
         [commands]\ndeny = [{}]\n",
        deny.join(", ")
    );
    Config::parse(&text, "test.toml").expect("a valid test config")
}

/// The toy plugin loaded as an agent serves it.
pub(crate) struct ToyAgent {
    pub(crate) registry: Registry,
    pub(crate) policy: Arc<Policy>,
    pub(crate) serving: Arc<ArcSwap<Table>>,
    pub(crate) host: AgentHost,
}

impl ToyAgent {
    pub(crate) fn new(config: &Config) -> ToyAgent {
        let policy = Arc::new(Policy::new(config.deny.clone()));
        let serving = Arc::new(ArcSwap::from_pointee(Table::default()));
        let host = AgentHost::new(
            &config.root,
            &config.state_dir,
            config.apply,
            &policy,
            &serving,
            &Arc::default(),
        );
        let toy = instance("toy", ffi_init!(toy), 1, &host).expect("the toy plugin loads");
        let registry = registry(vec![toy], config);
        serving.store(Arc::clone(&registry.table));
        ToyAgent {
            registry,
            policy,
            serving,
            host,
        }
    }
}

/// The registry of `instances`, each as if loaded from a file of its own.
pub(crate) fn registry(instances: Vec<Arc<Instance>>, config: &Config) -> Registry {
    let records = instances
        .into_iter()
        .map(|instance| {
            let mut record = PluginRecord::opened(Opened {
                root: instance.root,
                manifest: instance.manifest.clone(),
                origin: instance.origin.clone(),
            });
            record.opened = None;
            record.instance = Some(instance);
            record
        })
        .collect();
    Registry::assemble(records, BTreeMap::new(), &[], config)
}

struct Echo;

impl Command for Echo {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!([call.channel(), call.arguments()]))
    }
}

struct Panics;

impl Command for Panics {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        panic!("secret-in-panic")
    }
}

struct Freeze(Host);

impl Command for Freeze {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        self.0.set_gate("frozen", call.parse_arguments()?)?;
        Ok(Value::Null)
    }
}

struct Quiet;

impl Command for Quiet {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(Value::Null)
    }

    fn success_response(&self) -> bool {
        false
    }
}

struct Big;

impl Command for Big {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let len: usize = call.parse_arguments()?;
        Ok(json!("x".repeat(len)))
    }
}

fn decode_line(line: &[u8]) -> Decoded {
    let text = String::from_utf8_lossy(line);
    if text == "!" {
        panic!("the parser trips");
    }
    let (name, arguments) = text.split_once(' ').unwrap_or((&text, "null"));
    Decoded::Call(ParsedCall {
        command: name.to_owned(),
        arguments: arguments.to_owned(),
        context: String::new(),
    })
}

struct Lines;

impl Parser for Lines {
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded {
        match request {
            Ok(bytes) => decode_line(bytes),
            Err(reason) => Decoded::Answer(format!("unreadable {reason}\n").into()),
        }
    }

    fn encode(&self, _command: &str, _context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        let line = match &outcome.result {
            Ok(_) if !outcome.success_response => return None,
            Ok(value) => format!("ok {value}\n"),
            Err(e) => format!("err {:?} {}\n", e.kind, e.message),
        };
        Some(line.into_bytes())
    }

    fn stream_decoder(&self) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(LineStream(Vec::new())))
    }
}

/// Keeps a half-read line between chunks.
struct LineStream(Vec<u8>);

impl StreamDecoder for LineStream {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        self.0.extend_from_slice(bytes);
        let mut decoded = Vec::new();
        while let Some(end) = self.0.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=end).collect();
            decoded.push(decode_line(&line[..end]));
        }
        decoded
    }
}

struct Framed;

impl Parser for Framed {
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded {
        Lines.decode(request)
    }

    fn encode(&self, command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        Lines.encode(command, context, outcome)
    }
}

/// What the `queue` exchange hands out and what it was answered, shared by
/// every instance of the toy plugin in the test binary.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Default)]
struct QueueState {
    incoming: VecDeque<Incoming>,
    /// `(id, response)`, in the order answered.
    answered: Vec<(String, Vec<u8>)>,
    shut_down: bool,
}

impl Queue {
    /// The one queue (tests using it run one at a time, see [`serial`]).
    pub(crate) fn shared() -> Arc<Queue> {
        static QUEUE: Mutex<Option<Arc<Queue>>> = Mutex::new(None);
        Arc::clone(lock(&QUEUE).get_or_insert_with(Arc::default))
    }

    /// Empties it for a new test.
    pub(crate) fn reset(&self) {
        *lock(&self.state) = QueueState::default();
    }

    pub(crate) fn push(&self, incoming: Incoming) {
        lock(&self.state).incoming.push_back(incoming);
        self.changed.notify_all();
    }

    /// Waits until `count` items were answered; returns every answer.
    pub(crate) fn answered(&self, count: usize) -> Vec<(String, Vec<u8>)> {
        let mut state = lock(&self.state);
        for _ in 0..100 {
            if state.answered.len() >= count {
                break;
            }
            state = wait_timeout(&self.changed, state, Duration::from_millis(50));
        }
        state.answered.clone()
    }
}

struct QueueExchange(Arc<Queue>);

impl Exchange for QueueExchange {
    fn start(&self) -> Result<(), PluginError> {
        lock(&self.0.state).shut_down = false;
        Ok(())
    }

    fn next(&self) -> Result<Option<Incoming>, PluginError> {
        let mut state = lock(&self.0.state);
        loop {
            if state.shut_down {
                return Ok(None);
            }
            if let Some(incoming) = state.incoming.pop_front() {
                return Ok(Some(incoming));
            }
            state = wait_timeout(&self.0.changed, state, Duration::from_millis(50));
        }
    }

    fn respond(&self, id: &str, response: &[u8]) -> Result<(), PluginError> {
        lock(&self.0.state)
            .answered
            .push((id.to_owned(), response.to_vec()));
        self.0.changed.notify_all();
        Ok(())
    }

    fn max_response_len(&self) -> Option<u64> {
        Some(100)
    }

    fn shutdown(&self) {
        lock(&self.0.state).shut_down = true;
        self.0.changed.notify_all();
    }
}

/// Tests that use the shared queue take this lock.
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}
