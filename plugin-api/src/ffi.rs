//! The raw ABI: the root module, the FFI-safe trait objects and the data
//! that crosses between the agent and a plugin.
//!
//! Only the agent and this crate use these types. Plugin authors implement
//! the plain traits ([`Command`](crate::Command) and friends); the export
//! macro wraps them in adapters that catch panics. The host side
//! ([`FfiHost`], [`FfiCall`]) is implemented by the agent, and by
//! [`testing`](crate::testing) for plugins' tests.
//!
//! Evolution: the root module is a prefix type and every trait's vtable is
//! one, so later minor versions may append fields and methods after the ones
//! marked `last_prefix_field`. Nothing may be removed, reordered or retyped.

#![allow(non_local_definitions)] // emitted by `#[sabi_trait]` expansions

/// The abi_stable this ABI is built on, for the agent.
pub use abi_stable;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    RRef, StableAbi,
};

use crate::types::{
    CommandError, CommandInfo, Decoded, ErrorKind, Gate, Incoming, Input, Outcome, ParsedCall,
    PluginError,
};

/// [`PluginError`] as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiError {
    Panicked(RString),
    Failed(RString),
}

/// The result type of every fallible FFI method.
pub type FfiResult<T> = RResult<T, FfiError>;

/// Services the agent gives every plugin in `init`.
#[sabi_trait]
pub trait FfiHost: Send + Sync {
    /// Whether an event at `level` (1 = error .. 5 = trace) for `target`
    /// would be recorded.
    fn log_enabled(&self, level: u8, target: RStr<'_>) -> bool;
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>);
    fn agent_version(&self) -> RString;
    /// Every registered command, sorted by name, with whether a request may
    /// call it right now.
    fn commands(&self) -> RVec<FfiCommandInfo>;
    /// The filesystem root commands act on (`root` in the config).
    fn root(&self) -> RString;
    /// `false`: system actions are logged, not run.
    fn apply(&self) -> bool;
    /// Closes (`true`) or opens a gate some plugin declared.
    fn set_gate(&self, gate: RStr<'_>, closed: bool) -> FfiResult<()>;
    #[sabi(last_prefix_field)]
    fn gate_closed(&self, gate: RStr<'_>) -> bool;
    /// Where the agent keeps state across restarts (`state_dir` in the
    /// config). Since 0.2.1: after the prefix, so 0.2.0 plugins load as
    /// before.
    fn state_dir(&self) -> RString;
}

/// One request's context, given to a command by the agent.
#[sabi_trait]
pub trait FfiCall: Send + Sync {
    /// The name of the channel the request arrived on.
    fn channel(&self) -> RString;
    /// Reads a metadata key (e.g. `vm-data/hostname`) from the request's exchange.
    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>>;
    /// Lists the children of a metadata directory (e.g. `vm-data/networking`).
    #[sabi(last_prefix_field)]
    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>>;
}

#[sabi_trait]
pub trait FfiCommand: Send + Sync {
    /// Runs the command with its arguments as JSON text. Never panics: a
    /// panic comes back as an outcome of kind `Panicked`.
    #[sabi(last_prefix_field)]
    fn run<'a>(&self, call: FfiCall_TO<'a, RRef<'a, ()>>, arguments: RStr<'a>) -> FfiOutcome;
}

#[sabi_trait]
pub trait FfiParser: Send + Sync {
    /// Decodes one framed request (or the reason it is unreadable).
    fn decode(&self, input: FfiFramed<'_>) -> FfiResult<FfiDecoded>;
    /// Encodes the outcome of a call it decoded (its command and context);
    /// `RNone`: answer nothing.
    fn encode(
        &self,
        command: RStr<'_>,
        context: RStr<'_>,
        outcome: &FfiOutcome,
    ) -> FfiResult<ROption<RVec<u8>>>;
    /// A decoder for one raw byte stream; `RNone`: framed input only.
    #[sabi(last_prefix_field)]
    fn stream_decoder(&self) -> FfiResult<ROption<StreamDecoderBox>>;
}

#[sabi_trait]
pub trait FfiStreamDecoder: Send {
    /// Takes the next bytes of the stream; returns what they complete.
    #[sabi(last_prefix_field)]
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> FfiResult<RVec<FfiDecoded>>;
}

#[sabi_trait]
pub trait FfiExchange: Send + Sync {
    /// Opens the transport. Called once, on the channel's thread.
    fn start(&self) -> FfiResult<()>;
    /// Blocks until input arrives. `RNone` once `shutdown` has been called.
    /// Called from several threads at once.
    fn next(&self) -> FfiResult<ROption<FfiIncoming>>;
    /// Answers one incoming item, exactly once; `response` may be empty.
    fn respond(&self, id: RStr<'_>, response: RSlice<'_, u8>) -> FfiResult<()>;
    /// The largest response the transport carries, if it has a limit.
    fn max_response_len(&self) -> ROption<u64>;
    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>>;
    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>>;
    /// Stops taking input: wakes every `next` (they return `RNone`).
    /// Responses to items already handed out are still delivered.
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
pub type StreamDecoderBox = FfiStreamDecoder_TO<'static, RBox<()>>;
pub type ExchangeBox = FfiExchange_TO<'static, RBox<()>>;
pub type LifecycleBox = FfiLifecycle_TO<'static, RBox<()>>;

/// A framed request as a parser receives it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub enum FfiFramed<'a> {
    Request(RSlice<'a, u8>),
    Unreadable(RStr<'a>),
}

/// [`Input`] as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiInput {
    Request(RVec<u8>),
    Unreadable(RString),
    Stream { stream: RString, bytes: RVec<u8> },
    StreamEnd { stream: RString },
}

/// [`Incoming`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiIncoming {
    pub id: RString,
    pub input: FfiInput,
}

/// [`ParsedCall`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub struct FfiParsedCall {
    pub command: RString,
    pub arguments: RString,
    pub context: RString,
}

/// [`Decoded`] as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiDecoded {
    Call(FfiParsedCall),
    Answer(RVec<u8>),
}

