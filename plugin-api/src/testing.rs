//! Stand-ins for the agent, for a plugin's tests.
//!
//! - [`TestHost`]: what `init` receives, with a root, an `apply` flag and the
//!   agent's version set by the test;
//! - [`TestCall`]: one request's context (its channel, the metadata its
//!   exchange holds), to run a [`Command`] of one's own directly;
//! - [`TestAgent`]: plugins loaded through their exported `init`, exactly as
//!   the agent does, with the agent's dispatch rules (unknown commands,
//!   `deny`, gates, panics), so a parser and commands can be driven end to
//!   end: bytes in, bytes out.
//!
//! ```
//! use nova_agent_plugin_api::testing::{TestAgent, TestHost};
//! use nova_agent_plugin_api::{Command, Call, CommandError, Host, PluginError, Provides};
//! use serde_json::{json, Value};
//!
//! struct Root(Host);
//!
//! impl Command for Root {
//!     fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
//!         Ok(json!(self.0.root()))
//!     }
//! }
//!
//! fn init(host: Host, _config: Value) -> Result<Provides, PluginError> {
//!     Ok(Provides::new().command("root", Root(host)))
//! }
//!
//! let agent = TestAgent::new(TestHost::new("/tmp/guest")).with_plugin(init, json!({}))?;
//! assert_eq!(agent.run("root", "\"\"").result, Ok("\"/tmp/guest\"".to_owned()));
//! # Ok::<(), PluginError>(())
//! ```
//!
//! Logging: inside a test a plugin's `tracing` events go to the test's own
//! subscriber, as in any crate, until an `init` went through
//! [`TestAgent::with_plugin`], which installs the log bridge for the whole
//! test binary; [`TestHost`] then prints errors and warnings (a failing
//! assertion's panic message among them) to stderr.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RStr, RString, RVec},
};
use serde_json::Value;

use crate::author::{Call, Command, Host};
use crate::ffi::{
    CommandBox, FfiCall, FfiCommandInfo, FfiDecoded, FfiError, FfiFramed, FfiHost, FfiHost_TO,
    FfiResult, Instance, ParserBox, StreamDecoderBox,
};
use crate::provides::{run_init, AuthorInit};
use crate::types::{
    CommandError, CommandInfo, Decoded, ErrorKind, Gate, LogLevel, Outcome, ParsedCall, PluginError,
};

/// The agent's services as a test sets them: a root, `apply` (`false`
/// unless set), the agent version `"test"` and the registered commands
/// (those of the plugins a [`TestAgent`] loaded, or those set here). Errors
/// and warnings a plugin logs, panics included, go to stderr; the rest is
/// dropped.
///
/// ```
/// use nova_agent_plugin_api::testing::TestHost;
///
/// let host = TestHost::new("/tmp/guest")
///     .with_apply(true)
///     .with_commands(["version", "password"])
///     .host();
/// assert_eq!(host.root(), std::path::Path::new("/tmp/guest"));
/// assert!(host.apply());
/// assert_eq!(host.enabled_commands(), ["password", "version"]);
/// assert_eq!(host.agent_version(), "test");
/// ```
#[derive(Clone, Debug)]
pub struct TestHost {
    root: String,
    state_dir: String,
    apply: bool,
    agent_version: String,
    state: Arc<Mutex<HostState>>,
}

#[derive(Debug, Default)]
struct HostState {
    /// name → success_response
    commands: BTreeMap<String, bool>,
    deny: BTreeSet<String>,
    /// name → (gate, closed)
    gates: BTreeMap<String, (Gate, bool)>,
}

impl HostState {
    /// Why `command` may not run now, if it may not: `Some("")` for deny,
    /// `Some(reason)` for a closed gate.
    fn refusal(&self, command: &str) -> Option<String> {
        if self.deny.contains(command) {
            return Some(String::new());
        }
        self.gates
            .values()
            .find(|(gate, closed)| *closed && !gate.allow.iter().any(|c| c == command))
            .map(|(gate, _)| gate.reason.clone())
    }
}

