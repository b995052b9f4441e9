//! The running socket, served by the agent's own worker threads: the thread
//! that reads a request is the thread that processes and answers it, as in a
//! single-threaded server, with no hand-off (and no thread wake-up) between
//! reading and processing. The plugin starts no thread.
//!
//! One epoll instance per exchange holds the listening socket and every
//! connection, all non-blocking and registered with EPOLLIN | EPOLLONESHOT,
//! plus a level-triggered eventfd that shutdown signals. A worker blocked in
//! `next` waits for one event at a time:
//!
//! - the listener: accept every pending connection (closing those beyond
//!   `MAX_CONNECTIONS`), register them, re-arm the listener;
//! - a connection: read what it holds; a complete line is handed out as the
//!   request, and the connection stays disarmed (busy) until `respond`
//!   has written the answer; with no complete line yet, re-arm it and wait on;
//! - the eventfd: the exchange is shutting down, answer `None`.
//!
//! EPOLLONESHOT is what makes this safe with several workers: an event
//! disarms its descriptor, so one thread at most reads a connection (or
//! accepts) at a time, and a connection has one request in flight at most,
//! which keeps its answers in order.
//!
//! Pipelined lines. One `recv` takes whatever the socket holds, so the
//! connection's buffer (`lines::LineReader`) may already hold its next lines
//! when an answer goes out. Re-arming for readability alone would then wait
//! for bytes the client has already sent. So `respond` re-arms such a
//! connection for EPOLLOUT too: a socket whose client reads its answers is
//! writable, the event fires at once, and a waiting worker (maybe this same
//! one, back in `next`) takes the buffered line. A client that reads
//! no answers at all waits with its buffered lines until it does (or sends
//! more), which is fair back-pressure. The alternative, peeking (MSG_PEEK) to
//! read exactly one line and leave the rest in the kernel, would cost a second
//! `recv` for every request.
//!
//! Answers are written with one `sendmsg` (body and newline) on the
//! non-blocking socket; when it is full, `respond` waits for room at most
//! `WRITE_TIMEOUT` in all, then closes the connection: a client that never
//! reads cannot hold an agent thread for good. A turn of reading is bounded
//! too, so one client streaming an endless line cannot either. An empty
//! answer (the parser had nothing to say) sends nothing, not even a newline,
//! and the connection goes on to its next line as after any answer, so the
//! answers that do go out keep their order.
//!
//! Shutdown drains: the agent swaps in a new build of the plugin while
//! running (shut the old exchange down, let its workers answer what they
//! hold, start the new one on the same path), and a swap must not cost a
//! client its answer. So shutdown stops accepting, removes the socket file at
//! once (the path is free for the new build), and reads no further line from
//! any connection; an idle connection is closed there and then, but one whose
//! request was handed out stays open until `respond` writes that answer
//! (within `WRITE_TIMEOUT`, as always), and closes after it. Its client gets
//! the answer, then the end of the stream, and reconnects to the new build.
//! Lines read but not yet handed out are dropped: their client sees the end
//! of the stream before an answer, as after any restart.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use nix::sys::epoll::EpollFlags;
use nix::sys::socket::{accept4, SockFlag};
use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::lock;
use tracing::{debug, info, warn};

use crate::conn::{After, Conn, Turn};
use crate::poller::{Poller, READ_ONCE, READ_OR_WRITE_ONCE, WAKE};
use nova_agent_support::socket::{self, remove_if_ours};

/// Connections served at once; more are closed as they arrive.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// The listener's token in epoll events; connections' are their numbers.
const LISTENER: u64 = WAKE - 1;
/// Connections one turn may accept before it lets the others go first.
const ACCEPT_BUDGET: usize = 128;
/// How long accepting pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The socket of one exchange, from `start` to `shutdown`.
pub(crate) struct Server {
    path: PathBuf,
    stopping: AtomicBool,
    /// Made by the first `start` (under `life`), kept until the end.
    poller: OnceLock<Poller>,
    /// The listening socket while running. Held while accepting, so that
    /// shutdown cannot close it under a worker's feet.
    listener: Mutex<Option<UnixListener>>,
    conns: Mutex<Conns>,
    /// An accept failure was logged and no accept succeeded since.
    accept_failing: AtomicBool,
    life: Mutex<Life>,
}

enum Life {
    Idle,
    /// Device and inode of our socket file.
    Running((u64, u64)),
    /// Shut down for good: `next` answers `None` from now on.
    Stopped,
}

struct Conns {
    /// Open connections by number; once shut down, those owing an answer.
    map: HashMap<u64, Arc<Conn>>,
    last: u64,
    /// Shut down: admit no more.
    closed: bool,
    /// A "too many connections" warning was logged and no connection was
    /// admitted since.
    full_warned: bool,
}