/// [`Outcome`] as it crosses the boundary: `kind` 0 is success and `text`
/// the value's JSON text; otherwise `kind` is an [`ErrorKind`] number and
/// `text` its message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiOutcome {
    pub kind: u8,
    pub text: RString,
    pub success_response: bool,
}

/// [`CommandInfo`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiCommandInfo {
    pub name: RString,
    pub enabled: bool,
    pub success_response: bool,
}

/// [`Gate`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiGate {
    pub name: RString,
    pub reason: RString,
    pub allow: RVec<RString>,
}

/// One command a plugin provides.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiCommandEntry {
    pub name: RString,
    pub success_response: bool,
    pub object: CommandBox,
}

/// What `init` returns: the plugin's objects, by name, and its gates.
#[repr(C)]
#[derive(StableAbi)]
pub struct Instance {
    pub exchanges: RVec<Tuple2<RString, ExchangeBox>>,
    pub parsers: RVec<Tuple2<RString, ParserBox>>,
    pub commands: RVec<FfiCommandEntry>,
    pub gates: RVec<FfiGate>,
    pub lifecycle: LifecycleBox,
}

/// `init(host, config_json)`: `config_json` is the plugin's `[plugins.<name>]`
/// table as a JSON object (`{}` when absent).
pub type InitFn = extern "C" fn(HostBox, RStr<'_>) -> FfiResult<Instance>;

/// The root module every plugin exports: who it is, and its `init`. What it
/// provides is what `init` returns.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(option))]
pub struct PluginRoot {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub description: RStr<'static>,
    /// See [`InitFn`].
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn(host: HostBox, config_json: RStr<'_>) -> FfiResult<Instance>,
}

impl RootModule for PluginRootRef {
    declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "nova_agent_plugin";
    const NAME: &'static str = "nova-agent plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

// Conversions between the plain types and their FFI twins.

impl From<PluginError> for FfiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Panicked(m) => FfiError::Panicked(m.into()),
            PluginError::Failed(m) => FfiError::Failed(m.into()),
        }
    }
}

impl From<FfiError> for PluginError {
    fn from(e: FfiError) -> Self {
        match e {
            FfiError::Panicked(m) => PluginError::Panicked(m.into()),
            FfiError::Failed(m) => PluginError::Failed(m.into()),
        }
    }
}

