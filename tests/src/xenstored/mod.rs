//! A fake xenstored for end-to-end tests: a XenStore daemon on a unix
//! socket that the real clients (Debian's `xenstore-*` tools through
//! `XENSTORED_PATH`, the `xenstore-rs` crate) talk to as they would to the
//! real one, with direct access to the store, a journal of what clients
//! changed, and `stop`/`resume` to simulate the daemon going away.
//!
//! It is a test double, not a xenstored: every client is domain 0; there are
//! no permissions (GET_PERMS answers `n0`, SET_PERMS is accepted and
//! ignored), no quotas, and no real transactions (operations inside one apply
//! at once and TRANSACTION_END always succeeds, so conflicts and EAGAIN
//! cannot be tested). Special watch paths (`@introduceDomain`, ...) are
//! accepted and fire only their initial event. A client that stops reading
//! is disconnected once 1024 messages are queued for it, so that it cannot
//! hold the others up.
//!
//! The wire protocol is described in the Xen header `xs_wire.h`; what
//! matters here is in `wire.rs`.

mod server;
mod state;
mod store;
#[cfg(test)]
mod tests;
pub mod wire;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use state::JournalOp;
pub use store::HOME;

use state::Shared;

pub struct FakeXenstored {
    shared: Arc<Shared>,
    socket: PathBuf,
    listener: Option<server::Listener>,
}

impl FakeXenstored {
    /// Listens on `socket` (a stale socket file there is replaced) and
    /// serves every connection on its own threads. The store starts with
    /// `/local/domain/0/name` = `Domain-0`.
    pub fn start(socket: &Path) -> io::Result<FakeXenstored> {
        let mut server = FakeXenstored {
            shared: Arc::new(Shared::new()),
            socket: socket.to_path_buf(),
            listener: None,
        };
        server.resume()?;
        Ok(server)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Simulates xenstored going away: stops listening, removes the socket
    /// file, shuts every client connection down and forgets it with its
    /// watches. The store and the journal are kept, as by a xenstored
    /// restart that keeps its database.
    pub fn stop(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        listener.stop();
        let _ = std::fs::remove_file(&self.socket);
        self.shared.update(|state| {
            for (_, conn) in state.conns.drain() {
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            }
            state.watches.clear();
        });
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Listens again on the same path with the same store (after `stop`; a
    /// no-op while listening).
    pub fn resume(&mut self) -> io::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(server::listen(self.shared.clone(), &self.socket)?);
        }
        Ok(())
    }

    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.shared
            .lock()
            .store
            .read(&absolute(path))
            .map(<[u8]>::to_vec)
    }

    /// Like a client WRITE (creates parents, fires watches), journaled as
    /// connection 0.
    pub fn write(&self, path: &str, value: &[u8]) {
        assert!(value.len() <= wire::PAYLOAD_MAX, "value over 4096 bytes");
        let path = absolute(path);
        self.shared.update(|state| {
            let events = state.write(0, &path, value);
            state.deliver(events);
        });
    }

    /// Like a client RM (fires watches), journaled as connection 0. Nothing
    /// happens if the parent is missing too.
    pub fn remove(&self, path: &str) {
        let path = absolute(path);
        self.shared.update(|state| {
            if let Ok(events) = state.remove(0, &path) {
                state.deliver(events);
            }
        });
    }

    /// Child names in creation order, `None` if the node is missing.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let state = self.shared.lock();
        state
            .store
            .children(&absolute(path))
            .map(<[String]>::to_vec)
    }

    /// Every successful mutating request, in order, as (connection, op).
    /// Connections are numbered from 1 in the order they were accepted
    /// (across `stop`/`resume`); 0 is this handle's `write`/`remove`. A MKDIR of an existing node and
    /// an RM of a missing one are recorded too: they are what the client did.
    pub fn journal(&self) -> Vec<(u64, JournalOp)> {
        self.shared.lock().journal.clone()
    }

    /// Number of currently connected clients.
    pub fn connections(&self) -> usize {
        self.shared.lock().conns.len()
    }

    /// Current watches as (connection, path as the client gave it).
    pub fn watches(&self) -> Vec<(u64, String)> {
        let state = self.shared.lock();
        state
            .watches
            .iter()
            .map(|w| (w.conn, w.given.clone()))
            .collect()
    }

    /// Polls `condition` after every change to the server's state (store,
    /// journal, connections, watches) until it holds (`true`) or `timeout`
    /// passes (`false`).
    pub fn wait_until(&self, timeout: Duration, mut condition: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.shared.lock().version;
            if condition(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.shared.wait_change(seen, deadline - now);
        }
    }

    /// The value at `path` once it exists, or `None` after `timeout`.
    pub fn wait_for(&self, path: &str, timeout: Duration) -> Option<Vec<u8>> {
        let mut value = None;
        self.wait_until(timeout, |x| {
            value = x.read(path);
            value.is_some()
        });
        value
    }
}

impl Drop for FakeXenstored {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Direct accesses take absolute, valid paths; anything else is a bug in
/// the test.
fn absolute(path: &str) -> String {
    match store::canonical(path) {
        Ok(abs) if path.starts_with('/') => abs,
        _ => panic!("FakeXenstored: {path:?} is not a valid absolute path"),
    }
}
