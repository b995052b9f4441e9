//! The plain data of a request's life: what an exchange hands over, what a
//! parser decodes, what a command answers. No abi_stable type appears here.

use std::fmt;

/// Why a plugin could not do what the agent asked outside a command: `init`
/// refused its config, an exchange lost its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The plugin panicked; the panic was caught at the boundary. The payload
    /// is the panic message.
    Panicked(String),
    /// The plugin reports a failure, with a message for people.
    Failed(String),
}

impl PluginError {
    /// A failure with a message for people.
    pub fn failed(message: impl Into<String>) -> Self {
        PluginError::Failed(message.into())
    }

    /// The message, without saying whether it was a panic.
    pub fn message(&self) -> &str {
        match self {
            PluginError::Panicked(m) | PluginError::Failed(m) => m,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::Panicked(m) => write!(f, "panicked: {m}"),
            PluginError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PluginError {}

/// Why a request did not produce a value. Each protocol answers a kind its
/// own way (the Nova protocol: `"404"` or `"500"`; QGA: `CommandNotFound`
/// or `GenericError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No command of that name is registered. Set by the agent.
    UnknownCommand,
    /// The command exists but may not run: `[commands] deny`, or a closed
    /// [`Gate`]. Set by the agent; the message is the reason, empty for
    /// `deny`.
    Disabled,
    /// The arguments do not fit the command.
    BadArguments,
    /// What the command needs does not exist (no init script, no host key).
    NotFound,
    /// The command ran and failed.
    Failed,
    /// The command panicked; set by the panic guard. The message is the
    /// agent's, never the panic's.
    Panicked,
}

impl ErrorKind {
    /// The kind's number on the wire between agent and plugins.
    #[doc(hidden)]
    pub fn to_u8(self) -> u8 {
        match self {
            ErrorKind::UnknownCommand => 1,
            ErrorKind::Disabled => 2,
            ErrorKind::BadArguments => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Failed => 5,
            ErrorKind::Panicked => 6,
        }
    }

    /// The inverse of [`to_u8`](Self::to_u8); a number from a newer agent
    /// or plugin reads as `Failed`.
    #[doc(hidden)]
    pub fn from_u8(n: u8) -> ErrorKind {
        match n {
            1 => ErrorKind::UnknownCommand,
            2 => ErrorKind::Disabled,
            3 => ErrorKind::BadArguments,
            4 => ErrorKind::NotFound,
            6 => ErrorKind::Panicked,
            _ => ErrorKind::Failed,
        }
    }
}

/// A request that did not produce a value: its kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
        }
    }

    /// The command ran and failed.
    pub fn failed(message: impl Into<String>) -> Self {
        CommandError::new(ErrorKind::Failed, message)
    }

    /// The arguments do not fit the command.
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        CommandError::new(ErrorKind::BadArguments, message)
    }

    /// What the command needs does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        CommandError::new(ErrorKind::NotFound, message)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

impl From<PluginError> for CommandError {
    fn from(e: PluginError) -> Self {
        CommandError::failed(e.message())
    }
}

/// What a parser gets back for a call it decoded: the command's result, and
/// whether the command wants an answer when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// On success the command's value as compact JSON text.
    pub result: Result<String, CommandError>,
    /// `false` for a command that answers nothing when it succeeds (QGA's
    /// `guest-shutdown`); errors are always answered.
    pub success_response: bool,
}

impl Outcome {
    /// A success with `value`, answered.
    pub fn value(value: &serde_json::Value) -> Self {
        Outcome {
            result: Ok(value.to_string()),
            success_response: true,
        }
    }

    /// A failure of `kind`.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Outcome {
            result: Err(CommandError::new(kind, message)),
            success_response: true,
        }
    }

    /// The success value parsed, or `None` for an error (or text that is not
    /// JSON, which the agent never hands over).
    pub fn parsed_value(&self) -> Option<serde_json::Value> {
        self.result
            .as_ref()
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// The success value parsed, or the error: what the command returned.
    /// Text that is not JSON (which the agent never hands over) reads as
    /// `Value::Null`.
    pub fn into_value(self) -> Result<serde_json::Value, CommandError> {
        self.result
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

/// One command call a parser found in its input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedCall {
    /// The command's name, as the registry knows it.
    pub command: String,
    /// The arguments as JSON text, handed to the command unchanged.
    pub arguments: String,
    /// Whatever the parser needs to answer (a request id, a flag), handed
    /// back to [`Parser::encode`](crate::Parser::encode) untouched.
    pub context: String,
}

/// One item of decoded input, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Run a command and encode its outcome.
    Call(ParsedCall),
    /// Send these bytes as they are (an answer to input that named no
    /// command: malformed JSON, a bad envelope).
    Answer(Vec<u8>),
}

