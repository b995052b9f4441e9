//! The agent's log: `tracing` to journald under systemd, to stderr
//! elsewhere, and optionally to a file; filtered by `[log] level` or
//! `RUST_LOG`; and the receiving end of the plugins' log bridge.
//!
//! A plugin's event arrives as (level, target, message). It is re-emitted
//! through a callsite made for that (level, target) pair, so the filter
//! (`RUST_LOG=nova_agent_plugin_unix_socket=debug`) and the formatter treat it
//! exactly as one of the agent's own events.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use nova_agent_support::sync::lock;
use tracing_core::{
    callsite::{Callsite, Identifier},
    field::{FieldSet, Value},
    metadata::Kind,
    subscriber::Interest,
    Event, Level, Metadata,
};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::trusted;

/// Starts the log of a one-shot command: stderr only. `RUST_LOG`, when set,
/// overrides `level`; it takes `level` and `target=level` directives
/// separated by commas (no regexes: `Targets` instead of `EnvFilter` keeps the
/// regex engine out of the binary).
pub(crate) fn init(level: &str) {
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter(level))
        .try_init();
}

/// Where the service's log goes.
pub(crate) struct ServiceLog<'a> {
    pub(crate) level: &'a str,
    /// Also (or, daemonized, only) to this file, mode 0600, appended.
    pub(crate) file: Option<&'a Path>,
    /// stderr is gone (`run --daemonize`).
    pub(crate) daemonized: bool,
}

/// Starts the service's log: journald when stderr is connected to the
/// journal (systemd says so in `JOURNAL_STREAM`), with the events' fields
/// (`CHANNEL=`, `PLUGIN=`, `COMMAND=`) as journal fields; stderr otherwise;
/// and the file, if any. Returns a line saying where the log goes.
pub(crate) fn init_service(log: &ServiceLog<'_>) -> std::io::Result<String> {
    let journald = if !log.daemonized && stderr_is_journal() {
        tracing_journald::layer().ok().map(|layer| {
            layer
                .with_syslog_identifier("nova-agent".to_owned())
                .with_field_prefix(None)
        })
    } else {
        None
    };
    let stderr = (journald.is_none() && !log.daemonized).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let file = match log.file {
        Some(path) => Some(open_private(path)?),
        None => None,
    };
    let mut sinks = Vec::new();
    if journald.is_some() {
        sinks.push("journald".to_owned());
    }
    if stderr.is_some() {
        sinks.push("stderr".to_owned());
    }
    if let Some(path) = log.file {
        sinks.push(path.display().to_string());
    }
    let file = file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(Mutex::new(file))
            .with_ansi(false)
    });
    let _ = tracing_subscriber::registry()
        .with(Hold)
        .with(journald)
        .with(stderr)
        .with(file)
        .with(filter(log.level))
        .try_init();
    Ok(format!("logging to {}", sinks.join(" and ")))
}

static HELD: AtomicBool = AtomicBool::new(false);
static HELD_BACK: AtomicU64 = AtomicU64::new(0);

/// Holds the service's log back (`true`) or lets it through again. While a
/// gate is closed (the guest's filesystems frozen) the agent writes nothing:
/// every sink may end in a file, and a write to a frozen filesystem blocks
/// until it thaws. As qemu-ga does, events are not kept; their number is
/// logged once the log flows again.
pub(crate) fn hold(held: bool) {
    let was = HELD.swap(held, Ordering::AcqRel);
    if was && !held {
        let count = HELD_BACK.swap(0, Ordering::AcqRel);
        if count > 0 {
            tracing::info!("{count} log events were not written while a gate was closed");
        }
    }
}

/// The global filter that applies [`hold`].
struct Hold;

