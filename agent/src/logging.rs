//! The agent's log: `tracing` to stderr, filtered by `[log] level` or
//! `RUST_LOG`; and the receiving end of the plugins' log bridge.
//!
//! A plugin's event arrives as (level, target, message). It is re-emitted
//! through a callsite made for that (level, target) pair, so the filter
//! (`RUST_LOG=nova_agent_plugin_unix_socket=debug`) and the formatter treat it
//! exactly as one of the agent's own events.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_core::{
    callsite::{Callsite, Identifier},
    field::{FieldSet, Value},
    metadata::Kind,
    subscriber::Interest,
    Event, Level, Metadata,
};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Starts the log. `RUST_LOG`, when set, overrides `level`; it takes
/// `level` and `target=level` directives separated by commas (no regexes:
/// `Targets` instead of `EnvFilter` keeps the regex engine out of the binary).
pub fn init(level: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let targets = match from_env.as_deref().map(str::parse::<Targets>) {
        Some(Ok(targets)) => targets,
        Some(Err(e)) => {
            eprintln!("nova-agent: ignoring RUST_LOG ({e}); using level {level}");
            level.parse().unwrap_or_default()
        }
        None => level.parse().unwrap_or_default(),
    };
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(targets)
        .try_init();
}

/// Past this many distinct (level, target) pairs, plugin events share one
/// target: a plugin cannot make the agent leak memory by inventing targets.
const MAX_CALLSITES: usize = 1024;
const OVERFLOW_TARGET: &str = "nova_agent::plugin";

struct PluginCallsite {
    metadata: OnceLock<Metadata<'static>>,
}

impl Callsite for PluginCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'static> {
        self.metadata
            .get()
            .expect("metadata is set before registration")
    }
}

/// Callsites by target, then level: looked up with a borrowed `&str`, so a
/// plugin event allocates nothing once its callsite exists.
type CallsiteMap = HashMap<String, Vec<(Level, &'static PluginCallsite)>>;

fn callsite(level: Level, target: &str) -> &'static PluginCallsite {
    static CALLSITES: OnceLock<Mutex<CallsiteMap>> = OnceLock::new();
    let mut map = CALLSITES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let find = |map: &CallsiteMap, target: &str| {
        map.get(target)
            .and_then(|sites| sites.iter().find(|(l, _)| *l == level))
            .map(|(_, site)| *site)
    };
    if let Some(found) = find(&map, target) {
        return found;
    }
    let count: usize = map.values().map(Vec::len).sum();
    let target = if count >= MAX_CALLSITES {
        OVERFLOW_TARGET
    } else {
        target
    };
    if let Some(found) = find(&map, target) {
        return found;
    }
    // Leaked on purpose: callsites must be 'static, and there are few.
    let static_target: &'static str = Box::leak(target.to_owned().into_boxed_str());
    let site: &'static PluginCallsite = Box::leak(Box::new(PluginCallsite {
        metadata: OnceLock::new(),
    }));
    let _ = site.metadata.set(Metadata::new(
        "plugin event",
        static_target,
        level,
        None,
        None,
        Some(static_target),
        FieldSet::new(&["message"], Identifier(site)),
        Kind::EVENT,
    ));
    tracing_core::callsite::register(site);
    map.entry(target.to_owned())
        .or_default()
        .push((level, site));
    site
}

/// Whether a plugin's event at `level` for `target` would be recorded.
pub fn plugin_event_enabled(level: Level, target: &str) -> bool {
    if level > tracing::level_filters::LevelFilter::current() {
        return false;
    }
    let metadata = callsite(level, target).metadata();
    tracing::dispatcher::get_default(|dispatch| dispatch.enabled(metadata))
}

/// Records a plugin's event as if the agent had written it at `target`.
pub fn plugin_event(level: Level, target: &str, message: &str) {
    if !plugin_event_enabled(level, target) {
        return;
    }
    let metadata = callsite(level, target).metadata();
    let fields = metadata.fields();
    let Some(field) = fields.field("message") else {
        return;
    };
    let message = format_args!("{message}");
    Event::dispatch(
        metadata,
        &fields.value_set(&[(&field, Some(&message as &dyn Value))]),
    );
}
