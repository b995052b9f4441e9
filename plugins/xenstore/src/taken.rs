//! "Taken" markers: an empty file `<state_dir>/xenstore/taken/<id>` for each
//! request handed to a worker, removed once the request is answered and
//! removed. A marker found for a request still waiting means the agent
//! stopped (crashed, was killed) while running it: the request is answered
//! [`STOPPED`] instead of being run a second time, so a command that crashes
//! the agent cannot crash it again after every restart, and a half-done
//! `resetnetwork` or `password` is not repeated.
//!
//! The markers live on the guest's disk, not in XenStore, which the host can
//! edit. No fsync: a process that crashes does not lose the page cache.
//!
//! Threads: creating a file may block while the filesystem is frozen, so
//! markers are created on the worker's thread (in `next`) and removed on
//! tokio's blocking pool, never on the XenStore thread itself. A lookup is a
//! `stat`, which a freeze does not block.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::settings::{is_name_byte, MAX_ID_LEN};

/// The answer to a request found marked: the json parser answers it
/// `{"returncode": "500", "message": STOPPED}`.
pub(crate) const STOPPED: &str =
    "the agent stopped while running this request; it was not run again";

pub(crate) struct Taken {
    /// `<state_dir>/xenstore/taken`; `None` when the agent gave no absolute
    /// state directory (no markers are kept then).
    dir: Option<PathBuf>,
    /// A marker could not be created; said once until one can be again.
    failing: AtomicBool,
    /// The markers of requests that no longer exist have been removed.
    swept: AtomicBool,
}

impl Taken {
    /// Markers under `state_dir` (the agent's `state_dir`).
    pub(crate) fn new(state_dir: &Path) -> Taken {
        let dir = if state_dir.is_absolute() {
            Some(state_dir.join("xenstore").join("taken"))
        } else {
            tracing::warn!(
                "the agent gave the xenstore plugin no absolute state_dir ({:?}); a request \
                 in flight when the agent dies will be run again after its restart",
                state_dir.display().to_string()
            );
            None
        };
        Taken {
            dir,
            failing: AtomicBool::new(false),
            swept: AtomicBool::new(false),
        }
    }

    /// The marker's path; `None` for an id that is not a plain XenStore name
    /// of at most [`MAX_ID_LEN`] bytes (it could name a path outside the
    /// directory: `..`, `a/b`), and when no markers are kept.
    pub(crate) fn marker(&self, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(is_name_byte);
        plain.then(|| self.dir.as_ref().map(|dir| dir.join(id)))?
    }

    /// Records that request `id` is being handed to a worker. A marker that
    /// cannot be created is logged; the request runs anyway.
    pub(crate) fn mark(&self, id: &str) {
        let Some(marker) = self.marker(id) else {
            return;
        };
        match create(&marker) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "requests in flight are recorded in {} again",
                        parent(&marker)
                    );
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot record request {id} as taken in {}: {e}; if the agent dies \
                         while running it, it will be run again after the restart \
                         (make the directory writable by the agent)",
                        parent(&marker)
                    );
                }
            }
        }
    }

    /// Whether request `id` was handed to a worker and never answered.
    pub(crate) fn is_marked(&self, id: &str) -> bool {
        self.marker(id)
            .is_some_and(|marker| marker.symlink_metadata().is_ok())
    }

    /// Removes request `id`'s marker, if any (blocking: see the module doc).
    pub(crate) fn unmark(&self, id: &str) {
        if let Some(marker) = self.marker(id) {
            remove(&marker);
        }
    }

    /// Whether [`Taken::sweep_once`] is still to run.
    pub(crate) fn sweep_pending(&self) -> bool {
        self.dir.is_some() && !self.swept.load(Ordering::Relaxed)
    }

    /// Once per plugin instance: removes the markers of requests that are
    /// not in `listed`, a full listing of the request directory (blocking).
    /// A request that appears after that listing is taken only after this
    /// returns (the XenStore thread waits for it), so no marker it gets is
    /// removed here.
    pub(crate) fn sweep_once(&self, listed: &HashSet<String>) {
        let Some(dir) = &self.dir else {
            return;
        };
        if self.swept.swap(true, Ordering::Relaxed) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!("cannot list {}: {e}", dir.display());
                return;
            }
        };
        let mut removed = 0;
        for entry in entries.map_while(Result::ok) {
            let name = entry.file_name();
            if name.to_str().is_some_and(|id| listed.contains(id)) {
                continue;
            }
            remove(&entry.path());
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!("removed {removed} marker(s) of requests that no longer exist");
        }
    }
}

fn create(marker: &Path) -> io::Result<()> {
    if let Some(dir) = marker.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(marker)
        .map(drop)
}

fn remove(marker: &Path) {
    match std::fs::remove_file(marker) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "cannot remove {}: {e}; it is removed at the agent's next start",
            marker.display()
        ),
    }
}

fn parent(marker: &Path) -> String {
    marker
        .parent()
        .map_or_else(String::new, |dir| dir.display().to_string())
}
