//! The few system calls the server waits with, behind small safe wrappers: one
//! epoll instance with a level-triggered eventfd to wake every waiter at
//! shutdown, and `poll(2)` on a single descriptor for a response that does not
//! fit the socket's buffer at once.
//!
//! Descriptors are registered by raw number but identified in events by a
//! token the caller chooses, so an event never names a descriptor that might
//! have been closed and reused meanwhile.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readable, reported once and then disabled until re-armed with `modify`.
pub(crate) const READ_ONCE: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
/// Readable or writable, once: on a connected socket whose client keeps
/// reading, writable is true at once, so this fires immediately.
pub(crate) const READ_OR_WRITE_ONCE: u32 = READ_ONCE | libc::EPOLLOUT as u32;

/// The token of the eventfd's event; callers' tokens must differ from it.
pub(crate) const WAKE: u64 = u64::MAX;

/// An epoll instance with its wake-up eventfd registered.
pub(crate) struct Poller {
    epoll: OwnedFd,
    wake: OwnedFd,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain call; the result is checked before use.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let wake = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        let poller = Poller { epoll, wake };
        // Level-triggered: once signalled it stays readable, and every
        // epoll_wait, now or later, returns it.
        poller.control(
            libc::EPOLL_CTL_ADD,
            poller.wake.as_raw_fd(),
            WAKE,
            libc::EPOLLIN as u32,
        )?;
        Ok(poller)
    }

    /// Registers `fd`, whose events will carry `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    /// Re-arms `fd` (registered with EPOLLONESHOT); fires at once if the
    /// descriptor is already ready.
    pub(crate) fn modify(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event; the kernel only reads it.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Blocks until one event and returns its token; `None` when a signal
    /// interrupted the wait.
    pub(crate) fn wait(&self) -> io::Result<Option<u64>> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for exactly the one event asked for.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut event, 1, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // The struct is packed on x86_64: copy the field out, take no reference.
        let token = event.u64;
        Ok((n == 1).then_some(token))
    }

    /// Makes every present and future `wait` return `WAKE`.
    pub(crate) fn wake_all(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. It can only fail when the
        // counter is near overflow, and then it is readable already.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// Waits until `fd` is writable (or failed, which the next write reports), at
/// most `timeout`; `false` when the time ran out.
pub(crate) fn wait_writable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // Rounded up, so that a wait never ends early for lack of precision.
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pollfd, 1, millis) };
    match n {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(true)
            } else {
                Err(e)
            }
        }
    }
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn oneshot_fires_once_until_re_armed_and_wake_is_for_everyone() {
        let poller = Poller::new().unwrap();
        let (mut client, server) = UnixStream::pair().unwrap();
        poller.add(server.as_raw_fd(), 7, READ_ONCE).unwrap();
        client.write_all(b"x").unwrap();
        assert_eq!(poller.wait().unwrap(), Some(7));
        // Still readable, but disarmed: only re-arming reports it again.
        poller.modify(server.as_raw_fd(), 7, READ_ONCE).unwrap();
        assert_eq!(poller.wait().unwrap(), Some(7));
        // Nothing to read, but writable: READ_OR_WRITE_ONCE fires at once.
        let mut buf = [0; 1];
        (&server).read_exact(&mut buf).unwrap();
        poller
            .modify(server.as_raw_fd(), 8, READ_OR_WRITE_ONCE)
            .unwrap();
        assert_eq!(poller.wait().unwrap(), Some(8));
        poller.wake_all();
        for _ in 0..3 {
            assert_eq!(poller.wait().unwrap(), Some(WAKE));
        }
        poller.delete(server.as_raw_fd()).unwrap();
        assert!(poller.delete(server.as_raw_fd()).is_err());
    }

    #[test]
    fn wait_writable_times_out_on_a_full_socket() {
        let (client, server) = UnixStream::pair().unwrap();
        assert!(wait_writable(server.as_raw_fd(), Duration::from_secs(1)).unwrap());
        server.set_nonblocking(true).unwrap();
        let chunk = [0u8; 65536];
        while (&server).write(&chunk).is_ok() {}
        let started = std::time::Instant::now();
        assert!(!wait_writable(server.as_raw_fd(), Duration::from_millis(50)).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(client);
    }
}
