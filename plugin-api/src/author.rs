//! What a plugin author implements and uses: plain Rust traits and handles.

use std::path::PathBuf;
use std::sync::Arc;

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr, RRef};
use serde_json::Value;

use crate::ffi::{FfiCall, FfiCall_TO, HostBox};
#[cfg(doc)]
use crate::types::ParsedCall;
use crate::types::{CommandError, CommandInfo, Decoded, Incoming, Outcome, PluginError};

/// A named job, e.g. `version`.
pub trait Command: Send + Sync + 'static {
    /// Runs once per request. The value is the answer; an error is answered
    /// by its kind (a panic is caught and answered as a failure too).
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError>;

    /// `false` for a command whose success is not answered at all (QGA's
    /// `guest-shutdown`). Read once, when the plugin is loaded.
    fn success_response(&self) -> bool {
        true
    }
}

/// Moves input in and responses out.
pub trait Exchange: Send + Sync + 'static {
    /// Opens the transport. `init` must not; this runs on the channel's thread.
    fn start(&self) -> Result<(), PluginError>;
    /// Blocks until input arrives; `Ok(None)` once shut down. Several threads
    /// call this at once. A stream's next chunk may be handed out only once
    /// the previous one was [responded](Self::respond) to.
    fn next(&self) -> Result<Option<Incoming>, PluginError>;
    /// Answers the item `next` handed out as `id`, exactly once, with every
    /// response its input produced, in order. `response` is empty when there
    /// is nothing to send.
    fn respond(&self, id: &str, response: &[u8]) -> Result<(), PluginError>;
    /// The largest response the transport can carry.
    fn max_response_len(&self) -> Option<u64> {
        None
    }
    fn metadata_read(&self, _key: &str) -> Result<Option<String>, PluginError> {
        Ok(None)
    }
    fn metadata_list(&self, _dir: &str) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
    /// Stops taking input: wakes every blocked `next` (they return
    /// `Ok(None)`). An item already handed out must still get its `respond`
    /// delivered: on a hot swap the agent lets the workers finish, then runs
    /// the instance's `on_shutdown` hook, and only then starts the new
    /// build's exchange. Close what is left of the transport there, or once
    /// the last answer is out.
    fn shutdown(&self);
}

/// Turns input into command calls, and outcomes into responses.
pub trait Parser: Send + Sync + 'static {
    /// Decodes one framed request; `Err(reason)` when the exchange could not
    /// read it.
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded;

    /// Encodes the outcome of a call this parser decoded: its `command` and
    /// the `context` it put in the [`ParsedCall`]. `None`: answer nothing.
    fn encode(&self, command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>>;

    /// A decoder for one raw byte stream, keeping its half-read input
    /// between chunks. `None` (the default): this parser takes framed
    /// requests only, and a channel whose exchange hands it a stream answers
    /// nothing.
    fn stream_decoder(&self) -> Option<Box<dyn StreamDecoder>> {
        None
    }
}

/// The state of one byte stream being decoded.
pub trait StreamDecoder: Send + 'static {
    /// Takes the next bytes; returns what they complete, in order.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded>;
}

/// The agent, as a plugin sees it. Cheap to clone.
#[derive(Clone)]
pub struct Host(Arc<HostBox>);

impl Host {
    pub(crate) fn new(ffi: Arc<HostBox>) -> Self {
        Host(ffi)
    }

    /// The agent's version, e.g. `2.0.0`.
    pub fn agent_version(&self) -> String {
        self.0.agent_version().into()
    }

    /// Every registered command, sorted by name, with whether a request may
    /// call it right now.
    pub fn commands(&self) -> Vec<CommandInfo> {
        self.0.commands().iter().map(CommandInfo::from).collect()
    }

    /// The names of the commands a request may call right now, sorted.
    pub fn enabled_commands(&self) -> Vec<String> {
        self.commands()
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| c.name)
            .collect()
    }

    /// The filesystem root every path a command touches is resolved under.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(String::from(self.0.root()))
    }

    /// `false`: log system actions instead of running them.
    pub fn apply(&self) -> bool {
        self.0.apply()
    }

    /// Closes (`true`) or opens the gate `name`, which some plugin declared
    /// with [`Provides::gate`](crate::Provides::gate). Fails for a gate no loaded plugin declares.
    pub fn set_gate(&self, name: &str, closed: bool) -> Result<(), PluginError> {
        self.0
            .set_gate(RStr::from_str(name), closed)
            .into_result()
            .map_err(PluginError::from)
    }

    /// Where the agent keeps state across restarts (`state_dir` in the
    /// config): a plugin keeps its own files in a subdirectory named after
    /// it.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(String::from(self.0.state_dir()))
    }

    /// Whether the gate `name` is closed.
    pub fn gate_closed(&self, name: &str) -> bool {
        self.0.gate_closed(RStr::from_str(name))
    }
}

/// One request, as a command sees it.
pub struct Call<'a> {
    ffi: FfiCall_TO<'a, RRef<'a, ()>>,
    arguments: &'a str,
}

impl<'a> Call<'a> {
    pub(crate) fn from_ffi(ffi: FfiCall_TO<'a, RRef<'a, ()>>, arguments: &'a str) -> Self {
        Call { ffi, arguments }
    }

    pub(crate) fn over<T: FfiCall>(context: &'a T, arguments: &'a str) -> Self {
        Call::from_ffi(FfiCall_TO::from_ptr(context, TD_Opaque), arguments)
    }

    /// The arguments as the parser found them, as JSON text: the Nova
    /// protocol's `value` (`""` when the request had none), QGA's
    /// `arguments` (`{}` when absent). Read it as text where a number may be
    /// wider than any machine integer.
    pub fn arguments(&self) -> &str {
        self.arguments
    }

    /// The arguments parsed into `T`; a mismatch is a
    /// [`bad_arguments`](CommandError::bad_arguments) error.
    pub fn parse_arguments<T: serde::de::DeserializeOwned>(&self) -> Result<T, CommandError> {
        serde_json::from_str(self.arguments)
            .map_err(|e| CommandError::bad_arguments(format!("invalid arguments: {e}")))
    }

    /// The channel the request arrived on.
    pub fn channel(&self) -> String {
        self.ffi.channel().into()
    }

    /// Reads a metadata key through the request's exchange.
    pub fn metadata_read(&self, key: &str) -> Result<Option<String>, PluginError> {
        self.ffi
            .metadata_read(RStr::from_str(key))
            .into_result()
            .map(|v| v.into_option().map(String::from))
            .map_err(PluginError::from)
    }

    /// Lists a metadata directory through the request's exchange.
    pub fn metadata_list(&self, dir: &str) -> Result<Vec<String>, PluginError> {
        self.ffi
            .metadata_list(RStr::from_str(dir))
            .into_result()
            .map(|v| v.into_iter().map(String::from).collect())
            .map_err(PluginError::from)
    }
}
