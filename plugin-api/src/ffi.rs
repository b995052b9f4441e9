//! The raw ABI: the root module and the FFI-safe trait objects.
//!
//! The agent uses these types directly. Plugin authors never implement the
//! `Ffi*` traits of plugins themselves: [`export_plugin!`](crate::export_plugin)
//! wraps their plain Rust types ([`Command`](crate::Command) and friends) in
//! adapters that catch panics. The host side (`FfiHost`, `FfiCall`,
//! `FfiDispatch`) is implemented by the agent.
//!
//! Evolution: the root module is a prefix type and every trait's vtable is
//! one, so later minor versions may append fields and methods after the ones
//! marked `last_prefix_field`. Nothing may be removed, reordered or retyped.

#![allow(non_local_definitions)] // emitted by `#[sabi_trait]` expansions

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    RRef, StableAbi,
};

use crate::types::{LogLevel, PluginError, Reply, Request};

/// Services the agent gives every plugin in `init`.
#[sabi_trait]
pub trait FfiHost: Send + Sync {
    /// Whether an event at `level` for `target` would be recorded.
    fn log_enabled(&self, level: LogLevel, target: RStr<'_>) -> bool;
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
    fn agent_version(&self) -> RString;
    /// Command names a request may call right now (after `[commands] deny`).
    fn command_names(&self) -> RVec<RString>;
    /// The filesystem root commands act on (`root` in the config).
    fn root(&self) -> RString;
    /// `false`: system actions are logged, not run.
    #[sabi(last_prefix_field)]
    fn apply(&self) -> bool;
}

/// One request's context, given to a command by the agent.
#[sabi_trait]
pub trait FfiCall: Send + Sync {
    /// The name of the channel the request arrived on.
    fn channel(&self) -> RString;
    /// Reads a metadata key (e.g. `vm-data/hostname`) from the request's exchange.
    fn metadata_read(&self, key: RStr<'_>) -> RResult<ROption<RString>, PluginError>;
    /// Lists the children of a metadata directory (e.g. `vm-data/networking`).
    #[sabi(last_prefix_field)]
    fn metadata_list(&self, dir: RStr<'_>) -> RResult<RVec<RString>, PluginError>;
}

/// The agent's dispatcher, given to a parser for one request.
#[sabi_trait]
pub trait FfiDispatch: Send + Sync {
    /// Runs a command with its value as JSON text. `RNone`: no such command
    /// (or denied by policy, which reads the same).
    #[sabi(last_prefix_field)]
    fn run(&self, command: RStr<'_>, value_json: RStr<'_>) -> ROption<Reply>;
}

#[sabi_trait]
pub trait FfiCommand: Send + Sync {
    #[sabi(last_prefix_field)]
    fn run<'a>(
        &self,
        call: FfiCall_TO<'a, RRef<'a, ()>>,
        value_json: RStr<'a>,
    ) -> RResult<Reply, PluginError>;
}

#[sabi_trait]
pub trait FfiParser: Send + Sync {
    /// Turns a raw request into a raw response, running commands through `dispatch`.
    fn handle<'a>(
        &self,
        body: RResult<RSlice<'a, u8>, RStr<'a>>,
        dispatch: FfiDispatch_TO<'a, RRef<'a, ()>>,
    ) -> RResult<RVec<u8>, PluginError>;
    /// A raw response carrying an error the agent met outside the parser.
    #[sabi(last_prefix_field)]
    fn error_response(&self, code: RStr<'_>, message: RStr<'_>) -> RResult<RVec<u8>, PluginError>;
}

#[sabi_trait]
pub trait FfiExchange: Send + Sync {
    /// Opens the transport. Called once, on the channel's thread.
    fn start(&self) -> RResult<(), PluginError>;
    /// Blocks until a request arrives. `RNone` once `shutdown` has been called.
    /// Called from several threads at once.
    fn next_request(&self) -> RResult<ROption<Request>, PluginError>;
    fn put_response(&self, id: RStr<'_>, response: RSlice<'_, u8>) -> RResult<(), PluginError>;
    /// The largest response the transport carries, if it has a limit.
    fn max_response_len(&self) -> ROption<u64>;
    fn metadata_read(&self, key: RStr<'_>) -> RResult<ROption<RString>, PluginError>;
    fn metadata_list(&self, dir: RStr<'_>) -> RResult<RVec<RString>, PluginError>;
    /// Stops taking requests: wakes every `next_request` (they return
    /// `RNone`). Responses to requests already handed out are still
    /// delivered; the transport closes by the lifecycle's `shutdown` at the
    /// latest.
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// Plugin-wide hooks.
#[sabi_trait]
pub trait FfiLifecycle: Send + Sync {
    /// The instance is being retired (agent exit or hot swap), after its
    /// exchanges were shut down and its last request finished.
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

pub type HostBox = FfiHost_TO<'static, RBox<()>>;
pub type CommandBox = FfiCommand_TO<'static, RBox<()>>;
pub type ParserBox = FfiParser_TO<'static, RBox<()>>;
pub type ExchangeBox = FfiExchange_TO<'static, RBox<()>>;
pub type LifecycleBox = FfiLifecycle_TO<'static, RBox<()>>;

/// What `init` returns: the plugin's objects, by name.
#[repr(C)]
#[derive(StableAbi)]
pub struct Instance {
    pub exchanges: RVec<Tuple2<RString, ExchangeBox>>,
    pub parsers: RVec<Tuple2<RString, ParserBox>>,
    pub commands: RVec<Tuple2<RString, CommandBox>>,
    pub lifecycle: LifecycleBox,
}

/// `init(host, config_json)`: `config_json` is the plugin's `[plugins.<name>]`
/// table as a JSON object (`{}` when absent).
pub type InitFn = extern "C" fn(HostBox, RStr<'_>) -> RResult<Instance, PluginError>;

/// The root module every plugin exports: its manifest and its `init`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(option))]
pub struct PluginRoot {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub description: RStr<'static>,
    pub exchanges: RSlice<'static, RStr<'static>>,
    pub parsers: RSlice<'static, RStr<'static>>,
    pub commands: RSlice<'static, RStr<'static>>,
    /// See [`InitFn`].
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn(host: HostBox, config_json: RStr<'_>) -> RResult<Instance, PluginError>,
}

impl RootModule for PluginRootRef {
    declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "nova_agent_plugin";
    const NAME: &'static str = "nova-agent plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
