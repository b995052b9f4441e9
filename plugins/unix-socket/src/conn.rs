//! One client connection: reading its next request line, queueing and
//! sending its answers.
//!
//! A connection is in one of three states, and epoll's EPOLLONESHOT makes
//! sure one thread at most acts on it at a time:
//!
//! - armed: registered for readability (and writability while an answer is
//!   queued or a line is buffered, see `server`), nobody touches it;
//! - in a turn: the one worker that took its event sends what is queued,
//!   then reads what the socket holds (`turn`), and either hands out a
//!   request or re-arms it;
//! - busy: a request was handed out; the descriptor stays disarmed, so the
//!   connection's next lines stay unread, until `respond` has queued the
//!   answer and tells the server how to re-arm it (or to close it).
//!
//! An answer never blocks a worker: `respond` sends what the socket takes
//! at once and queues the rest, which later turns send as the client reads.
//! A client that sends a new request while more than `MAX_QUEUED` bytes of
//! its answers are still unsent is closed, that request not taken. The idle clock (`active`) restarts
//! whenever bytes move either way and when a request is answered.
//!
//! Shutdown adds a flag, `closing`, set by `stop` (or by `expire` and
//! `retire_if_idle` for an idle connection): no line is read any more and
//! no turn touches the connection; an answer still owed or queued is then
//! sent by `respond` or `drain`, blocking at most `WRITE_TIMEOUT`, so that it
//! survives a shutdown (see `server`).
//!
//! The state mutex is held for non-blocking work only, never while an answer
//! is sent blocking, so that shutdown never waits for a client that reads
//! slowly.

use std::io::{self, IoSlice, Read};
use std::mem;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;
use nix::sys::socket::{sendmsg, MsgFlags, UnixAddr};
use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::lock;
use tracing::debug;

use crate::lines::{Line, LineReader, MAX_LINE};
use crate::poller::{self, READ_ONCE, READ_OR_WRITE_ONCE, WRITE_ONCE};

/// Why a line longer than `MAX_LINE` is answered with an error.
pub(crate) const TOO_LONG: &str = "request line is longer than 1048576 bytes";
/// Bytes one turn may read from a connection before it lets the others go
/// first (a client streaming a line that never ends must not hold a worker).
const READ_BUDGET: usize = 256 * 1024;
/// Unsent answer bytes a connection may hold when its next request comes;
/// more, and it is closed (its client asks and does not read).
pub(crate) const MAX_QUEUED: usize = 4 << 20;
/// How long an answer still owed at shutdown may wait for a client that
/// does not read.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Conn {
    pub(crate) number: u64,
    /// Non-blocking.
    stream: UnixStream,
    state: Mutex<State>,
}

struct State {
    reader: LineReader,
    /// The last request's sequence number on this connection.
    seq: u64,
    /// The sequence number of the request handed out and not yet answered.
    pending: Option<u64>,
    /// Shut down (or retired as idle): read no more lines, leave the sending
    /// of what is owed to `respond` or `drain`.
    closing: bool,
    /// Answer bytes not sent yet: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// When bytes last moved, a request was last answered, or it opened.
    active: Instant,
}

/// What a turn found.
pub(crate) enum Turn {
    Request(Incoming),
    /// Not this turn's: a request is handed out (never happens, the
    /// descriptor is disarmed meanwhile), or shutdown took it over.
    Leave,
    /// No complete line: re-arm for these events.
    Wait(EpollFlags),
    /// The client is done and has every answer, or the socket failed:
    /// close the connection.
    Done,
    /// A new request came while more than `MAX_QUEUED` bytes of answers are
    /// unsent: close the connection, the request not taken.
    Overflow,
}

/// What to do with the connection once an answer is queued.
pub(crate) enum After {
    /// Re-arm it for these events.
    Rearm(EpollFlags),
    /// The client sent its end and has every answer, or the exchange is
    /// shutting down and the answer went out.
    Close,
    /// Sending failed (at shutdown, timed out: `kind` is `TimedOut`).
    Failed(io::Error),
    /// The id is not the request this connection waits to answer.
    NotAwaited,
}

/// What a connection owed when the exchange stopped.
pub(crate) enum Stopped {
    /// Nothing: close it now.
    Nothing,
    /// The answer to a request handed out: `respond` sends it, then closes.
    Answer,
    /// Queued answer bytes: `drain` sends them; close it after.
    Queued,
}

/// A connection's idle clock, as `expire` found it.
pub(crate) enum Idle {
    /// A request of it is out, or it is shut down: not idle.
    Busy,
    /// Idle; closed if nothing moves before this.
    Until(Instant),
    /// Idle for the whole timeout: retired, the caller closes it.
    Expired,
}