impl std::fmt::Display for FfiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FfiError::Panicked(m) => write!(f, "panicked: {m}"),
            FfiError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<Input> for FfiInput {
    fn from(input: Input) -> Self {
        match input {
            Input::Request(bytes) => FfiInput::Request(bytes.into()),
            Input::Unreadable(reason) => FfiInput::Unreadable(reason.into()),
            Input::Stream { stream, bytes } => FfiInput::Stream {
                stream: stream.into(),
                bytes: bytes.into(),
            },
            Input::StreamEnd { stream } => FfiInput::StreamEnd {
                stream: stream.into(),
            },
        }
    }
}

impl From<FfiInput> for Input {
    fn from(input: FfiInput) -> Self {
        match input {
            FfiInput::Request(bytes) => Input::Request(bytes.into()),
            FfiInput::Unreadable(reason) => Input::Unreadable(reason.into()),
            FfiInput::Stream { stream, bytes } => Input::Stream {
                stream: stream.into(),
                bytes: bytes.into(),
            },
            FfiInput::StreamEnd { stream } => Input::StreamEnd {
                stream: stream.into(),
            },
        }
    }
}

impl From<Incoming> for FfiIncoming {
    fn from(incoming: Incoming) -> Self {
        FfiIncoming {
            id: incoming.id.into(),
            input: incoming.input.into(),
        }
    }
}

impl From<FfiIncoming> for Incoming {
    fn from(incoming: FfiIncoming) -> Self {
        Incoming {
            id: incoming.id.into(),
            input: incoming.input.into(),
        }
    }
}

impl From<ParsedCall> for FfiParsedCall {
    fn from(call: ParsedCall) -> Self {
        FfiParsedCall {
            command: call.command.into(),
            arguments: call.arguments.into(),
            context: call.context.into(),
        }
    }
}

impl From<&FfiParsedCall> for ParsedCall {
    fn from(call: &FfiParsedCall) -> Self {
        ParsedCall {
            command: call.command.to_string(),
            arguments: call.arguments.to_string(),
            context: call.context.to_string(),
        }
    }
}

impl From<Decoded> for FfiDecoded {
    fn from(decoded: Decoded) -> Self {
        match decoded {
            Decoded::Call(call) => FfiDecoded::Call(call.into()),
            Decoded::Answer(bytes) => FfiDecoded::Answer(bytes.into()),
        }
    }
}

impl From<FfiDecoded> for Decoded {
    fn from(decoded: FfiDecoded) -> Self {
        match decoded {
            FfiDecoded::Call(call) => Decoded::Call((&call).into()),
            FfiDecoded::Answer(bytes) => Decoded::Answer(bytes.into()),
        }
    }
}

impl From<&Outcome> for FfiOutcome {
    fn from(outcome: &Outcome) -> Self {
        let (kind, text) = match &outcome.result {
            Ok(json) => (0, json.as_str()),
            Err(e) => (e.kind.to_u8(), e.message.as_str()),
        };
        FfiOutcome {
            kind,
            text: text.into(),
            success_response: outcome.success_response,
        }
    }
}

impl From<&FfiOutcome> for Outcome {
    fn from(outcome: &FfiOutcome) -> Self {
        let text = outcome.text.to_string();
        Outcome {
            result: match outcome.kind {
                0 => Ok(text),
                kind => Err(CommandError::new(ErrorKind::from_u8(kind), text)),
            },
            success_response: outcome.success_response,
        }
    }
}

impl From<&CommandInfo> for FfiCommandInfo {
    fn from(info: &CommandInfo) -> Self {
        FfiCommandInfo {
            name: info.name.as_str().into(),
            enabled: info.enabled,
            success_response: info.success_response,
        }
    }
}

impl From<&FfiCommandInfo> for CommandInfo {
    fn from(info: &FfiCommandInfo) -> Self {
        CommandInfo {
            name: info.name.to_string(),
            enabled: info.enabled,
            success_response: info.success_response,
        }
    }
}

impl From<Gate> for FfiGate {
    fn from(gate: Gate) -> Self {
        FfiGate {
            name: gate.name.into(),
            reason: gate.reason.into(),
            allow: gate.allow.into_iter().map(RString::from).collect(),
        }
    }
}

impl From<&FfiGate> for Gate {
    fn from(gate: &FfiGate) -> Self {
        Gate {
            name: gate.name.to_string(),
            reason: gate.reason.to_string(),
            allow: gate.allow.iter().map(|s| s.to_string()).collect(),
        }
    }
}
