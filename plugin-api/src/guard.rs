//! The panic guard: adapters from the author's traits to the FFI traits, each
//! method run under `catch_unwind`.
//!
//! A panic that reaches an `extern "C"` frame aborts the whole agent, and
//! abi_stable's own guard calls `exit(1)`; so nothing a plugin author writes
//! runs outside these adapters.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RSlice, RStr, RString, RVec},
    RRef,
};

use crate::author::{Call, Command, Exchange, Parser, StreamDecoder};
use crate::ffi::{
    ExchangeBox, FfiCall_TO, FfiCommand, FfiCommandEntry, FfiCommand_TO, FfiDecoded, FfiError,
    FfiExchange, FfiExchange_TO, FfiFramed, FfiIncoming, FfiLifecycle, FfiOutcome, FfiParser,
    FfiParser_TO, FfiResult, FfiStreamDecoder, FfiStreamDecoder_TO, ParserBox, StreamDecoderBox,
};
use crate::log::panic_message;
use crate::types::{Decoded, ErrorKind, Outcome, PluginError};

/// Runs `f`, turning a panic into `FfiError::Panicked`.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> FfiResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(FfiError::from).into(),
        Err(payload) => Err(FfiError::Panicked(panic_message(&*payload).into())).into(),
    }
}

/// Runs `f` where there is no error channel; a panic yields `fallback`.
fn guard_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn decoded(list: Vec<Decoded>) -> RVec<FfiDecoded> {
    list.into_iter().map(FfiDecoded::from).collect()
}

struct GuardedCommand<T> {
    command: T,
    success_response: bool,
}

impl<T: Command> FfiCommand for GuardedCommand<T> {
    fn run<'a>(&self, call: FfiCall_TO<'a, RRef<'a, ()>>, arguments: RStr<'a>) -> FfiOutcome {
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.command.run(&Call::from_ffi(call, arguments.as_str()))
        }));
        let (kind, text) = match result {
            Ok(Ok(value)) => (0, json_text(&value)),
            Ok(Err(e)) => (e.kind.to_u8(), e.message),
            Err(payload) => (ErrorKind::Panicked.to_u8(), panic_message(&*payload)),
        };
        FfiOutcome {
            kind,
            text: text.into(),
            success_response: self.success_response,
        }
    }
}

/// A value's compact JSON text, in one allocation of a reasonable size.
fn json_text(value: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail: its map keys are strings.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

struct GuardedParser<T>(T);

impl<T: Parser> FfiParser for GuardedParser<T> {
    fn decode(&self, input: FfiFramed<'_>) -> FfiResult<FfiDecoded> {
        let input = match input {
            FfiFramed::Request(bytes) => Ok(bytes.as_slice()),
            FfiFramed::Unreadable(reason) => Err(reason.as_str()),
        };
        guard(|| Ok(self.0.decode(input).into()))
    }

    fn encode(
        &self,
        command: RStr<'_>,
        context: RStr<'_>,
        outcome: &FfiOutcome,
    ) -> FfiResult<ROption<RVec<u8>>> {
        guard(|| {
            let outcome = Outcome::from(outcome);
            let encoded = self.0.encode(command.as_str(), context.as_str(), &outcome);
            Ok(encoded.map(RVec::from).into())
        })
    }

    fn stream_decoder(&self) -> FfiResult<ROption<StreamDecoderBox>> {
        guard(|| {
            Ok(self
                .0
                .stream_decoder()
                .map(|d| FfiStreamDecoder_TO::from_value(GuardedStreamDecoder(d), TD_Opaque))
                .into())
        })
    }
}

struct GuardedStreamDecoder(Box<dyn StreamDecoder>);

impl FfiStreamDecoder for GuardedStreamDecoder {
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> FfiResult<RVec<FfiDecoded>> {
        guard(|| Ok(decoded(self.0.feed(bytes.as_slice()))))
    }
}

struct GuardedExchange<T>(T);

impl<T: Exchange> FfiExchange for GuardedExchange<T> {
    fn start(&self) -> FfiResult<()> {
        guard(|| self.0.start())
    }

    fn next(&self) -> FfiResult<ROption<FfiIncoming>> {
        guard(|| Ok(self.0.next()?.map(FfiIncoming::from).into()))
    }

    fn respond(&self, id: RStr<'_>, response: RSlice<'_, u8>) -> FfiResult<()> {
        guard(|| self.0.respond(id.as_str(), response.as_slice()))
    }

    fn max_response_len(&self) -> ROption<u64> {
        guard_or(None, || self.0.max_response_len()).into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>> {
        guard(|| {
            self.0
                .metadata_read(key.as_str())
                .map(|v| v.map(RString::from).into())
        })
    }

    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>> {
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

pub(crate) struct GuardedLifecycle(pub(crate) Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl FfiLifecycle for GuardedLifecycle {
    fn shutdown(&self) {
        let hook = self.0.lock().ok().and_then(|mut h| h.take());
        if let Some(hook) = hook {
            guard_or((), hook)
        }
    }
}

/// `exchange` behind its guard.
pub(crate) fn exchange(exchange: impl Exchange) -> ExchangeBox {
    FfiExchange_TO::from_value(GuardedExchange(exchange), TD_Opaque)
}

/// `parser` behind its guard.
pub(crate) fn parser(parser: impl Parser) -> ParserBox {
    FfiParser_TO::from_value(GuardedParser(parser), TD_Opaque)
}

/// `command` behind its guard, with what the registry lists of it.
pub(crate) fn command(name: &str, command: impl Command) -> FfiCommandEntry {
    let success_response = guard_or(true, || command.success_response());
    let object = GuardedCommand {
        command,
        success_response,
    };
    FfiCommandEntry {
        name: name.into(),
        success_response,
        object: FfiCommand_TO::from_value(object, TD_Opaque),
    }
}
