//! The system calls on the port, over nix's safe wrappers: waiting with
//! poll(2), reading one chunk, discarding what a departed host left behind,
//! and writing a whole response through partial writes and EAGAIN.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};

/// The most one read takes (the size of the port's read buffer): a chunk
/// handed to the parser.
pub(crate) const CHUNK: usize = 64 * 1024;
/// How often a blocked write asks whether its host is still attached.
const RECHECK: Duration = Duration::from_millis(100);
/// The most a departed host's leftovers are read (and dropped) in one turn.
const DRAIN_LIMIT: usize = 16 * CHUNK;

/// What a wait saw; all false when the time ran out or a signal came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Woke {
    /// The port's events (POLLHUP and POLLERR are reported unasked).
    pub(crate) port: PollFlags,
    /// One flag per waker, in the order given.
    pub(crate) wakers: [bool; 2],
}

impl Woke {
    pub(crate) fn hangup(&self) -> bool {
        self.port
            .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
    }
}

/// Waits until `port` has one of `events` (or hangs up), or a waker is
/// readable, at most `timeout` (`None`: for ever). At most two wakers.
pub(crate) fn wait(
    port: Option<(BorrowedFd<'_>, PollFlags)>,
    wakers: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> nix::Result<Woke> {
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
    if let Some((fd, events)) = port {
        fds.push(PollFd::new(fd, events));
    }
    let first_waker = fds.len();
    fds.extend(wakers.iter().map(|w| PollFd::new(*w, PollFlags::POLLIN)));
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Rounded up, so that a wait never ends early for lack of precision.
        Some(t) => {
            PollTimeout::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
        }
    };
    let mut woke = Woke {
        port: PollFlags::empty(),
        wakers: [false; 2],
    };
    match poll(&mut fds, timeout) {
        Ok(0) | Err(Errno::EINTR) => return Ok(woke),
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    if port.is_some() {
        woke.port = fds[0].revents().unwrap_or(PollFlags::empty());
    }
    for (i, fd) in fds[first_waker..].iter().enumerate().take(2) {
        woke.wakers[i] = fd.revents().is_some_and(|r| !r.is_empty());
    }
    Ok(woke)
}

/// What one read gave.
#[derive(Debug)]
pub(crate) enum Read {
    Data(Vec<u8>),
    /// The host is not there: end of file, or the line was hung up.
    Gone,
    /// Nothing to read after all.
    Nothing,
    Failed(Errno),
}

/// Reads at most one chunk from the port (non-blocking) into `buf`, the
/// port's one read buffer, and copies out only the bytes read.
pub(crate) fn read_chunk(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Read {
    loop {
        return match nix::unistd::read(fd, buf) {
            Ok(0) => Read::Gone,
            Ok(n) => Read::Data(buf[..n].to_vec()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => Read::Nothing,
            Err(e) if gone(e) => Read::Gone,
            Err(e) => Read::Failed(e),
        };
    }
}

/// Reads and drops what the port holds (bounded), through `buf`; returns
/// how many bytes.
pub(crate) fn drain(fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    let mut dropped = 0;
    while dropped < DRAIN_LIMIT {
        match nix::unistd::read(fd, buf) {
            Ok(0) => break,
            Ok(n) => dropped += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    dropped
}

/// Why a response did not go out whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The host went away; the rest was dropped.
    Gone {
        written: usize,
    },
    /// The host took nothing for the whole stall limit; the rest was dropped.
    Stalled {
        written: usize,
    },
    Failed {
        written: usize,
        errno: Errno,
    },
}

/// How long a write may make no progress, and how long once shutting down.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    pub(crate) stall: Duration,
    pub(crate) after_stop: Duration,
}

/// Writes all of `bytes` to the non-blocking port: a virtio port takes at
/// most 32 KiB a write, and a full port answers EAGAIN, so this loops,
/// waiting for POLLOUT, until done, the host goes away, or no byte could go
/// out for `patience.stall` (`patience.after_stop` once `stop` is readable).
/// A socket is written with MSG_NOSIGNAL: a client that left must not
/// raise SIGPIPE in the agent.
///
/// `current` says whether the host the bytes are for is still the one
/// attached; it is asked before every write. A virtio port reports the
/// hang-up only while no host is attached, so a writer that waited through
/// a disconnect and a reconnect would otherwise carry on into the next
/// host's connection.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    socket: bool,
    bytes: &[u8],
    stop: BorrowedFd<'_>,
    patience: Patience,
    current: &dyn Fn() -> bool,
) -> Result<(), WriteError> {
    let mut written = 0;
    let mut stopping = false;
    let mut deadline = Instant::now() + patience.stall;
    while written < bytes.len() {
        if !current() {
            return Err(WriteError::Gone { written });
        }
        let rest = &bytes[written..];
        let result = if socket {
            send(fd.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL)
        } else {
            nix::unistd::write(fd, rest)
        };
        match result {
            Ok(n) => {
                written += n;
                let limit = if stopping {
                    patience.after_stop
                } else {
                    patience.stall
                };
                deadline = Instant::now() + limit;
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(WriteError::Stalled { written });
                }
                let wakers = if stopping { &[][..] } else { &[stop][..] };
                // In slices, so that a host change is noticed between them.
                let slice = left.min(RECHECK);
                let woke = wait(Some((fd, PollFlags::POLLOUT)), wakers, Some(slice))
                    .map_err(|errno| WriteError::Failed { written, errno })?;
                if woke.hangup() && !woke.port.contains(PollFlags::POLLOUT) {
                    return Err(WriteError::Gone { written });
                }
                if woke.wakers[0] && !stopping {
                    stopping = true;
                    deadline = deadline.min(Instant::now() + patience.after_stop);
                }
            }
            Err(e) if gone(e) => return Err(WriteError::Gone { written }),
            Err(errno) => return Err(WriteError::Failed { written, errno }),
        }
    }
    Ok(())
}

/// The errors that mean the other end is gone: a hung-up line (EIO), a
/// closed connection.
fn gone(e: Errno) -> bool {
    matches!(
        e,
        Errno::EIO | Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN | Errno::ENODEV
    )
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use nix::sys::eventfd::EventFd;

    use super::{write_all, Patience, WriteError};

    #[test]
    fn a_write_stops_where_its_host_stops_being_the_attached_one() {
        // Nobody reads the other end: the socket's buffer fills, the writer
        // waits for room, and meanwhile its host is replaced.
        let (ours, _host) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stop = EventFd::new().unwrap();
        let asked = Cell::new(0);
        let current = || {
            asked.set(asked.get() + 1);
            asked.get() < 3
        };
        let patience = Patience {
            stall: Duration::from_secs(30),
            after_stop: Duration::from_secs(1),
        };
        let bytes = vec![b'x'; 16 << 20];
        let result = write_all(ours.as_fd(), true, &bytes, stop.as_fd(), patience, &current);
        match result {
            Err(WriteError::Gone { written }) => assert!(written < bytes.len(), "{written}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(asked.get(), 3);
    }
}
