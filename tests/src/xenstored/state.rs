//! Everything behind the one lock: the store, watches, journal and the
//! registry of connected clients; the mutations and the watch events they
//! fire.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::store::{is_under, split, Errno, Store, HOME};
use super::wire;

/// A mutating request as the journal records it. Paths are absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalOp {
    Write { path: String, len: usize },
    Mkdir { path: String },
    Remove { path: String },
    SetPerms { path: String },
}

impl JournalOp {
    pub fn path(&self) -> &str {
        match self {
            JournalOp::Write { path, .. }
            | JournalOp::Mkdir { path }
            | JournalOp::Remove { path }
            | JournalOp::SetPerms { path } => path,
        }
    }
}

pub struct Watch {
    pub conn: u64,
    /// As the client sent it: relative, absolute or special (`@...`).
    pub given: String,
    /// Absolute form (`given` for special paths).
    pub abs: String,
    pub token: String,
}

impl Watch {
    fn relative(&self) -> bool {
        !self.given.starts_with('/') && !self.special()
    }

    fn special(&self) -> bool {
        self.given.starts_with('@')
    }
}

/// A connected client, as the rest of the server reaches it.
pub struct ConnHandle {
    /// To shut it down.
    pub stream: UnixStream,
    /// Whole messages for its writer thread.
    pub out: SyncSender<Vec<u8>>,
}

/// (connection, whole WATCH_EVENT message)
pub type Event = (u64, Vec<u8>);

pub struct State {
    pub store: Store,
    pub watches: Vec<Watch>,
    pub journal: Vec<(u64, JournalOp)>,
    pub conns: HashMap<u64, ConnHandle>,
    /// Bumped by every `Shared::update`, for `wait_until`.
    pub version: u64,
}

pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Connection threads, joined by `stop`.
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connection numbers go on across `stop`/`resume`; 0 is the test's
    /// direct access.
    pub next_conn: AtomicU64,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            state: Mutex::new(State {
                store: Store::new(),
                watches: Vec::new(),
                journal: Vec::new(),
                conns: HashMap::new(),
                version: 0,
            }),
            changed: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The state, even if a thread panicked while holding it: one bad
    /// connection must not take the server (and every later test step) down.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let result = f(&mut state);
        state.version += 1;
        drop(state);
        self.changed.notify_all();
        result
    }

    /// Waits until `version` moves past `seen` or the timeout passes.
    pub fn wait_change(&self, seen: u64, timeout: std::time::Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.version == seen);
    }
}

impl State {
    /// Queues a message for a connection, if it is still connected.
    pub fn send(&self, conn: u64, message: Vec<u8>) {
        let Some(handle) = self.conns.get(&conn) else {
            return;
        };
        if let Err(TrySendError::Full(_)) = handle.out.try_send(message) {
            // It stopped reading: drop it rather than block the others.
            let _ = handle.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn deliver(&self, events: Vec<Event>) {
        for (conn, message) in events {
            self.send(conn, message);
        }
    }

    pub fn write(&mut self, conn: u64, path: &str, value: &[u8]) -> Vec<Event> {
        self.store.write(path, value);
        self.journal.push((
            conn,
            JournalOp::Write {
                path: path.to_owned(),
                len: value.len(),
            },
        ));
        self.events(path, false)
    }

    pub fn mkdir(&mut self, conn: u64, path: &str) -> Vec<Event> {
        let created = self.store.create(path);
        self.journal.push((
            conn,
            JournalOp::Mkdir {
                path: path.to_owned(),
            },
        ));
        if created {
            self.events(path, false)
        } else {
            Vec::new()
        }
    }

    /// RM: removing a missing node is fine if its parent exists.
    pub fn remove(&mut self, conn: u64, path: &str) -> Result<Vec<Event>, Errno> {
        if path == "/" {
            return Err("EINVAL");
        }
        let existed = self.store.remove(path);
        if !existed && !self.store.exists(split(path).0) {
            return Err("ENOENT");
        }
        self.journal.push((
            conn,
            JournalOp::Remove {
                path: path.to_owned(),
            },
        ));
        Ok(if existed {
            self.events(path, true)
        } else {
            Vec::new()
        })
    }

    pub fn set_perms(&mut self, conn: u64, path: &str) -> Result<Vec<Event>, Errno> {
        if !self.store.exists(path) {
            return Err("ENOENT");
        }
        self.journal.push((
            conn,
            JournalOp::SetPerms {
                path: path.to_owned(),
            },
        ));
        Ok(self.events(path, false))
    }

    /// Events for a change of `changed`: watches on it or above it fire with
    /// its path; for a removal (`subtree`), watches below it fire too, with
    /// their own path.
    fn events(&self, changed: &str, subtree: bool) -> Vec<Event> {
        let mut events = Vec::new();
        for watch in self.watches.iter().filter(|w| !w.special()) {
            let path = if is_under(changed, &watch.abs) {
                changed
            } else if subtree && is_under(&watch.abs, changed) {
                watch.abs.as_str()
            } else {
                continue;
            };
            let shown = match watch.relative() {
                true => path.strip_prefix(&format!("{HOME}/")).unwrap_or(path),
                false => path,
            };
            events.push((watch.conn, watch_event(shown, &watch.token)));
        }
        events
    }

    /// Forgets a connection and its watches (its writer thread ends once the
    /// queue is drained).
    pub fn disconnect(&mut self, conn: u64) {
        self.conns.remove(&conn);
        self.watches.retain(|w| w.conn != conn);
    }
}

pub fn watch_event(path: &str, token: &str) -> Vec<u8> {
    let payload = format!("{path}\0{token}\0");
    wire::message(wire::WATCH_EVENT, 0, 0, payload.as_bytes())
}
