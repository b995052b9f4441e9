//! The log bridge: inside a plugin, `tracing` events and panic reports go to
//! the agent through the host's log callback.
//!
//! Every cdylib carries its own copy of `tracing-core` and of std, so the
//! agent's subscriber and panic hook do not see a plugin's. `install` sets a
//! small forwarding subscriber and a panic hook in the plugin's copies.

use std::any::Any;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use abi_stable::std_types::RStr;
use tracing_core::{
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::Interest,
    Event, Metadata, Subscriber,
};

use crate::ffi::HostBox;
use crate::types::LogLevel;

static HOST: OnceLock<Arc<HostBox>> = OnceLock::new();

/// Installs the bridge once per loaded plugin; later calls keep the first host.
pub(crate) fn install(host: &Arc<HostBox>) {
    if HOST.set(Arc::clone(host)).is_err() {
        return;
    }
    let forwarder = Forwarder {
        next_span: AtomicU64::new(1),
    };
    // Fails only if the plugin set its own subscriber first; then it keeps it.
    let _ = tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(forwarder));
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = panic_message(info.payload());
        forward(
            LogLevel::ERROR,
            "nova_agent_plugin_api::panic",
            &format!("plugin panicked{location}: {message}"),
        );
    }));
}

fn forward(level: LogLevel, target: &str, message: &str) {
    if let Some(host) = HOST.get() {
        host.log(level.0, RStr::from_str(target), RStr::from_str(message));
    } else {
        eprintln!("{target}: {message}");
    }
}

struct Forwarder {
    next_span: AtomicU64,
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The agent's filter can change at run time; ask it on every event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Spans are not forwarded; events carry what matters.
        metadata.is_event()
            && HOST.get().is_some_and(|host| {
                host.log_enabled(
                    LogLevel::from_tracing(*metadata.level()).0,
                    RStr::from_str(metadata.target()),
                )
            })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let metadata = event.metadata();
        forward(
            LogLevel::from_tracing(*metadata.level()),
            metadata.target(),
            &text.finish(),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `message key=value ...`, as the agent's own formatter writes events.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(self.fields.trim_start());
        }
        self.message
    }
}

impl Visit for EventText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// A panic's message, for the log and the guard.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