impl<S: tracing_core::Subscriber> Layer<S> for Hold {
    fn event_enabled(&self, _event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        if HELD.load(Ordering::Acquire) {
            HELD_BACK.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

fn filter(level: &str) -> Targets {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    match from_env.as_deref().map(str::parse::<Targets>) {
        Some(Ok(targets)) => targets,
        Some(Err(e)) => {
            eprintln!("nova-agent: ignoring RUST_LOG ({e}); using level {level}");
            level.parse().unwrap_or_default()
        }
        None => level.parse().unwrap_or_default(),
    }
}

/// The log file, appended to, readable by root only (secrets never reach the
/// log, but request names and host details do). Opened without following a
/// symlink, and as root only in a directory whose entries root alone can
/// change; the mode is set on the descriptor, so never through a link.
fn open_private(path: &Path) -> std::io::Result<File> {
    let refused = |reason: String| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("log file {}: {reason}", path.display()),
        )
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refused("not a file name".to_owned()));
    };
    let dir = if trusted::required() {
        trusted::directory(dir).map_err(|e| refused(format!("{e}; choose another [log] file")))?
    } else {
        dir.to_path_buf()
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                refused("is a symlink; the log file must be a regular file".to_owned())
            }
            _ => std::io::Error::new(
                e.kind(),
                format!("opening log file {}: {e}", path.display()),
            ),
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("not a regular file".to_owned()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(refused(format!(
            "owned by uid {}; remove it, the agent creates it",
            meta.uid()
        )));
    }
    if meta.nlink() > 1 {
        return Err(refused(format!(
            "has {} hard links; remove it, the agent creates it",
            meta.nlink()
        )));
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// systemd sets `JOURNAL_STREAM=<dev>:<ino>` for a service whose stderr goes
/// to the journal; it is ours only if stderr still is that file.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
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
    let mut map = lock(CALLSITES.get_or_init(Default::default));
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
pub(crate) fn plugin_event_enabled(level: Level, target: &str) -> bool {
    if level > tracing::level_filters::LevelFilter::current() {
        return false;
    }
    let metadata = callsite(level, target).metadata();
    tracing::dispatcher::get_default(|dispatch| dispatch.enabled(metadata))
}

/// Records a plugin's event as if the agent had written it at `target`.
pub(crate) fn plugin_event(level: Level, target: &str, message: &str) {
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

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};
    use std::io::Write;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::{hold, open_private, Hold};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_held_log_writes_nothing_and_then_says_how_much_it_held_back() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry().with(Hold).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            hold(true);
            tracing::info!("while frozen");
            tracing::warn!("while frozen too");
            hold(false);
            tracing::info!("after");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("before") && text.contains("after"), "{text}");
        assert!(!text.contains("while frozen"), "{text}");
        assert!(
            text.contains("2 log events were not written while a gate was closed"),
            "{text}"
        );
    }

    /// A directory for a log file, mode 0755, for tests that run as root
    /// (the agent's real case); others skip with a note.
    fn log_dir() -> Option<tempfile::TempDir> {
        if !crate::trusted::required() {
            eprintln!("skipped: the checks apply to root only");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        Some(dir)
    }

    #[test]
    fn the_log_file_is_created_private_and_an_existing_one_made_private() {
        let Some(dir) = log_dir() else { return };
        let path = dir.path().join("agent.log");
        open_private(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        open_private(&path).unwrap().write_all(b"line\n").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_symlinked_log_file_is_refused_and_its_target_untouched() {
        let Some(dir) = log_dir() else { return };
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::set_permissions(&victim, Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("agent.log");
        symlink(&victim, &path).unwrap();
        let e = open_private(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "log file {}: is a symlink; the log file must be a regular file",
                path.display()
            )
        );
        assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn a_log_file_in_a_directory_others_can_write_is_refused() {
        let Some(dir) = log_dir() else { return };
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).unwrap();
        fs::set_permissions(&logs, Permissions::from_mode(0o1777)).unwrap();
        let e = open_private(&logs.join("agent.log"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("log file "), "{e}");
        assert!(
            e.contains("is writable by group or others (mode 1777)"),
            "{e}"
        );
        assert!(e.ends_with("; choose another [log] file"), "{e}");
        assert!(!logs.join("agent.log").exists());
    }

    #[test]
    fn a_hard_linked_log_file_is_refused() {
        let Some(dir) = log_dir() else { return };
        let other = dir.path().join("other");
        fs::write(&other, b"keep").unwrap();
        let path = dir.path().join("agent.log");
        fs::hard_link(&other, &path).unwrap();
        let e = open_private(&path).unwrap_err().to_string();
        assert!(e.contains("has 2 hard links"), "{e}");
    }
}