/// What an exchange hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One whole request (a XenStore node, a line of the unix socket).
    Request(Vec<u8>),
    /// A request the exchange saw but cannot hand over (too large, vanished),
    /// with the reason.
    Unreadable(String),
    /// Raw bytes read from a stream (a serial port); the parser frames them.
    /// Chunks of one stream come in order, never two at a time.
    Stream { stream: String, bytes: Vec<u8> },
    /// The stream is gone for good: the agent drops its decoder.
    StreamEnd { stream: String },
}

/// One unit of input and the exchange's handle for answering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Opaque to everyone but the exchange; handed back to
    /// [`Exchange::respond`](crate::Exchange::respond).
    pub id: String,
    pub input: Input,
}

impl Incoming {
    /// A whole request.
    pub fn request(id: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Incoming {
            id: id.into(),
            input: Input::Request(body.into()),
        }
    }

    /// A request that cannot be handed over, with the reason.
    pub fn unreadable(id: impl Into<String>, reason: impl Into<String>) -> Self {
        Incoming {
            id: id.into(),
            input: Input::Unreadable(reason.into()),
        }
    }

    /// Bytes read from `stream`.
    pub fn stream(id: impl Into<String>, stream: impl Into<String>, bytes: Vec<u8>) -> Self {
        Incoming {
            id: id.into(),
            input: Input::Stream {
                stream: stream.into(),
                bytes,
            },
        }
    }
}

/// A command as the registry lists it to plugins (QGA's `guest-info`,
/// Nova's `features`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    pub name: String,
    /// `false` while `[commands] deny` names it or a closed gate holds it.
    pub enabled: bool,
    /// `false` for a command that answers nothing on success.
    pub success_response: bool,
}

/// A state that, while closed, lets only some commands run; every other
/// command is answered [`ErrorKind::Disabled`] with the gate's reason. A
/// plugin declares it in [`Provides::gate`](crate::Provides::gate) and a
/// command closes and opens it through [`Host::set_gate`](crate::Host::set_gate);
/// the agent applies it to every request, whichever plugin serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub name: String,
    pub reason: String,
    pub allow: Vec<String>,
}

impl Gate {
    /// A gate that, when closed, lets no command through.
    pub fn new(name: impl Into<String>) -> Self {
        Gate {
            name: name.into(),
            reason: String::new(),
            allow: Vec::new(),
        }
    }

    /// What the refusal says (QGA: "the agent is in frozen state").
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// The commands that still run while the gate is closed.
    pub fn allow<I>(mut self, commands: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allow.extend(commands.into_iter().map(Into::into));
        self
    }
}

/// A log level as it crosses the boundary (1 = error .. 5 = trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogLevel(pub u8);

impl LogLevel {
    pub const ERROR: LogLevel = LogLevel(1);
    pub const WARN: LogLevel = LogLevel(2);
    pub const INFO: LogLevel = LogLevel(3);
    pub const DEBUG: LogLevel = LogLevel(4);
    pub const TRACE: LogLevel = LogLevel(5);

    pub fn from_tracing(level: tracing_core::Level) -> Self {
        match level {
            tracing_core::Level::ERROR => LogLevel::ERROR,
            tracing_core::Level::WARN => LogLevel::WARN,
            tracing_core::Level::INFO => LogLevel::INFO,
            tracing_core::Level::DEBUG => LogLevel::DEBUG,
            _ => LogLevel::TRACE,
        }
    }

    /// Unknown values (from a newer plugin) read as trace.
    pub fn to_tracing(self) -> tracing_core::Level {
        match self.0 {
            1 => tracing_core::Level::ERROR,
            2 => tracing_core::Level::WARN,
            3 => tracing_core::Level::INFO,
            4 => tracing_core::Level::DEBUG,
            _ => tracing_core::Level::TRACE,
        }
    }
}