impl Conn {
    pub(crate) fn new(number: u64, fd: OwnedFd) -> Self {
        Conn {
            number,
            stream: UnixStream::from(fd),
            state: Mutex::new(State {
                reader: LineReader::new(),
                seq: 0,
                pending: None,
                closing: false,
                out: Vec::new(),
                sent: 0,
                active: Instant::now(),
            }),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Sends what is queued, then reads until a request line is complete or
    /// the socket has nothing more for now. Blank lines are skipped; a line
    /// over `MAX_LINE` is discarded as it arrives and handed out as
    /// unreadable.
    pub(crate) fn turn(&self) -> Turn {
        let mut state = lock(&self.state);
        let state = &mut *state;
        if state.pending.is_some() || state.closing {
            return Turn::Leave;
        }
        if let Err(e) = state.flush(self.fd()) {
            debug!("connection {}: {e}", self.number);
            return Turn::Done;
        }
        let mut src = Budget {
            stream: &self.stream,
            left: READ_BUDGET,
        };
        let found = loop {
            match state.reader.next(&mut src) {
                Ok(Line::Data(line)) if line.iter().all(u8::is_ascii_whitespace) => {}
                Ok(Line::Data(line)) => break Ok(Some(line.to_vec())),
                Ok(Line::TooLong) => break Ok(None),
                Ok(Line::Pending | Line::Eof) => break Err(None),
                Err(e) => break Err(Some(e)),
            }
        };
        if src.left < READ_BUDGET {
            state.active = Instant::now();
        }
        let body = match found {
            Ok(body) => body,
            Err(Some(e)) => {
                debug!("connection {}: {e}", self.number);
                return Turn::Done;
            }
            Err(None) => return state.interest().map_or(Turn::Done, Turn::Wait),
        };
        if state.queued() > MAX_QUEUED {
            state.closing = true;
            return Turn::Overflow;
        }
        state.seq += 1;
        state.pending = Some(state.seq);
        let id = format!("{}/{}", self.number, state.seq);
        Turn::Request(match body {
            Some(line) => Incoming::request(id, line),
            None => {
                debug!("request {id} is longer than {MAX_LINE} bytes");
                Incoming::unreadable(id, TOO_LONG)
            }
        })
    }

    /// Queues the answer to request `seq` and its newline, if that is the
    /// request this connection awaits, and sends what the socket takes at
    /// once. An empty answer sends nothing (not even the newline) and lets
    /// the connection go on to its next line. Once shut down, sends it all
    /// before returning, waiting at most `WRITE_TIMEOUT` for the client.
    pub(crate) fn respond(&self, seq: u64, response: &[u8]) -> After {
        let mut state = lock(&self.state);
        if state.pending != Some(seq) {
            return After::NotAwaited;
        }
        state.pending = None;
        state.active = Instant::now();
        if state.closing {
            // Nobody waits on this socket any more: send it here, unlocked
            // (a turn leaves a closing connection alone).
            let mut out = state.take_out();
            if !response.is_empty() {
                out.extend_from_slice(response);
                out.push(b'\n');
            }
            drop(state);
            return match send_all(self.fd(), &out, WRITE_TIMEOUT) {
                Ok(()) => After::Close,
                Err(e) => After::Failed(e),
            };
        }
        if let Err(e) = state.flush(self.fd()) {
            return After::Failed(e);
        }
        if !response.is_empty() {
            let parts: [&[u8]; 2] = [response, b"\n"];
            let sent = if state.queued() == 0 {
                match send_now(self.fd(), &parts) {
                    Ok(sent) => sent,
                    Err(e) => return After::Failed(e),
                }
            } else {
                0
            };
            state.queue(&parts, sent);
        }
        state.interest().map_or(After::Close, After::Rearm)
    }

    /// Shutdown: reads no more lines from now on, and says what is still
    /// owed to the client.
    pub(crate) fn stop(&self) -> Stopped {
        let mut state = lock(&self.state);
        state.closing = true;
        if state.pending.is_some() {
            Stopped::Answer
        } else if state.queued() > 0 {
            Stopped::Queued
        } else {
            Stopped::Nothing
        }
    }

    /// After `stop` said `Queued`: sends what is queued, waiting at most
    /// `WRITE_TIMEOUT` for a client that does not read.
    pub(crate) fn drain(&self) -> io::Result<()> {
        let out = lock(&self.state).take_out();
        send_all(self.fd(), &out, WRITE_TIMEOUT)
    }

    /// Retires the connection (as `stop` does) if it has been idle for
    /// `timeout` at `now`.
    pub(crate) fn expire(&self, now: Instant, timeout: Duration) -> Idle {
        let mut state = lock(&self.state);
        if state.pending.is_some() || state.closing {
            return Idle::Busy;
        }
        let until = state.active + timeout;
        if until > now {
            return Idle::Until(until);
        }
        state.closing = true;
        Idle::Expired
    }

    /// Since when the connection is idle; `None` if it is not.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let state = lock(&self.state);
        (state.pending.is_none() && !state.closing).then_some(state.active)
    }

    /// Retires the connection if it is idle; `true` if so, and the caller
    /// closes it.
    pub(crate) fn retire_if_idle(&self) -> bool {
        let mut state = lock(&self.state);
        if state.pending.is_some() || state.closing {
            return false;
        }
        state.closing = true;
        true
    }

    /// Ends the connection for its client at once, whoever is using it: a
    /// read sees the end of the stream, a write in progress fails. The
    /// descriptor itself closes when the last reference goes.
    pub(crate) fn shut(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl State {
    fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    /// What to wait for next; `None`: the client is done and has every
    /// answer, close the connection.
    fn interest(&self) -> Option<EpollFlags> {
        let queued = self.queued() > 0;
        if self.reader.finished() {
            // Waiting for readability would fire at once, for the end.
            queued.then_some(WRITE_ONCE)
        } else if queued || self.reader.ready() {
            Some(READ_OR_WRITE_ONCE)
        } else {
            Some(READ_ONCE)
        }
    }

    /// Sends what the socket takes of the queue, without waiting.
    fn flush(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if self.queued() == 0 {
            return Ok(());
        }
        let n = send_now(fd, &[&self.out[self.sent..]])?;
        if n > 0 {
            self.active = Instant::now();
        }
        self.sent += n;
        if self.sent == self.out.len() {
            // Freed: a large answer's buffer is not kept for the next.
            self.take_out();
        }
        Ok(())
    }

    /// Appends `parts`, less their first `skip` bytes (sent already).
    fn queue(&mut self, parts: &[&[u8]], mut skip: usize) {
        if skip > 0 {
            self.active = Instant::now();
        }
        self.out.drain(..self.sent);
        self.sent = 0;
        for part in parts {
            let taken = skip.min(part.len());
            self.out.extend_from_slice(&part[taken..]);
            skip -= taken;
        }
    }

    /// The unsent bytes, leaving the queue empty.
    fn take_out(&mut self) -> Vec<u8> {
        let mut out = mem::take(&mut self.out);
        out.drain(..mem::take(&mut self.sent));
        out
    }
}

/// The socket, as a reader that pretends to block once it gave `left` bytes.
struct Budget<'a> {
    stream: &'a UnixStream,
    left: usize,
}

impl Read for Budget<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = (&mut &*self.stream).read(buf)?;
        self.left = self.left.saturating_sub(n);
        Ok(n)
    }
}

