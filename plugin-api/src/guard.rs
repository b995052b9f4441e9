//! The panic guard: adapters from the author's traits to the FFI traits, each
//! method run under `catch_unwind`.
//!
//! A panic that reaches an `extern "C"` frame aborts the whole agent, and
//! abi_stable's own guard calls `exit(1)`; so nothing a plugin author writes
//! may run outside [`guard`].

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    RRef,
};

use crate::author::{Call, Command, Dispatch, Exchange, Host, Parser, Provides};
use crate::ffi::{
    FfiCall_TO, FfiCommand, FfiDispatch_TO, FfiExchange, FfiLifecycle, FfiLifecycle_TO, FfiParser,
    HostBox, Instance,
};
use crate::types::{PluginError, Reply, Request};

/// Runs `f`, turning a panic into `PluginError::Panicked`.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::Panicked(panic_message(&*payload).into())),
    }
}

/// Runs `f` where there is no error channel; a panic yields `fallback`.
fn guard_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

pub(crate) struct GuardedCommand<T>(pub T);

impl<T: Command> FfiCommand for GuardedCommand<T> {
    fn run<'a>(
        &self,
        call: FfiCall_TO<'a, RRef<'a, ()>>,
        value_json: RStr<'a>,
    ) -> RResult<Reply, PluginError> {
        guard(|| self.0.run(&Call::from_ffi(call, value_json.as_str())))
    }
}

pub(crate) struct GuardedParser<T>(pub T);

impl<T: Parser> FfiParser for GuardedParser<T> {
    fn handle<'a>(
        &self,
        body: RResult<RSlice<'a, u8>, RStr<'a>>,
        dispatch: FfiDispatch_TO<'a, RRef<'a, ()>>,
    ) -> RResult<RVec<u8>, PluginError> {
        let body = match body {
            RResult::ROk(bytes) => Ok(bytes.as_slice()),
            RResult::RErr(reason) => Err(reason.as_str()),
        };
        guard(|| {
            self.0
                .handle(body, &Dispatch::from_ffi(dispatch))
                .map(RVec::from)
        })
    }

    fn error_response(&self, code: RStr<'_>, message: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        guard(|| {
            Ok(RVec::from(
                self.0.error_response(code.as_str(), message.as_str()),
            ))
        })
    }
}

pub(crate) struct GuardedExchange<T>(pub T);

impl<T: Exchange> FfiExchange for GuardedExchange<T> {
    fn start(&self) -> RResult<(), PluginError> {
        guard(|| self.0.start())
    }

    fn next_request(&self) -> RResult<ROption<Request>, PluginError> {
        guard(|| self.0.next_request().map(ROption::from))
    }

    fn put_response(&self, id: RStr<'_>, response: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.put_response(id.as_str(), response.as_slice()))
    }

    fn max_response_len(&self) -> ROption<u64> {
        guard_or(None, || self.0.max_response_len()).into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        guard(|| {
            self.0
                .metadata_read(key.as_str())
                .map(|v| v.map(RString::from).into())
        })
    }

    fn metadata_list(&self, dir: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        guard(|| {
            self.0
                .metadata_list(dir.as_str())
                .map(|v| v.into_iter().map(RString::from).collect())
        })
    }

    fn shutdown(&self) {
        guard_or((), || self.0.shutdown())
    }
}

struct GuardedLifecycle(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl FfiLifecycle for GuardedLifecycle {
    fn shutdown(&self) {
        let hook = self.0.lock().ok().and_then(|mut h| h.take());
        if let Some(hook) = hook {
            guard_or((), hook)
        }
    }
}

/// The body of every plugin's `extern "C" fn init`, which `export_plugin!`
/// writes: installs the log bridge and panic hook, then runs the author's
/// `init` under the guard.
pub fn run_init(
    host: HostBox,
    config_json: RStr<'_>,
    init: fn(Host, &str) -> Result<Provides, PluginError>,
) -> RResult<Instance, PluginError> {
    guard(|| {
        let host = Host::new(host);
        crate::log::install(&host);
        let provides = init(host, config_json.as_str())?;
        Ok(Instance {
            exchanges: provides
                .exchanges
                .into_iter()
                .map(|(n, o)| Tuple2(n.into(), o))
                .collect(),
            parsers: provides
                .parsers
                .into_iter()
                .map(|(n, o)| Tuple2(n.into(), o))
                .collect(),
            commands: provides
                .commands
                .into_iter()
                .map(|(n, o)| Tuple2(n.into(), o))
                .collect(),
            lifecycle: FfiLifecycle_TO::from_value(
                GuardedLifecycle(Mutex::new(provides.on_shutdown)),
                TD_Opaque,
            ),
        })
    })
}
