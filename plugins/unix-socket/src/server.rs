//! The running socket, served by the agent's own worker threads: the thread
//! that reads a request is the thread that processes and answers it, as in a
//! single-threaded server, with no hand-off (and no thread wake-up) between
//! reading and processing. The plugin starts no thread.
//!
//! One epoll instance per exchange holds the listening socket and every
//! connection, all non-blocking and registered with EPOLLONESHOT, plus a
//! level-triggered eventfd that shutdown signals and a timerfd for idle
//! connections. A worker blocked in `next` waits for one event at a time:
//!
//! - the listener: accept every pending connection, register them, re-arm
//!   the listener;
//! - a connection: send what is queued for it, read what it holds; a
//!   complete line is handed out as the request, and the connection stays
//!   disarmed (busy) until `respond` has queued the answer; with no complete
//!   line yet, re-arm it and wait on;
//! - the timer: close the connections idle for `idle_timeout`, set the timer
//!   for the next one due;
//! - the eventfd: the exchange is shutting down, answer `None`.
//!
//! EPOLLONESHOT is what makes this safe with several workers: an event
//! disarms its descriptor, so one thread at most reads a connection (or
//! accepts, or sweeps) at a time, and a connection has one request in flight
//! at most, which keeps its answers in order.
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
//! Answers never block a worker. `respond` sends what the socket takes at
//! once (body and newline, one `sendmsg`) and queues the rest on the
//! connection, which is then armed for EPOLLOUT as well: the turns that follow
//! send it as the client reads. A client that sends a request while more
//! than `MAX_QUEUED` bytes of its answers are unsent is closed, and that
//! request is not taken. A turn of reading
//! is bounded too, so one client streaming an endless line cannot hold a
//! worker either. An empty answer (the parser had nothing to say) sends
//! nothing, not even a newline, and the connection goes on to its next line
//! as after any answer, so the answers that do go out keep their order.
//!
//! Slots. At most `MAX_CONNECTIONS` connections are open. One on which
//! nothing moved for `idle_timeout` (no byte either way, no request of it
//! being answered) is closed; a queued answer its client does not read
//! counts as nothing moving. When a new client comes and every slot is
//! taken, the connection idle the longest is closed for it; only when every
//! one has a request being answered is the newcomer refused.
//!
//! Shutdown drains: the agent swaps in a new build of the plugin while
//! running (shut the old exchange down, let its workers answer what they
//! hold, start the new one on the same path), and a swap must not cost a
//! client its answer. So shutdown stops accepting, removes the socket file at
//! once (the path is free for the new build), and reads no further line from
//! any connection; an idle connection is closed there and then, but one whose
//! request was handed out stays open until `respond` has sent that answer
//! (blocking, within `WRITE_TIMEOUT`), and closes after it. One with answer
//! bytes queued is sent the rest by the next worker that calls `next` or
//! `respond` (as the agent's workers do on their way out), within
//! `WRITE_TIMEOUT`, then closed. Its client gets the answer, then the end of
//! the stream, and reconnects to the new build. Lines read but not yet handed
//! out are dropped: their client sees the end of the stream before an
//! answer, as after any restart.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::epoll::EpollFlags;
use nix::sys::socket::{accept4, SockFlag};
use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::lock;
use tracing::{debug, info, warn};

use crate::conn::{After, Conn, Idle, Stopped, Turn, MAX_QUEUED};
use crate::poller::{Poller, READ_ONCE, TIMER, WAKE};
use nova_agent_support::socket::{self, remove_if_ours};

