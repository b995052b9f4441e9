//! The services the agent gives plugins (`FfiHost`), and the per-request
//! context a command sees (`FfiCall`).
//!
//! These run inside a plugin's call stack, behind `extern "C"` frames: a panic
//! here would abort the agent, so each method is guarded.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use nova_agent_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use nova_agent_plugin_api::ffi::{ExchangeBox, FfiCall, FfiHost, FfiHost_TO, HostBox};
use nova_agent_plugin_api::{LogLevel, PluginError};

use crate::logging;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every plugin is told about the agent.
#[derive(Clone)]
pub struct AgentHost {
    pub root: PathBuf,
    pub apply: bool,
    /// The names a request may call, published whenever the registry changes.
    pub command_names: Arc<ArcSwap<Vec<String>>>,
}

impl AgentHost {
    pub fn new(root: PathBuf, apply: bool) -> Self {
        AgentHost {
            root,
            apply,
            command_names: Arc::new(ArcSwap::from_pointee(Vec::new())),
        }
    }

    pub fn to_ffi(&self) -> HostBox {
        FfiHost_TO::from_value(self.clone(), TD_Opaque)
    }
}

fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

impl FfiHost for AgentHost {
    fn log_enabled(&self, level: LogLevel, target: RStr<'_>) -> bool {
        guarded(false, || {
            logging::plugin_event_enabled(level.to_tracing(), target.as_str())
        })
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        guarded((), || {
            logging::plugin_event(level.to_tracing(), target.as_str(), message.as_str())
        })
    }

    fn agent_version(&self) -> RString {
        AGENT_VERSION.into()
    }

    fn command_names(&self) -> RVec<RString> {
        guarded(RVec::new(), || {
            self.command_names
                .load()
                .iter()
                .map(|n| RString::from(n.as_str()))
                .collect()
        })
    }

    fn root(&self) -> RString {
        self.root.to_string_lossy().into_owned().into()
    }

    fn apply(&self) -> bool {
        self.apply
    }
}

/// One request's context: its channel, and metadata through its exchange.
pub struct RequestContext<'a> {
    pub channel: &'a str,
    pub exchange: &'a ExchangeBox,
}

fn panicked() -> PluginError {
    PluginError::Panicked("the agent panicked while serving a metadata request".into())
}

impl FfiCall for RequestContext<'_> {
    fn channel(&self) -> RString {
        self.channel.into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        guarded(RResult::RErr(panicked()), || {
            self.exchange.metadata_read(key)
        })
    }

    fn metadata_list(&self, dir: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        guarded(RResult::RErr(panicked()), || {
            self.exchange.metadata_list(dir)
        })
    }
}
