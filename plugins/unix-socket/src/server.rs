//! The running socket: the accept thread, one thread per connection, and the
//! queue through which requests reach the agent's threads.
//!
//! One request's path: its connection's thread reads the line, queues it
//! (waking one agent thread, and only if one is waiting) and goes back to
//! reading; the agent thread that took it calls `put_response`, which writes
//! the answer and its newline to the socket in one `sendmsg`. A connection
//! queues its next request only once the previous one is answered, so answers
//! keep their order and one client cannot flood the queue; meanwhile its
//! thread may already be reading that next line, which saves a thread wake-up
//! per request.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::mem;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nova_agent_plugin_api::Request;
use tracing::{debug, info, warn};

use crate::lines::{Line, LineReader, MAX_LINE};
use crate::socket;

/// Why a line longer than `MAX_LINE` is answered with an error.
pub(crate) const TOO_LONG: &str = "request line is longer than 1048576 bytes";
/// Connections served at once; more are closed as they arrive.
pub(crate) const MAX_CONNECTIONS: usize = 64;
const STACK_SIZE: usize = 128 * 1024;
/// How long one response write may wait for a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket of one exchange, from `start` to `shutdown`.
pub(crate) struct Server {
    inner: Arc<Inner>,
    life: Mutex<Life>,
}

enum Life {
    Idle,
    Running(Running),
    /// Shut down for good: `next_request` answers `None` from now on.
    Stopped,
}

struct Running {
    listener: Arc<UnixListener>,
    accept: JoinHandle<()>,
    /// Device and inode of our socket file.
    id: (u64, u64),
}

/// What the accept and connection threads share with the exchange.
struct Inner {
    path: PathBuf,
    queue: Queue,
    conns: Mutex<Conns>,
    stopping: AtomicBool,
}

struct Conns {
    map: HashMap<u64, Arc<Conn>>,
    last: u64,
    closed: bool,
    /// A "too many connections" warning was logged and no connection was
    /// admitted since.
    full_warned: bool,
}

impl Server {
    pub(crate) fn new(path: PathBuf) -> Self {
        Server {
            inner: Arc::new(Inner {
                path,
                queue: Queue::default(),
                conns: Mutex::new(Conns {
                    map: HashMap::new(),
                    last: 0,
                    closed: false,
                    full_warned: false,
                }),
                stopping: AtomicBool::new(false),
            }),
            life: Mutex::new(Life::Idle),
        }
    }