/// Connections served at once; a newcomer beyond them takes the slot of the
/// one idle the longest.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// The listener's token in epoll events; connections' are their numbers.
const LISTENER: u64 = TIMER - 1;
/// Connections one turn may accept before it lets the others go first.
const ACCEPT_BUDGET: usize = 128;
/// How long accepting pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The socket of one exchange, from `start` to `shutdown`.
pub(crate) struct Server {
    path: PathBuf,
    /// A connection on which nothing moved this long is closed.
    idle_timeout: Duration,
    stopping: AtomicBool,
    /// Made by the first `start` (under `life`), kept until the end.
    poller: OnceLock<Poller>,
    /// The listening socket while running. Held while accepting, so that
    /// shutdown cannot close it under a worker's feet.
    listener: Mutex<Option<UnixListener>>,
    conns: Mutex<Conns>,
    /// When the timer is set to fire; `None`: not set.
    sweep_at: Mutex<Option<Instant>>,
    /// Shut down with answer bytes queued: for the next `next` or `respond`
    /// to send, then close.
    draining: Mutex<Vec<Arc<Conn>>>,
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
    /// The "every slot is taken" warning was logged and the count has not
    /// dropped below the limit since.
    full_warned: bool,
}

impl Server {
    pub(crate) fn new(path: PathBuf, idle_timeout: Duration) -> Self {
        Server {
            path,
            idle_timeout,
            stopping: AtomicBool::new(false),
            poller: OnceLock::new(),
            listener: Mutex::new(None),
            conns: Mutex::new(Conns {
                map: HashMap::new(),
                last: 0,
                closed: false,
                full_warned: false,
            }),
            sweep_at: Mutex::new(None),
            draining: Mutex::new(Vec::new()),
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
                self.drain();
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
                TIMER => self.sweep(poller),
                LISTENER => self.accept(poller),
                number => {
                    if let Some(request) = self.read(poller, number) {
                        return Ok(Some(request));
                    }
                }
            }
        }
    }

    /// Queues the answer to request `id` on its connection and lets the
    /// connection be read again (or, once shut down, sends it all and closes
    /// it). A request whose client is gone (or an id that was never ours) is
    /// not an error.
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
            After::Rearm(events) => {
                self.rearm(poller, &conn, events);
                self.schedule(poller, Instant::now() + self.idle_timeout);
            }
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
        if self.stopping.load(Ordering::SeqCst) {
            self.drain();
        }
    }

    /// Wakes every `next`, stops accepting, removes the socket file if
    /// it is still ours, and closes every connection but those owing an answer
    /// to a request handed out, which `respond` closes once it sent it, and
    /// those with answer bytes queued, which `drain` closes once sent.
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
            // in the map for `respond` to find, answer and close; one with
            // answer bytes queued goes to `draining`. Any other is closed now;
            // a worker still finishing a turn of it finds it gone or stopped,
            // and the descriptor closes with the last reference.
            match conn.stop() {
                Stopped::Answer => draining += 1,
                Stopped::Queued => {
                    draining += 1;
                    lock(&self.draining).push(conn);
                }
                Stopped::Nothing => self.close(&conn),
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
        match conn.turn() {
            Turn::Request(request) => Some(request),
            Turn::Leave => None,
            Turn::Wait(events) => {
                self.rearm(poller, &conn, events);
                None
            }
            Turn::Done => {
                self.close(&conn);
                None
            }
            Turn::Overflow => {
                self.close(&conn);
                warn!(
                    "client of connection {number} on {} sent a request with more than \
                     {MAX_QUEUED} bytes of answers unread; closed it",
                    self.path.display()
                );
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

    /// Closes a connection its caller has to itself (its descriptor disarmed,
    /// or the connection retired).
    fn close(&self, conn: &Conn) {
        let removed = lock(&self.conns).map.remove(&conn.number).is_some();
        self.unregister(conn);
        if removed {
            debug!("connection {} closed", conn.number);
        }
    }

    /// `close` for a connection already out of the map.
    fn unregister(&self, conn: &Conn) {
        if let Some(poller) = self.poller.get() {
            let _ = poller.delete(conn.fd());
        }
        conn.shut();
    }

    /// Sends what the connections shut down with queued answers are owed,
    /// one after another, then closes them.
    fn drain(&self) {
        loop {
            let Some(conn) = lock(&self.draining).pop() else {
                return;
            };
            if let Err(e) = conn.drain() {
                if e.kind() == io::ErrorKind::TimedOut {
                    warn!(
                        "client of connection {} on {} reads no responses; closed it",
                        conn.number,
                        self.path.display()
                    );
                } else {
                    debug!("connection {}: answer not delivered: {e}", conn.number);
                }
            }
            self.close(&conn);
        }
    }

    /// Makes the timer fire at `at`, unless it fires sooner already.
    fn schedule(&self, poller: &Poller, at: Instant) {
        let mut sweep_at = lock(&self.sweep_at);
        if sweep_at.is_some_and(|set| set <= at) {
            return;
        }
        match poller.set_timer(at.saturating_duration_since(Instant::now())) {
            Ok(()) => *sweep_at = Some(at),
            Err(e) => warn!(
                "cannot time idle connections on {}: {e}; they stay open",
                self.path.display()
            ),
        }
    }

    /// The timer's event: closes the connections idle for `idle_timeout`,
    /// sets the timer for the next one due, re-arms it.
    fn sweep(&self, poller: &Poller) {
        // Cleared first: a connection turning idle meanwhile sets it again,
        // and the earliest setting wins.
        *lock(&self.sweep_at) = None;
        let now = Instant::now();
        let conns: Vec<Arc<Conn>> = lock(&self.conns).map.values().cloned().collect();
        let mut next: Option<Instant> = None;
        for conn in conns {
            match conn.expire(now, self.idle_timeout) {
                Idle::Busy => {}
                Idle::Until(at) => next = Some(next.map_or(at, |next| next.min(at))),
                Idle::Expired => {
                    self.close(&conn);
                    debug!(
                        "connection {} idle for {:?}; closed it",
                        conn.number, self.idle_timeout
                    );
                }
            }
        }
        if let Some(at) = next {
            self.schedule(poller, at);
        }
        if let Err(e) = poller.rearm_timer() {
            warn!(
                "cannot time idle connections on {}: {e}; they stay open",
                self.path.display()
            );
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

    /// Registers a new connection; when every slot is taken, closes the
    /// connection idle the longest for it, or, if none is idle, the new one.
    fn admit(&self, poller: &Poller, fd: OwnedFd) {
        let mut conns = lock(&self.conns);
        if conns.closed {
            return;
        }
        let evicted = if conns.map.len() >= MAX_CONNECTIONS {
            let evicted = evict(&mut conns.map);
            let warn_full = !mem::replace(&mut conns.full_warned, true);
            if evicted.is_none() {
                drop(conns);
                warn!(
                    "{} has {MAX_CONNECTIONS} connections open, each with a request being \
                     answered; refused a new one",
                    self.path.display()
                );
                return;
            }
            if warn_full {
                warn!(
                    "{} has {MAX_CONNECTIONS} connections open; closing the one idle the \
                     longest for each new one",
                    self.path.display()
                );
            }
            evicted
        } else {
            conns.full_warned = false;
            None
        };
        let number = conns.last + 1;
        let conn = Arc::new(Conn::new(number, fd));
        // Inserted under the same lock: a worker taking its first event waits
        // for the lock, then finds it.
        let added = poller.add(conn.fd(), number, READ_ONCE);
        if added.is_ok() {
            conns.last = number;
            conns.map.insert(number, conn);
        }
        drop(conns);
        if let Some(old) = evicted {
            self.unregister(&old);
            debug!("connection {} closed for a new one", old.number);
        }
        match added {
            Ok(()) => {
                debug!("connection {number} opened");
                self.schedule(poller, Instant::now() + self.idle_timeout);
            }
            Err(e) => warn!(
                "cannot serve a new connection on {}: {e}; closed it",
                self.path.display()
            ),
        }
    }
}

/// Takes the connection idle the longest out of `map`, retired; `None` when
/// every one has a request being answered.
fn evict(map: &mut HashMap<u64, Arc<Conn>>) -> Option<Arc<Conn>> {
    let mut idle: Vec<(Instant, u64)> = map
        .values()
        .filter_map(|conn| Some((conn.idle_since()?, conn.number)))
        .collect();
    idle.sort_unstable();
    // Retiring checks again: one may have taken a request meanwhile.
    let (_, number) = idle
        .into_iter()
        .find(|(_, number)| map[number].retire_if_idle())?;
    map.remove(&number)
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
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (number, seq) = id.split_once('/')?;
    Some((number.parse().ok()?, seq.parse().ok()?))
}
