//! One client connection: reading its next request line, writing an answer.
//!
//! A connection is in one of three states, and epoll's EPOLLONESHOT makes
//! sure one thread at most acts on it at a time:
//!
//! - armed: registered for readability, nobody touches it;
//! - being read: the one worker that took its event reads what the socket
//!   holds (`read_request`) and either hands out a request or re-arms it;
//! - busy: a request was handed out; the descriptor stays disarmed, so the
//!   connection's next lines stay unread, until `respond` writes the answer
//!   and tells the server how to re-arm it (or to close it).
//!
//! Shutdown adds a flag, `closing`, set by `stop`: no line is read any more,
//! and a busy connection is closed once its answer is out instead of being
//! re-armed, so that the answer survives a shutdown (see `server`).
//!
//! The state mutex is therefore uncontended but for a stray duplicate answer
//! or a shutdown; it exists so that those are safe too. It is held for
//! non-blocking work only, never while an answer is written, so that shutdown
//! never waits for a client that reads slowly.

use std::io::{self, IoSlice, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags, UnixAddr};
use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::lock;
use tracing::debug;

use crate::lines::{Line, LineReader, MAX_LINE};
use crate::poller;

/// Why a line longer than `MAX_LINE` is answered with an error.
pub(crate) const TOO_LONG: &str = "request line is longer than 1048576 bytes";
/// Bytes one turn may read from a connection before it lets the others go
/// first (a client streaming a line that never ends must not hold a worker).
const READ_BUDGET: usize = 256 * 1024;
/// How long one response write may wait for a client that does not read.
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
    /// The answer to `pending` is being written (without the lock held).
    writing: bool,
    /// Shut down: read no more lines; close once `pending` is answered.
    closing: bool,
}

/// What a turn of reading found.
pub(crate) enum Turn {
    Request(Incoming),
    /// A request is handed out already (never happens: the descriptor is
    /// disarmed meanwhile); leave the connection alone.
    Busy,
    /// No complete line: re-arm for readability.
    Wait,
    /// The client is done, or the socket failed: close the connection.
    Done,
}

/// What to do with the connection once an answer is out.
pub(crate) enum After {
    /// Re-arm it; `buffered`: a complete line is already read into user space.
    Rearm { buffered: bool },
    /// The client sent its end and every line was answered, or the exchange
    /// is shutting down.
    Close,
    /// The write failed (timed out: `kind` is `TimedOut`).
    Failed(io::Error),
    /// The id is not the request this connection waits to answer.
    NotAwaited,
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
                writing: false,
                closing: false,
            }),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads until a request line is complete or the socket has nothing more
    /// for now. Blank lines are skipped; a line over `MAX_LINE` is discarded
    /// as it arrives and handed out as unreadable. Once stopped, reads
    /// nothing and says `Done`.
    pub(crate) fn read_request(&self) -> Turn {
        let mut state = lock(&self.state);
        let state = &mut *state;
        if state.pending.is_some() {
            return Turn::Busy;
        }
        if state.closing {
            return Turn::Done;
        }
        let mut src = Budget {
            stream: &self.stream,
            left: READ_BUDGET,
        };
        let body = loop {
            match state.reader.next(&mut src) {
                Ok(Line::Data(line)) if line.iter().all(u8::is_ascii_whitespace) => {}
                Ok(Line::Data(line)) => break Some(line.to_vec()),
                Ok(Line::TooLong) => break None,
                Ok(Line::Pending) => return Turn::Wait,
                Ok(Line::Eof) => return Turn::Done,
                Err(e) => {
                    debug!("connection {}: {e}", self.number);
                    return Turn::Done;
                }
            }
        };
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

    /// Writes the answer to request `seq` and its newline, if that is the
    /// request this connection awaits; waits at most `WRITE_TIMEOUT` for a
    /// client that does not read. An empty answer sends nothing (not even the
    /// newline) and lets the connection go on to its next line. The request
    /// stays pending until the write is over, so that a shutdown meanwhile
    /// leaves the connection open.
    pub(crate) fn respond(&self, seq: u64, response: &[u8]) -> After {
        {
            let mut state = lock(&self.state);
            if state.pending != Some(seq) || state.writing {
                return After::NotAwaited;
            }
            state.writing = true;
        }
        // Unlocked: nobody else touches the socket meanwhile (the descriptor
        // is disarmed, and a second answer finds `writing`).
        let result = match response {
            [] => Ok(()),
            _ => send_line(self.fd(), response, WRITE_TIMEOUT),
        };
        let mut state = lock(&self.state);
        state.writing = false;
        state.pending = None;
        match result {
            Err(e) => After::Failed(e),
            Ok(()) if state.closing || state.reader.finished() => After::Close,
            Ok(()) => After::Rearm {
                buffered: state.reader.ready(),
            },
        }
    }

    /// Shutdown: reads no more lines from now on. `true` when a request was
    /// handed out and is not answered yet: the connection must stay open for
    /// its answer, after which `respond` says `Close`. `false` when none is:
    /// the caller closes it (a worker still finishing a turn of reading it
    /// finds it closed, or reads `Done`).
    pub(crate) fn stop(&self) -> bool {
        let mut state = lock(&self.state);
        state.closing = true;
        state.pending.is_some()
    }

    /// Ends the connection for its client at once, whoever is using it: a
    /// read sees the end of the stream, a write in progress fails. The
    /// descriptor itself closes when the last reference goes.
    pub(crate) fn shut(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
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

/// Writes `body` and a newline with one `sendmsg` (more only if the kernel
/// takes part of it), without SIGPIPE. The socket is non-blocking: when it is
/// full, waits for room, at most `timeout` in all (then `TimedOut`).
fn send_line(fd: BorrowedFd<'_>, body: &[u8], timeout: Duration) -> io::Result<()> {
    const NEWLINE: &[u8] = b"\n";
    let mut sent = 0;
    let mut deadline = None;
    while sent <= body.len() {
        let rest = &body[sent..];
        let both = [IoSlice::new(rest), IoSlice::new(NEWLINE)];
        let parts = if rest.is_empty() {
            &both[1..]
        } else {
            &both[..]
        };
        match sendmsg::<UnixAddr>(fd.as_raw_fd(), parts, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !poller::wait_writable(fd, left)? {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
    fn a_large_answer_waits_for_room_and_a_stuck_client_times_out() {
        let (client, server) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        // Several times the socket's buffer, read by the client meanwhile.
        let body = vec![b'x'; 4 << 20];
        let reading = std::thread::spawn(move || {
            let mut line = Vec::new();
            BufReader::new(&client)
                .read_until(b'\n', &mut line)
                .unwrap();
            (line, client)
        });
        send_line(server.as_fd(), &body, Duration::from_secs(10)).unwrap();
        let (line, client) = reading.join().unwrap();
        assert_eq!(line.len(), body.len() + 1);
        assert!(line.ends_with(b"x\n"));

        // Now the client reads nothing.
        let started = Instant::now();
        let e = send_line(server.as_fd(), &body, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
    }
}
