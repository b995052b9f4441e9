//! inotify on the plugin directories: a debounced "something changed" for the
//! reload thread.
//!
//! dpkg installs `libfoo.so` by writing `libfoo.so.dpkg-new` and renaming it
//! over the old file; rpm writes `libfoo.so;<hex>` and renames it. Only
//! events on names that are plugin candidates count (the temporaries are
//! not), so the rename triggers the reload and the write does not. A change
//! is reported once the directories have been quiet for [`QUIET`] (a package
//! replaces several files in a row), or [`LONGEST_WAIT`] after the first
//! event at the latest.
//!
//! A plugin directory that does not exist yet, or was removed, is watched
//! again once it exists (checked every [`REWATCH`]); its appearance counts as
//! a change.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::plugins::loader::is_candidate_name;

/// Quiet time that ends a burst of changes.
pub(crate) const QUIET: Duration = Duration::from_millis(20);
/// The longest a change waits for the directories to be quiet.
pub(crate) const LONGEST_WAIT: Duration = Duration::from_millis(250);
/// How often missing directories are looked for (and the stop flag read).
const REWATCH: Duration = Duration::from_secs(1);

fn interesting() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Watches `dirs` on a thread of its own and calls `changed` after each
/// burst of changes, until `stopping` is set.
pub(crate) fn spawn(
    dirs: Vec<PathBuf>,
    stopping: Arc<AtomicBool>,
    changed: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    let mut watcher = Watcher {
        inotify,
        dirs,
        watched: HashMap::new(),
    };
    watcher.rewatch();
    std::thread::Builder::new()
        .name("plugin watch".into())
        .spawn(move || watcher.run(&stopping, &changed))
}

struct Watcher {
    inotify: Inotify,
    dirs: Vec<PathBuf>,
    watched: HashMap<WatchDescriptor, PathBuf>,
}

impl Watcher {
    fn run(&mut self, stopping: &AtomicBool, changed: &dyn Fn()) {
        // (first event, last event) of the burst being waited out.
        let mut burst: Option<(Instant, Instant)> = None;
        let mut last_rewatch = Instant::now();
        while !stopping.load(Ordering::Acquire) {
            let wait = match burst {
                Some((first, last)) => {
                    let until = (last + QUIET).min(first + LONGEST_WAIT);
                    until.saturating_duration_since(Instant::now())
                }
                None => REWATCH,
            };
            let ready = {
                let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
                let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
                poll(&mut fds, timeout).is_ok_and(|n| n > 0)
            };
            if ready && self.read_events() {
                let now = Instant::now();
                burst = Some(burst.map_or((now, now), |(first, _)| (first, now)));
            }
            if last_rewatch.elapsed() >= REWATCH {
                last_rewatch = Instant::now();
                if self.rewatch() {
                    let now = Instant::now();
                    burst.get_or_insert((now, now));
                }
            }
            if let Some((first, last)) = burst {
                let now = Instant::now();
                if now >= last + QUIET || now >= first + LONGEST_WAIT {
                    burst = None;
                    changed();
                }
            }
        }
    }

    /// Reads what is pending; `true` if any of it concerns plugins.
    fn read_events(&mut self) -> bool {
        let mut relevant = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    relevant = true;
                    continue;
                }
                if event.mask.intersects(
                    AddWatchFlags::IN_IGNORED
                        | AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF,
                ) {
                    // The directory itself went away: its plugins did too.
                    if let Some(dir) = self.watched.remove(&event.wd) {
                        tracing::info!("plugin directory {} is gone", dir.display());
                        let _ = self.inotify.rm_watch(event.wd);
                    }
                    relevant = true;
                    continue;
                }
                let Some(name) = event.name.as_deref() else {
                    continue;
                };
                let dir = self.watched.get(&event.wd);
                if dir.is_some_and(|dir| concerns_plugins(dir, name, event.mask)) {
                    relevant = true;
                }
            }
        }
        relevant
    }

    /// Watches the directories that exist and are not watched yet; `true`
    /// if one was added after start-up.
    fn rewatch(&mut self) -> bool {
        let mut added = false;
        for dir in &self.dirs {
            if self.watched.values().any(|d| d == dir) || !dir.is_dir() {
                continue;
            }
            match self.inotify.add_watch(dir.as_path(), interesting()) {
                Ok(wd) => {
                    tracing::debug!("watching plugin directory {}", dir.display());
                    added = true;
                    self.watched.insert(wd, dir.clone());
                }
                Err(e) => tracing::warn!(
                    "cannot watch plugin directory {}: {e}; changes there need `nova-agent plugins reload`",
                    dir.display()
                ),
            }
        }
        added
    }
}

/// A change to `name` in `dir` matters: a plugin candidate was written,
/// renamed, removed or had its mode changed. A new name alone matters only
/// for a symlink (a regular file is counted once it is closed or renamed
/// into place, not while it is being written).
fn concerns_plugins(dir: &Path, name: &OsStr, mask: AddWatchFlags) -> bool {
    if !is_candidate_name(&name.to_string_lossy()) {
        return false;
    }
    if mask.contains(AddWatchFlags::IN_CREATE) {
        return std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_symlink());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn watch(dir: &Path) -> (mpsc::Receiver<Instant>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        spawn(vec![dir.to_path_buf()], Arc::clone(&stopping), move || {
            let _ = tx.send(Instant::now());
        })
        .unwrap();
        (rx, stopping)
    }

    #[test]
    fn the_dpkg_pattern_is_one_change_and_temporaries_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let (changes, stopping) = watch(dir.path());
        std::fs::write(dir.path().join("libfoo.so.dpkg-new"), b"v2").unwrap();
        std::fs::write(dir.path().join("libfoo.so;5f2a9c"), b"v2").unwrap();
        std::fs::write(dir.path().join(".hidden.so"), b"x").unwrap();
        assert!(
            changes.recv_timeout(Duration::from_millis(400)).is_err(),
            "temporaries counted as a change"
        );
        let renamed = Instant::now();
        std::fs::rename(
            dir.path().join("libfoo.so.dpkg-new"),
            dir.path().join("libfoo.so"),
        )
        .unwrap();
        let seen = changes.recv_timeout(Duration::from_secs(2)).unwrap();
        assert!(seen.duration_since(renamed) >= QUIET);
        assert!(changes.recv_timeout(Duration::from_millis(300)).is_err());
        stopping.store(true, Ordering::Release);
    }

    #[test]
    fn a_burst_of_renames_is_one_change() {
        let dir = tempfile::tempdir().unwrap();
        let (changes, stopping) = watch(dir.path());
        for name in ["liba.so", "libb.so", "libc.so"] {
            let temp = dir.path().join(format!("{name}.dpkg-new"));
            std::fs::write(&temp, b"x").unwrap();
            std::fs::rename(&temp, dir.path().join(name)).unwrap();
        }
        changes.recv_timeout(Duration::from_secs(2)).unwrap();
        assert!(changes.recv_timeout(Duration::from_millis(300)).is_err());
        std::fs::remove_file(dir.path().join("libb.so")).unwrap();
        changes.recv_timeout(Duration::from_secs(2)).unwrap();
        stopping.store(true, Ordering::Release);
    }

    #[test]
    fn a_directory_created_later_is_watched() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("plugins");
        let (changes, stopping) = watch(&dir);
        std::fs::create_dir(&dir).unwrap();
        changes.recv_timeout(REWATCH * 3).unwrap();
        std::fs::write(dir.join("liba.so"), b"x").unwrap();
        changes.recv_timeout(Duration::from_secs(2)).unwrap();
        stopping.store(true, Ordering::Release);
    }
}