impl Server {
    pub(crate) fn new(path: PathBuf) -> Self {
        Server {
            path,
            stopping: AtomicBool::new(false),
            poller: OnceLock::new(),
            listener: Mutex::new(None),
            conns: Mutex::new(Conns {
                map: HashMap::new(),
                last: 0,
                closed: false,
                full_warned: false,
            }),
            accept_failing: AtomicBool::new(false),
            life: Mutex::new(Life::Idle),
        }
    }

    pub(crate) fn start(&self) -> Result<(), String> {
        let path = &self.path;
        let mut life = lock(&self.life);
        match *life {
            Life::Idle => {}
            Life::Running(_) => return Err(format!("socket {} is already open", path.display())),
            Life::Stopped => {
                return Err(format!(
                    "the exchange for socket {} was shut down",
                    path.display()
                ))
            }
        }
        let poller = match self.poller.get() {
            Some(poller) => poller,
            None => {
                let made = Poller::new()
                    .map_err(|e| format!("cannot serve {}: epoll: {e}", path.display()))?;
                self.poller.get_or_init(|| made)
            }
        };
        let bound = socket::open(path)?;
        // Registered under the lock, so that a worker taking its first event
        // finds it in place.
        let mut slot = lock(&self.listener);
        let listener = bound.listener;
        let registered = listener
            .set_nonblocking(true)
            .and_then(|()| poller.add(&listener, LISTENER, READ_ONCE));
        if let Err(e) = registered {
            drop(listener);
            remove_if_ours(path, bound.id);
            return Err(format!("cannot serve {}: {e}", path.display()));
        }
        *slot = Some(listener);
        *life = Life::Running(bound.id);
        info!("listening on {}", path.display());
        Ok(())
    }