/// Sends what the non-blocking socket takes of `parts`, in order, with
/// `sendmsg` and without SIGPIPE; returns how many bytes went.
fn send_now(fd: BorrowedFd<'_>, parts: &[&[u8]]) -> io::Result<usize> {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let mut sent = 0;
    while sent < total {
        let mut skip = sent;
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .filter_map(|part| {
                let taken = skip.min(part.len());
                skip -= taken;
                (taken < part.len()).then(|| IoSlice::new(&part[taken..]))
            })
            .collect();
        match sendmsg::<UnixAddr>(fd.as_raw_fd(), &slices, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// Sends all of `bytes`, waiting for room when the socket is full, at most
/// `timeout` in all (then `TimedOut`).
fn send_all(fd: BorrowedFd<'_>, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    loop {
        sent += send_now(fd, &[&bytes[sent..]])?;
        if sent == bytes.len() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !poller::wait_writable(fd, left)? {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn the_too_long_reason_names_the_limit() {
        assert_eq!(
            TOO_LONG,
            format!("request line is longer than {MAX_LINE} bytes")
        );
    }

    #[test]
    fn send_now_takes_what_fits_and_send_all_waits_for_room_or_times_out() {
        let (client, server) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        // Several times the socket's buffer, in two parts: only some fits.
        let mut body = vec![b'x'; 4 << 20];
        *body.last_mut().unwrap() = b'\n';
        let (text, newline) = body.split_at(body.len() - 1);
        let fits = send_now(server.as_fd(), &[text, newline]).unwrap();
        assert!(fits > 0 && fits < body.len());
        // The rest, read by the client meanwhile.
        let reading = std::thread::spawn(move || {
            let mut line = Vec::new();
            BufReader::new(&client)
                .read_until(b'\n', &mut line)
                .unwrap();
            (line, client)
        });
        send_all(server.as_fd(), &body[fits..], Duration::from_secs(10)).unwrap();
        let (line, client) = reading.join().unwrap();
        assert_eq!(line, body);

        // Now the client reads nothing.
        let started = Instant::now();
        let e = send_all(server.as_fd(), &body, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
    }
}
