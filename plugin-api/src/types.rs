//! Plain data that crosses the ABI boundary.

use std::fmt;

use abi_stable::{
    std_types::{RResult, RString, RVec},
    StableAbi,
};

/// Why a plugin call did not produce a value.
///
/// This enum is frozen: its two variants are the whole ABI. A condition that
/// needs more detail says so in the message.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The plugin panicked; the panic was caught at the boundary. The payload
    /// is the panic message.
    Panicked(RString),
    /// The plugin reports a failure, with a message for people.
    Failed(RString),
}

impl PluginError {
    /// A failure with a message for people.
    pub fn failed(message: impl Into<String>) -> Self {
        PluginError::Failed(RString::from(message.into()))
    }

    /// The message, without saying whether it was a panic.
    pub fn message(&self) -> &str {
        match self {
            PluginError::Panicked(m) | PluginError::Failed(m) => m.as_str(),
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

/// What a command answers: a return code and a message, both strings, as the
/// Nova protocol has them (`"0"` success, `"D0"` key exchange, `"404"`, `"500"`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: RString,
    pub message: RString,
}

impl Reply {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Reply {
            code: RString::from(code.into()),
            message: RString::from(message.into()),
        }
    }

    /// Code `"0"`.
    pub fn ok(message: impl Into<String>) -> Self {
        Reply::new("0", message)
    }

    /// Code `"500"`.
    pub fn error(message: impl Into<String>) -> Self {
        Reply::new("500", message)
    }
}

/// One raw request taken from an exchange.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Opaque to everyone but the exchange that made it; handed back to
    /// `put_response`.
    pub id: RString,
    /// The raw bytes, or why the exchange could not read them (too large,
    /// vanished). The parser answers an unreadable request with an error.
    pub body: RResult<RVec<u8>, RString>,
}

impl Request {
    pub fn new(id: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Request {
            id: RString::from(id.into()),
            body: RResult::ROk(RVec::from(body.into())),
        }
    }

    /// A request the exchange saw but cannot hand over, with the reason.
    pub fn unreadable(id: impl Into<String>, reason: impl Into<String>) -> Self {
        Request {
            id: RString::from(id.into()),
            body: RResult::RErr(RString::from(reason.into())),
        }
    }
}

/// A log level as it crosses the boundary (1 = error .. 5 = trace).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
