//! What a plugin author implements and uses: plain Rust traits and handles.

use std::path::PathBuf;
use std::sync::Arc;

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr, RRef};

use crate::ffi::{
    CommandBox, ExchangeBox, FfiCall, FfiCall_TO, FfiCommand_TO, FfiDispatch, FfiDispatch_TO,
    FfiExchange_TO, FfiParser_TO, HostBox, ParserBox,
};
use crate::guard::{GuardedCommand, GuardedExchange, GuardedParser};
use crate::types::{PluginError, Reply, Request};

/// A named job, e.g. `version`.
pub trait Command: Send + Sync + 'static {
    /// Runs once per request. An `Err` is answered as code `"500"` with its
    /// message; a panic is caught and answered as `"500"` too.
    fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError>;
}

/// Moves raw requests in and raw responses out.
pub trait Exchange: Send + Sync + 'static {
    /// Opens the transport. `init` must not; this runs on the channel's thread.
    fn start(&self) -> Result<(), PluginError>;
    /// Blocks until a request arrives; `Ok(None)` once shut down. Several
    /// threads call this at once.
    fn next_request(&self) -> Result<Option<Request>, PluginError>;
    fn put_response(&self, id: &str, response: &[u8]) -> Result<(), PluginError>;
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
    /// Stops taking requests: wakes every blocked `next_request` (they
    /// return `Ok(None)`). A request already handed out must still get its
    /// `put_response` delivered: on a hot swap the agent lets the workers
    /// finish, then runs the instance's `on_shutdown` hook, and only then
    /// starts the new build's exchange. Close what is left of the transport
    /// there, or once the last answer is out.
    fn shutdown(&self);
}

/// Turns a raw request into a command call and its reply into a raw response.
pub trait Parser: Send + Sync + 'static {
    /// `body` is `Err(reason)` when the exchange could not read the request.
    fn handle(
        &self,
        body: Result<&[u8], &str>,
        dispatch: &Dispatch<'_>,
    ) -> Result<Vec<u8>, PluginError>;
    /// Formats an error the agent met outside the parser (a panic, a response
    /// too large for the transport).
    fn error_response(&self, code: &str, message: &str) -> Vec<u8>;
}

/// The agent, as a plugin sees it. Cheap to clone.
#[derive(Clone)]
pub struct Host(Arc<HostBox>);

impl Host {
    /// A host over any `FfiHost`: how the guard makes one, and how a plugin's
    /// unit tests can (`FfiHost_TO::from_value(my_host, TD_Opaque)`).
    pub fn new(ffi: HostBox) -> Self {
        Host(Arc::new(ffi))
    }

    pub(crate) fn ffi(&self) -> &HostBox {
        &self.0
    }

    /// The agent's version, e.g. `2.0.0`.
    pub fn agent_version(&self) -> String {
        self.0.agent_version().into()
    }

    /// The command names a request may call right now.
    pub fn command_names(&self) -> Vec<String> {
        self.0
            .command_names()
            .into_iter()
            .map(String::from)
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
}

/// One request, as a command sees it.
pub struct Call<'a> {
    ffi: FfiCall_TO<'a, RRef<'a, ()>>,
    value_json: &'a str,
}

impl<'a> Call<'a> {
    /// A call with any `FfiCall` as its context; how the agent makes one, and
    /// how a plugin's unit tests can.
    pub fn new<T: FfiCall>(context: &'a T, value_json: &'a str) -> Self {
        Call {
            ffi: FfiCall_TO::from_ptr(context, TD_Opaque),
            value_json,
        }
    }

    pub(crate) fn from_ffi(ffi: FfiCall_TO<'a, RRef<'a, ()>>, value_json: &'a str) -> Self {
        Call { ffi, value_json }
    }

    /// The request's `value` as JSON text (`""` when the request had none).
    pub fn value_json(&self) -> &str {
        self.value_json
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
    }

    /// Lists a metadata directory through the request's exchange.
    pub fn metadata_list(&self, dir: &str) -> Result<Vec<String>, PluginError> {
        self.ffi
            .metadata_list(RStr::from_str(dir))
            .into_result()
            .map(|v| v.into_iter().map(String::from).collect())
    }
}

/// The agent's dispatcher, as a parser sees it.
pub struct Dispatch<'a>(FfiDispatch_TO<'a, RRef<'a, ()>>);

impl<'a> Dispatch<'a> {
    /// A dispatcher over any `FfiDispatch`; for the agent and for tests.
    pub fn new<T: FfiDispatch>(dispatcher: &'a T) -> Self {
        Dispatch(FfiDispatch_TO::from_ptr(dispatcher, TD_Opaque))
    }

    pub(crate) fn from_ffi(ffi: FfiDispatch_TO<'a, RRef<'a, ()>>) -> Self {
        Dispatch(ffi)
    }

    /// Runs `command` with its value as JSON text. `None`: no such command.
    pub fn run(&self, command: &str, value_json: &str) -> Option<Reply> {
        self.0
            .run(RStr::from_str(command), RStr::from_str(value_json))
            .into_option()
    }
}

/// What a plugin's `init` returns: its objects, by the names in its manifest.
#[derive(Default)]
pub struct Provides {
    pub(crate) exchanges: Vec<(String, ExchangeBox)>,
    pub(crate) parsers: Vec<(String, ParserBox)>,
    pub(crate) commands: Vec<(String, CommandBox)>,
    pub(crate) on_shutdown: Option<Box<dyn FnOnce() + Send>>,
}

impl Provides {
    pub fn new() -> Self {
        Provides::default()
    }

    pub fn exchange(mut self, name: &str, exchange: impl Exchange) -> Self {
        let ffi = FfiExchange_TO::from_value(GuardedExchange(exchange), TD_Opaque);
        self.exchanges.push((name.to_owned(), ffi));
        self
    }

    pub fn parser(mut self, name: &str, parser: impl Parser) -> Self {
        let ffi = FfiParser_TO::from_value(GuardedParser(parser), TD_Opaque);
        self.parsers.push((name.to_owned(), ffi));
        self
    }

    pub fn command(mut self, name: &str, command: impl Command) -> Self {
        let ffi = FfiCommand_TO::from_value(GuardedCommand(command), TD_Opaque);
        self.commands.push((name.to_owned(), ffi));
        self
    }

    /// Runs when the agent retires this instance (exit or hot swap), once
    /// no request is inside its code any more. Stop every thread the plugin
    /// started here: the code of a replaced build stays mapped, and a thread
    /// left running keeps running the old code.
    pub fn on_shutdown(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_shutdown = Some(Box::new(hook));
        self
    }
}