    /// Serves the sockets until one of them yields a request; `None` once shut
    /// down. Called by several threads at once.
    pub(crate) fn next(&self) -> Result<Option<Incoming>, String> {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let Some(poller) = self.poller.get() else {
                return Err(format!(
                    "the exchange for socket {} is not started",
                    self.path.display()
                ));
            };
            let token = match poller.wait() {
                Ok(Some(token)) => token,
                Ok(None) => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot wait for clients of {}: {e}",
                        self.path.display()
                    ))
                }
            };
            match token {
                // Only shutdown signals it; the loop's check answers `None`.
                WAKE => {}
                LISTENER => self.accept(poller),
                number => {
                    if let Some(request) = self.read(poller, number) {
                        return Ok(Some(request));
                    }
                }
            }
        }
    }

    /// Writes the answer to request `id`'s connection and lets the connection
    /// be read again (or, once shut down, closes it). A request whose client
    /// is gone (or an id that was never ours) is not an error.
    pub(crate) fn respond(&self, id: &str, response: &[u8]) {
        let Some((number, seq)) = parse_id(id) else {
            debug!("response for unknown request id {id:?} ignored");
            return;
        };
        let conn = lock(&self.conns).map.get(&number).cloned();
        let (Some(conn), Some(poller)) = (conn, self.poller.get()) else {
            debug!("response for request {id} dropped: its client is gone");
            return;
        };
        match conn.respond(seq, response) {
            After::NotAwaited => debug!("response for request {id} ignored: not awaited"),
            After::Rearm { buffered: false } => self.rearm(poller, &conn, READ_ONCE),
            After::Rearm { buffered: true } => self.rearm(poller, &conn, READ_OR_WRITE_ONCE),
            After::Close => self.close(&conn),
            After::Failed(e) => {
                self.close(&conn);
                if e.kind() == io::ErrorKind::TimedOut {
                    warn!(
                        "client of connection {number} on {} reads no responses; closed it",
                        self.path.display()
                    );
                } else {
                    debug!("response for request {id} not delivered: {e}");
                }
            }
        }
    }

    /// Wakes every `next`, stops accepting, removes the socket file if
    /// it is still ours, and closes every connection but those owing an answer
    /// to a request handed out, which `respond` closes once it wrote it.
    /// Idempotent; returns at once (it waits for no thread: a connection's
    /// state lock is never held while writing).
    pub(crate) fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut life = lock(&self.life);
        // Under `life`: a `start` in progress has made its poller by now.
        if let Some(poller) = self.poller.get() {
            poller.wake_all();
        }
        let Life::Running(id) = mem::replace(&mut *life, Life::Stopped) else {
            return;
        };
        let poller = self.poller.get();
        if let Some(listener) = lock(&self.listener).take() {
            if let Some(poller) = poller {
                let _ = poller.delete(&listener);
            }
        }
        let conns: Vec<Arc<Conn>> = {
            let mut conns = lock(&self.conns);
            conns.closed = true;
            conns.map.values().cloned().collect()
        };
        let mut draining = 0;
        for conn in conns {
            // Stopped, a connection is read no more. One owing an answer stays
            // in the map, disarmed, for `respond` to find, answer and
            // close. Any other is closed now; a worker still finishing a turn
            // of reading it finds it gone or stopped, and the descriptor
            // closes with the last reference.
            if conn.stop() {
                draining += 1;
            } else {
                self.close(&conn);
            }
        }
        remove_if_ours(&self.path, id);
        if draining == 0 {
            info!("closed {}", self.path.display());
        } else {
            info!(
                "closed {}; {draining} connection(s) close once answered",
                self.path.display()
            );
        }
    }

    /// A connection's event: read it, and hand out its request if complete.
    fn read(&self, poller: &Poller, number: u64) -> Option<Incoming> {
        // Gone: closed meanwhile (by shutdown); its event is stale.
        let conn = lock(&self.conns).map.get(&number).cloned()?;
        match conn.read_request() {
            Turn::Request(request) => Some(request),
            Turn::Busy => None,
            Turn::Wait => {
                self.rearm(poller, &conn, READ_ONCE);
                None
            }
            Turn::Done => {
                self.close(&conn);
                None
            }
        }
    }

    fn rearm(&self, poller: &Poller, conn: &Conn, events: EpollFlags) {
        if let Err(e) = poller.modify(conn.fd(), conn.number, events) {
            // Removed by a shutdown meanwhile, or the kernel is out of memory.
            debug!("connection {}: cannot wait for it: {e}", conn.number);
            self.close(conn);
        }
    }

    /// Closes a connection its caller has to itself (its descriptor disarmed).
    fn close(&self, conn: &Conn) {
        let removed = lock(&self.conns).map.remove(&conn.number).is_some();
        if let Some(poller) = self.poller.get() {
            let _ = poller.delete(conn.fd());
        }
        conn.shut();
        if removed {
            debug!("connection {} closed", conn.number);
        }
    }

    /// The listener's event: admit what is pending, then re-arm it.
    fn accept(&self, poller: &Poller) {
        let mut slot = lock(&self.listener);
        let Some(listener) = slot.as_ref() else {
            return; // shut down
        };
        let mut failed = None;
        for _ in 0..ACCEPT_BUDGET {
            match accept(listener) {
                Ok(fd) => {
                    self.accept_failing.store(false, Ordering::Relaxed);
                    self.admit(poller, fd);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // Out of descriptors or memory: pause, since the listener would
            // fire again at once, and let the others serve meanwhile.
            if !self.accept_failing.swap(true, Ordering::Relaxed) {
                warn!("cannot accept on {}: {e}", self.path.display());
            }
            drop(slot);
            thread::sleep(ACCEPT_BACKOFF);
            slot = lock(&self.listener);
        }
        if let Some(listener) = slot.as_ref() {
            if let Err(e) = poller.modify(listener, LISTENER, READ_ONCE) {
                warn!(
                    "cannot wait for connections on {}: {e}; no longer accepting",
                    self.path.display()
                );
            }
        }
    }

    /// Registers a new connection, or closes it when too many are open.
    fn admit(&self, poller: &Poller, fd: OwnedFd) {
        let mut conns = lock(&self.conns);
        if conns.closed {
            return;
        }
        if conns.map.len() >= MAX_CONNECTIONS {
            let warn_full = !mem::replace(&mut conns.full_warned, true);
            drop(conns);
            if warn_full {
                warn!(
                    "{} has {MAX_CONNECTIONS} connections open; refusing new ones until one closes",
                    self.path.display()
                );
            }
            return;
        }
        let number = conns.last + 1;
        let conn = Arc::new(Conn::new(number, fd));
        // Inserted under the same lock: a worker taking its first event waits
        // for the lock, then finds it.
        if let Err(e) = poller.add(conn.fd(), number, READ_ONCE) {
            drop(conns);
            warn!(
                "cannot serve a new connection on {}: {e}; closed it",
                self.path.display()
            );
            return;
        }
        conns.last = number;
        conns.full_warned = false;
        conns.map.insert(number, conn);
        drop(conns);
        debug!("connection {number} opened");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One pending connection, non-blocking.
fn accept(listener: &UnixListener) -> io::Result<OwnedFd> {
    Ok(accept4(
        listener,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
    )?)
}

/// `<connection>/<sequence>`.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (number, seq) = id.split_once('/')?;
    Some((number.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse() {
        assert_eq!(parse_id("3/17"), Some((3, 17)));
        assert_eq!(parse_id("3"), None);
        assert_eq!(parse_id("a/1"), None);
        assert_eq!(parse_id("1/2/3"), None);
    }

    #[test]
    fn next_before_start_is_an_error_and_after_shutdown_none() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::new(dir.path().join("a.sock"));
        assert!(server.next().is_err());
        server.shutdown();
        assert_eq!(server.next().map(|r| r.is_none()), Ok(true));
        assert!(server.start().is_err());
    }
}