impl TestHost {
    /// A host whose commands act under `root`, with `apply = false`.
    pub fn new(root: impl Into<String>) -> Self {
        TestHost {
            root: root.into(),
            state_dir: String::new(),
            apply: false,
            agent_version: "test".to_owned(),
            state: Arc::default(),
        }
    }

    /// The agent's state directory; unset, it is `<root>/var/lib/nova-agent`.
    pub fn with_state_dir(mut self, dir: impl Into<String>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Whether system actions may run (`apply` in the agent's config).
    pub fn with_apply(mut self, apply: bool) -> Self {
        self.apply = apply;
        self
    }

    /// Registered commands (answering on success), besides those of the
    /// plugins a [`TestAgent`] loads.
    pub fn with_commands<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.lock()
            .commands
            .extend(names.into_iter().map(|n| (n.into(), true)));
        self
    }

    /// Commands denied as by `[commands] deny`.
    pub fn with_deny<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.lock().deny.extend(names.into_iter().map(Into::into));
        self
    }

    /// The agent version the host reports, instead of `"test"`.
    pub fn with_agent_version(mut self, version: impl Into<String>) -> Self {
        self.agent_version = version.into();
        self
    }

    /// The [`Host`] a plugin's `init` receives from the agent.
    pub fn host(&self) -> Host {
        Host::new(Arc::new(FfiHost_TO::from_value(self.clone(), TD_Opaque)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FfiHost for TestHost {
    fn log_enabled(&self, level: u8, _target: RStr<'_>) -> bool {
        LogLevel(level) <= LogLevel::WARN
    }

    /// Errors and warnings go to stderr: the plugin's panic hook reports
    /// through here, so a failing assertion in a test keeps its message.
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        if self.log_enabled(level, target) {
            eprintln!("{} {target}: {message}", LogLevel(level).to_tracing());
        }
    }

    fn agent_version(&self) -> RString {
        self.agent_version.as_str().into()
    }

    fn commands(&self) -> RVec<FfiCommandInfo> {
        let state = self.lock();
        state
            .commands
            .iter()
            .map(|(name, success_response)| {
                let info = CommandInfo {
                    name: name.clone(),
                    enabled: state.refusal(name).is_none(),
                    success_response: *success_response,
                };
                FfiCommandInfo::from(&info)
            })
            .collect()
    }

    fn root(&self) -> RString {
        self.root.as_str().into()
    }

    fn apply(&self) -> bool {
        self.apply
    }

    fn set_gate(&self, gate: RStr<'_>, closed: bool) -> FfiResult<()> {
        match self.lock().gates.get_mut(gate.as_str()) {
            Some(entry) => {
                entry.1 = closed;
                Ok(()).into()
            }
            None => Err(FfiError::Failed(
                format!("no loaded plugin declares gate '{gate}'").into(),
            ))
            .into(),
        }
    }

    fn gate_closed(&self, gate: RStr<'_>) -> bool {
        self.lock()
            .gates
            .get(gate.as_str())
            .is_some_and(|(_, closed)| *closed)
    }

    fn state_dir(&self) -> RString {
        if self.state_dir.is_empty() {
            format!("{}/var/lib/nova-agent", self.root.trim_end_matches('/')).into()
        } else {
            self.state_dir.as_str().into()
        }
    }
}

/// One request's context as a test sets it: the channel it arrived on
/// (`"test"` unless set) and the metadata its exchange holds, key by key
/// (none unless set).
///
/// Metadata reads as a XenStore-like tree: a key such as
/// `vm-data/networking/eth0` makes `vm-data/networking` a directory, whose
/// listing is the sorted names directly under it (`eth0`); a directory that
/// holds nothing lists as empty.
///
/// ```
/// use nova_agent_plugin_api::testing::TestCall;
/// use nova_agent_plugin_api::{Call, Command, CommandError};
/// use serde_json::{json, Value};
///
/// struct Networks;
///
/// impl Command for Networks {
///     fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
///         Ok(json!([call.channel(), call.metadata_list("vm-data/networking")?]))
///     }
/// }
///
/// let context = TestCall::new()
///     .with_channel("xenstore+json")
///     .with_metadata("vm-data/networking/b", "{}")
///     .with_metadata("vm-data/networking/a", "{}");
/// assert_eq!(context.run(&Networks, "\"\""), Ok(json!(["xenstore+json", ["a", "b"]])));
/// ```
#[derive(Clone, Debug)]
pub struct TestCall {
    channel: String,
    metadata: BTreeMap<String, String>,
}

impl Default for TestCall {
    fn default() -> Self {
        TestCall {
            channel: "test".to_owned(),
            metadata: BTreeMap::new(),
        }
    }
}

impl TestCall {
    /// A request on channel `"test"` with no metadata.
    pub fn new() -> Self {
        TestCall::default()
    }

    /// The name of the channel the request arrived on.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// A metadata key (e.g. `vm-data/hostname`) and its value.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Runs `command` in this context with `arguments` (JSON text), without
    /// the panic guard.
    pub fn run(&self, command: &dyn Command, arguments: &str) -> Result<Value, CommandError> {
        command.run(&Call::over(self, arguments))
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let dir = dir.trim_end_matches('/');
        let children: BTreeSet<&str> = self
            .metadata
            .keys()
            .filter_map(|key| {
                let below = if dir.is_empty() {
                    key.as_str()
                } else {
                    key.strip_prefix(dir)?.strip_prefix('/')?
                };
                below.split('/').next().filter(|name| !name.is_empty())
            })
            .collect();
        children.into_iter().map(str::to_owned).collect()
    }
}

impl FfiCall for TestCall {
    fn channel(&self) -> RString {
        self.channel.as_str().into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>> {
        let value = self.metadata.get(key.as_str());
        Ok(value.map(|v| RString::from(v.as_str())).into()).into()
    }

    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>> {
        Ok(self
            .list(dir.as_str())
            .into_iter()
            .map(RString::from)
            .collect())
        .into()
    }
}

/// Plugins loaded as the agent loads them (through the exported `init`,
/// behind the panic guard), served with the agent's dispatch rules.
pub struct TestAgent {
    host: TestHost,
    call: TestCall,
    commands: BTreeMap<String, CommandBox>,
    parsers: BTreeMap<String, ParserBox>,
    decoders: Mutex<HashMap<String, StreamDecoderBox>>,
    instances: Vec<Instance>,
}

impl TestAgent {
    /// An agent with no plugin, on `host`.
    pub fn new(host: TestHost) -> Self {
        TestAgent {
            host,
            call: TestCall::new(),
            commands: BTreeMap::new(),
            parsers: BTreeMap::new(),
            decoders: Mutex::default(),
            instances: Vec::new(),
        }
    }

    /// Loads a plugin: its `init` with `config` as its `[plugins.<name>]`
    /// table. A name already loaded is replaced, as `[commands] prefer`
    /// would.
    pub fn with_plugin(mut self, init: AuthorInit, config: Value) -> Result<Self, PluginError> {
        let json = config.to_string();
        let host = FfiHost_TO::from_value(self.host.clone(), TD_Opaque);
        let mut instance = run_init(host, RStr::from_str(&json), init)
            .into_result()
            .map_err(PluginError::from)?;
        {
            let mut state = self.host.lock();
            for entry in &instance.commands {
                state
                    .commands
                    .insert(entry.name.to_string(), entry.success_response);
            }
            for gate in &instance.gates {
                let gate = Gate::from(gate);
                state.gates.insert(gate.name.clone(), (gate, false));
            }
        }
        for entry in std::mem::take(&mut instance.commands) {
            self.commands.insert(entry.name.into(), entry.object);
        }
        for parser in std::mem::take(&mut instance.parsers) {
            self.parsers.insert(parser.0.into(), parser.1);
        }
        self.instances.push(instance);
        Ok(self)
    }

    /// The context every request runs in (channel `"test"`, no metadata,
    /// unless set).
    pub fn with_call(mut self, call: TestCall) -> Self {
        self.call = call;
        self
    }

    /// The host the plugins were given: to check or set gates.
    pub fn host(&self) -> Host {
        self.host.host()
    }

    /// Runs `command` with `arguments` (JSON text), as the agent's
    /// dispatcher does: unknown, denied and gated commands are refused; a
    /// panic is answered as a failure.
    pub fn run(&self, command: &str, arguments: &str) -> Outcome {
        let Some(object) = self.commands.get(command) else {
            return Outcome::error(ErrorKind::UnknownCommand, "");
        };
        if let Some(reason) = self.host.lock().refusal(command) {
            return Outcome::error(ErrorKind::Disabled, reason);
        }
        let context = abi_stable::sabi_trait::TD_Opaque;
        let ffi = crate::ffi::FfiCall_TO::from_ptr(&self.call, context);
        let mut outcome = Outcome::from(&object.run(ffi, RStr::from_str(arguments)));
        if let Err(e) = &mut outcome.result {
            if e.kind == ErrorKind::Panicked {
                e.message = format!("command '{command}' failed unexpectedly");
            }
        }
        outcome
    }

    /// One framed request through parser `parser`: decode, run, encode.
    /// Returns every byte the exchange would be asked to send.
    pub fn request(&self, parser: &str, request: &[u8]) -> Vec<u8> {
        let decoded = self
            .parser(parser)
            .decode(FfiFramed::Request(request.into()))
            .map(|one| RVec::from(vec![one]));
        self.answer(parser, decoded)
    }

    /// A request the exchange could not read, with `reason`.
    pub fn unreadable(&self, parser: &str, reason: &str) -> Vec<u8> {
        let decoded = self
            .parser(parser)
            .decode(FfiFramed::Unreadable(RStr::from_str(reason)))
            .map(|one| RVec::from(vec![one]));
        self.answer(parser, decoded)
    }

    /// The next bytes of the one stream that parser `parser` decodes.
    /// Panics if the parser takes framed input only.
    pub fn feed(&self, parser: &str, bytes: &[u8]) -> Vec<u8> {
        let decoded = {
            let mut decoders = self.decoders.lock().unwrap_or_else(PoisonError::into_inner);
            if !decoders.contains_key(parser) {
                let decoder = self.parser(parser).stream_decoder().into_result();
                let decoder = decoder.ok().and_then(ROption::into_option);
                let decoder = decoder.unwrap_or_else(|| panic!("parser {parser} takes no stream"));
                decoders.insert(parser.to_owned(), decoder);
            }
            let decoder = decoders.get_mut(parser).expect("inserted above");
            decoder.feed(bytes.into())
        };
        self.answer(parser, decoded)
    }

    fn parser(&self, name: &str) -> &ParserBox {
        self.parsers
            .get(name)
            .unwrap_or_else(|| panic!("no loaded plugin provides parser {name}"))
    }

    fn answer(&self, parser: &str, decoded: FfiResult<RVec<FfiDecoded>>) -> Vec<u8> {
        let decoded = match decoded.into_result() {
            Ok(decoded) => decoded,
            Err(e) => panic!("parser {parser} failed to decode: {e}"),
        };
        let mut out = Vec::new();
        for item in decoded.into_iter().map(Decoded::from) {
            match item {
                Decoded::Answer(bytes) => out.extend(bytes),
                Decoded::Call(call) => {
                    let outcome = self.run(&call.command, &call.arguments);
                    out.extend(self.encode(parser, &call, &outcome));
                }
            }
        }
        out
    }

    fn encode(&self, parser: &str, call: &ParsedCall, outcome: &Outcome) -> Vec<u8> {
        let encoded = self.parser(parser).encode(
            RStr::from_str(&call.command),
            RStr::from_str(&call.context),
            &outcome.into(),
        );
        match encoded.into_result() {
            Ok(bytes) => bytes.into_option().map(Vec::from).unwrap_or_default(),
            Err(e) => panic!("parser {parser} failed to encode: {e}"),
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        for instance in &self.instances {
            instance.lifecycle.shutdown();
        }
    }
}

#[cfg(test)]
mod tests;