    pub(crate) fn start(&self) -> Result<(), String> {
        let path = &self.inner.path;
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
        let bound = socket::open(path)?;
        let listener = Arc::new(bound.listener);
        let spawned = {
            let inner = Arc::clone(&self.inner);
            let listener = Arc::clone(&listener);
            thread::Builder::new()
                .name("unix-socket".to_owned())
                .stack_size(STACK_SIZE)
                .spawn(move || accept_loop(&inner, &listener))
        };
        let accept = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                remove_if_ours(path, bound.id);
                return Err(format!(
                    "cannot start the thread serving {}: {e}",
                    path.display()
                ));
            }
        };
        *life = Life::Running(Running {
            listener,
            accept,
            id: bound.id,
        });
        info!("listening on {}", path.display());
        Ok(())
    }

    pub(crate) fn next_request(&self) -> Option<Request> {
        self.inner.queue.pop()
    }

    /// Writes the answer to request `id`'s connection. A request whose client
    /// is gone (or an id that was never ours) is not an error.
    pub(crate) fn put_response(&self, id: &str, response: &[u8]) {
        let Some((number, seq)) = parse_id(id) else {
            debug!("response for unknown request id {id:?} ignored");
            return;
        };
        let conn = lock(&self.inner.conns).map.get(&number).cloned();
        let Some(conn) = conn else {
            debug!("response for request {id} dropped: its client is gone");
            return;
        };
        let mut state = lock(&conn.state);
        if state.pending != Some(seq) {
            drop(state);
            debug!("response for request {id} ignored: not awaited");
            return;
        }
        // Written under the lock, so the connection's next request cannot be
        // queued (and answered) before this answer is out.
        let result = if state.closed {
            Err(io::Error::from(io::ErrorKind::NotConnected))
        } else {
            send_line(conn.stream.as_raw_fd(), response)
        };
        state.pending = None;
        // A failed write leaves the stream unusable: close the connection
        // before its thread can queue another request.
        state.closed |= result.is_err();
        let wake = state.waiting;
        drop(state);
        if wake {
            conn.idle.notify_one();
        }
        if let Err(e) = result {
            let _ = conn.stream.shutdown(Shutdown::Both);
            if e.kind() == io::ErrorKind::WouldBlock {
                warn!(
                    "client of connection {number} on {} reads no responses; closed it",
                    self.inner.path.display()
                );
            } else {
                debug!("response for request {id} not delivered: {e}");
            }
        }
    }

    /// Wakes every `next_request`, stops accepting, closes every connection
    /// and removes the socket file if it is still ours. Idempotent; returns
    /// once done.
    pub(crate) fn shutdown(&self) {
        self.inner.queue.close();
        self.inner.stopping.store(true, Ordering::SeqCst);
        let mut life = lock(&self.life);
        let Life::Running(running) = mem::replace(&mut *life, Life::Stopped) else {
            return;
        };
        let path = &self.inner.path;
        // On Linux, shutdown() of a listening socket fails a blocked accept().
        // SAFETY: the fd stays open as long as `running.listener` lives.
        unsafe { libc::shutdown(running.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let conns: Vec<Arc<Conn>> = {
            let mut conns = lock(&self.inner.conns);
            conns.closed = true;
            conns.map.values().cloned().collect()
        };
        for conn in conns {
            conn.close();
        }
        join_accept(running.accept, path);
        remove_if_ours(path, running.id);
        info!("closed {}", path.display());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits (briefly) for the accept thread; if shutdown() did not wake it, a
/// connection does.
fn join_accept(handle: JoinHandle<()>, path: &Path) {
    let started = Instant::now();
    let mut nudged = false;
    while !handle.is_finished() {
        let waited = started.elapsed();
        if waited > Duration::from_secs(2) {
            warn!(
                "the accept thread of {} did not stop; leaving it",
                path.display()
            );
            return;
        }
        if !nudged && waited > Duration::from_millis(100) {
            socket::nudge(path);
            nudged = true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let _ = handle.join();
}

fn remove_if_ours(path: &Path, id: (u64, u64)) {
    match socket::file_id(path) {
        Ok(found) if found == id => {
            if let Err(e) = fs::remove_file(path) {
                warn!("cannot remove socket {}: {e}", path.display());
            }
        }
        Ok(_) => info!(
            "{} is no longer our socket; leaving it in place",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot inspect socket {}: {e}", path.display()),
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &UnixListener) {
    let mut failing = false;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                if inner.stopping.load(Ordering::SeqCst) {
                    break;
                }
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) {
                    continue;
                }
                // Out of descriptors or memory: wait for some to come back.
                if !failing {
                    warn!("cannot accept on {}: {e}", inner.path.display());
                    failing = true;
                }
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        failing = false;
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        admit(inner, stream);
    }
    debug!("no longer accepting on {}", inner.path.display());
}

/// Gives a new connection its thread, or closes it when too many are open.
fn admit(inner: &Arc<Inner>, stream: UnixStream) {
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        debug!("cannot set a write timeout: {e}");
    }
    let (conn, warn_full) = {
        let mut conns = lock(&inner.conns);
        if conns.closed {
            return;
        }
        if conns.map.len() >= MAX_CONNECTIONS {
            let warn_full = !mem::replace(&mut conns.full_warned, true);
            (None, warn_full)
        } else {
            conns.full_warned = false;
            conns.last += 1;
            let conn = Arc::new(Conn::new(conns.last, stream));
            conns.map.insert(conn.number, Arc::clone(&conn));
            (Some(conn), false)
        }
    };
    let Some(conn) = conn else {
        if warn_full {
            warn!(
                "{} has {MAX_CONNECTIONS} connections open; refusing new ones until one closes",
                inner.path.display()
            );
        }
        return;
    };
    let number = conn.number;
    let spawned = {
        let inner = Arc::clone(inner);
        thread::Builder::new()
            .name(format!("unix-socket-{number}"))
            .stack_size(STACK_SIZE)
            .spawn(move || {
                serve(&inner, &conn);
                lock(&inner.conns).map.remove(&conn.number);
                debug!("connection {} closed", conn.number);
            })
    };
    match spawned {
        Ok(_) => debug!("connection {number} opened"),
        Err(e) => {
            warn!("cannot start a thread for a connection: {e}; closing it");
            lock(&inner.conns).map.remove(&number);
        }
    }
}

/// One connection's loop: read a line, queue it once the previous answer is
/// out, repeat until the client is done.
fn serve(inner: &Inner, conn: &Conn) {
    let mut reader = LineReader::new();
    let mut seq: u64 = 0;
    loop {
        let body = match reader.next(&conn.stream) {
            Ok(Line::Data(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Data(line)) => Some(line),
            Ok(Line::TooLong) => None,
            Ok(Line::Eof) => break,
            Err(e) => {
                debug!("connection {}: {e}", conn.number);
                break;
            }
        };
        seq += 1;
        {
            let mut state = conn.wait_idle();
            if state.closed {
                return;
            }
            state.pending = Some(seq);
        }
        let id = format!("{}/{seq}", conn.number);
        let request = match body {
            Some(line) => Request::new(id, line.to_vec()),
            None => {
                debug!("request {id} is longer than {MAX_LINE} bytes");
                Request::unreadable(id, TOO_LONG)
            }
        };
        if !inner.queue.push(request) {
            return;
        }
    }
    // The client is done sending (maybe only half-closed): let the answer to
    // its last request out before closing.
    drop(conn.wait_idle());
}

/// Requests waiting for an agent thread.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    requests: VecDeque<Request>,
    /// Threads blocked in `pop`: with none, a push needs no wake-up call.
    waiting: usize,
    closed: bool,
}

impl Queue {
    /// `false` once closed (the request is dropped).
    fn push(&self, request: Request) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.requests.push_back(request);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    fn pop(&self) -> Option<Request> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return None;
            }
            if let Some(request) = state.requests.pop_front() {
                return Some(request);
            }
            state.waiting += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
    }

    fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        let dropped = mem::take(&mut state.requests);
        drop(state);
        self.ready.notify_all();
        drop(dropped);
    }
}

/// One client connection.
struct Conn {
    number: u64,
    stream: UnixStream,
    state: Mutex<ConnState>,
    /// Signalled when the pending request is answered or the connection closes.
    idle: Condvar,
}

#[derive(Default)]
struct ConnState {
    /// The sequence number of the request queued and not yet answered.
    pending: Option<u64>,
    /// The connection's thread waits on `idle`.
    waiting: bool,
    closed: bool,
}

impl Conn {
    fn new(number: u64, stream: UnixStream) -> Self {
        Conn {
            number,
            stream,
            state: Mutex::new(ConnState::default()),
            idle: Condvar::new(),
        }
    }

    /// Blocks until no request is pending or the connection is closed.
    fn wait_idle(&self) -> MutexGuard<'_, ConnState> {
        let mut state = lock(&self.state);
        while state.pending.is_some() && !state.closed {
            state.waiting = true;
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting = false;
        state
    }

    /// Ends the connection: its thread stops reading and waiting, and a write
    /// in progress fails at once.
    fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        let mut state = lock(&self.state);
        state.closed = true;
        if state.waiting {
            self.idle.notify_one();
        }
    }
}

/// `<connection>/<sequence>`.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (number, seq) = id.split_once('/')?;
    Some((number.parse().ok()?, seq.parse().ok()?))
}

/// Writes `body` and a newline with one `sendmsg` (more only if the kernel
/// takes part of it), without SIGPIPE.
fn send_line(fd: RawFd, body: &[u8]) -> io::Result<()> {
    const NEWLINE: &[u8] = b"\n";
    let mut sent = 0;
    while sent <= body.len() {
        let rest = &body[sent..];
        let mut iov = [
            libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            },
            libc::iovec {
                iov_base: NEWLINE.as_ptr() as *mut libc::c_void,
                iov_len: 1,
            },
        ];
        let parts: &mut [libc::iovec] = if rest.is_empty() {
            &mut iov[1..]
        } else {
            &mut iov[..]
        };
        // SAFETY: msghdr is plain data; all zeroes is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = parts.as_mut_ptr();
        msg.msg_iovlen = parts.len() as _;
        // SAFETY: `msg` points at iovecs over live buffers; sendmsg only reads.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        sent += n as usize;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
    fn the_too_long_reason_names_the_limit() {
        assert_eq!(
            TOO_LONG,
            format!("request line is longer than {MAX_LINE} bytes")
        );
    }
}
