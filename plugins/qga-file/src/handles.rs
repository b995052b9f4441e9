//! The open files by handle, and the handle counter kept across restarts.
//!
//! Handles are numbered as qemu-ga numbers them: from 1000 up, never
//! reused, the next number saved (in `<state_dir>/qga-file/next-handle`)
//! before a handle is given out, so that a handle the host kept from before
//! a restart names nothing afterwards.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nova_agent_plugin_api::CommandError;
use nova_agent_support::files::write_file;
use nova_agent_support::sync::lock;

/// qemu-ga's first handle (`QGA_PSTATE_DEFAULT_FD_COUNTER`).
const FIRST_HANDLE: i64 = 1000;

/// One open file; its lock keeps the operations on one handle in order.
pub(crate) type OpenFile = Arc<Mutex<File>>;

pub(crate) struct Handles {
    counter_file: PathBuf,
    /// The next handle; read from `counter_file` at the first open.
    next: Mutex<Option<i64>>,
    open: Mutex<HashMap<i64, OpenFile>>,
}

impl Handles {
    /// A table that keeps its counter in `dir` (created at the first open).
    pub(crate) fn new(dir: PathBuf) -> Handles {
        Handles {
            counter_file: dir.join("next-handle"),
            next: Mutex::new(None),
            open: Mutex::default(),
        }
    }

    /// Gives `file` the next handle. The file is closed again when the
    /// counter cannot be saved.
    pub(crate) fn add(&self, file: File) -> Result<i64, CommandError> {
        let handle = {
            let mut next = lock(&self.next);
            let handle = next.unwrap_or_else(|| self.saved_counter());
            // Counted even when saving fails, so a handle is never reused.
            *next = Some(handle + 1);
            self.save_counter(handle + 1)?;
            handle
        };
        lock(&self.open).insert(handle, Arc::new(Mutex::new(file)));
        Ok(handle)
    }

    pub(crate) fn get(&self, handle: i64) -> Result<OpenFile, CommandError> {
        lock(&self.open)
            .get(&handle)
            .cloned()
            .ok_or_else(|| not_found(handle))
    }

    /// Takes `handle` out of the table; the file closes when the last
    /// operation on it ends.
    pub(crate) fn remove(&self, handle: i64) -> Result<OpenFile, CommandError> {
        lock(&self.open)
            .remove(&handle)
            .ok_or_else(|| not_found(handle))
    }

    /// Closes every file (the plugin instance is retired).
    pub(crate) fn close_all(&self) {
        let open = std::mem::take(&mut *lock(&self.open));
        if !open.is_empty() {
            tracing::info!("closing {} guest file handle(s)", open.len());
        }
    }

    fn saved_counter(&self) -> i64 {
        match std::fs::read_to_string(&self.counter_file) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(
                    "{} does not hold a handle number; counting from {FIRST_HANDLE}",
                    self.counter_file.display()
                );
                FIRST_HANDLE
            }),
            Err(_) => FIRST_HANDLE,
        }
    }

    fn save_counter(&self, next: i64) -> Result<(), CommandError> {
        let saved = match self.counter_file.parent() {
            Some(dir) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir),
            None => Ok(()),
        }
        .and_then(|()| write_file(&self.counter_file, 0o600, format!("{next}\n").as_bytes()));
        saved.map_err(|e| {
            tracing::error!("cannot save the next guest file handle: {e}");
            CommandError::failed("failed to commit persistent state to disk")
        })
    }
}

fn not_found(handle: i64) -> CommandError {
    CommandError::failed(format!("handle '{handle}' has not been found"))
}
