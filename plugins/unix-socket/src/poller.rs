//! What the server waits with, over nix's safe wrappers: one epoll instance
//! with a level-triggered eventfd to wake every waiter at shutdown and a
//! one-shot timerfd for closing idle connections, and `poll(2)` on a single
//! descriptor for an answer still owed at shutdown that does not fit the
//! socket's buffer at once.
//!
//! nix's epoll rather than mio: every worker waits on the one instance at
//! once (`epoll_wait` through `&self`), and EPOLLONESHOT hands each event to
//! exactly one of them; mio's `Poll` is waited on through `&mut self` and
//! has no one-shot interest.
//!
//! Descriptors are identified in events by a token the caller chooses, so an
//! event never names a descriptor that might have been closed and reused
//! meanwhile.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// Readable, reported once and then disabled until re-armed with `modify`.
pub(crate) const READ_ONCE: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLONESHOT);
/// Readable or writable, once: on a connected socket whose client keeps
/// reading, writable is true at once, so this fires immediately.
pub(crate) const READ_OR_WRITE_ONCE: EpollFlags = READ_ONCE.union(EpollFlags::EPOLLOUT);
/// Writable, once: for a connection that only has an answer left to send.
pub(crate) const WRITE_ONCE: EpollFlags = EpollFlags::EPOLLOUT.union(EpollFlags::EPOLLONESHOT);

/// The token of the eventfd's event; callers' tokens must differ from it.
pub(crate) const WAKE: u64 = u64::MAX;
/// The token of the timer's event; callers' tokens must differ from it.
pub(crate) const TIMER: u64 = WAKE - 1;

/// An epoll instance with its wake-up eventfd and its timer registered.
pub(crate) struct Poller {
    epoll: Epoll,
    wake: EventFd,
    /// One-shot in both senses: set for one expiry, and registered with
    /// EPOLLONESHOT so that one waiter takes it; `rearm_timer` after.
    timer: TimerFd,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        // Level-triggered: once signalled it stays readable, and every
        // epoll_wait, now or later, returns it.
        epoll.add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK,
        )?;
        epoll.add(&timer, EpollEvent::new(READ_ONCE, TIMER))?;
        Ok(Poller { epoll, wake, timer })
    }

    /// Makes the timer fire once, `after` from now (replacing what it was
    /// set to). Setting it also clears an expiry not yet waited for.
    pub(crate) fn set_timer(&self, after: Duration) -> io::Result<()> {
        // A zero expiry would disarm it instead.
        let after = after.max(Duration::from_nanos(1));
        let expiration = Expiration::OneShot(TimeSpec::from_duration(after));
        Ok(self.timer.set(expiration, TimerSetTimeFlags::empty())?)
    }

    /// Lets the timer's event, once taken, be reported again.
    pub(crate) fn rearm_timer(&self) -> io::Result<()> {
        self.modify(&self.timer, TIMER, READ_ONCE)
    }

    /// Registers `fd`, whose events will carry `token`.
    pub(crate) fn add(&self, fd: impl AsFd, token: u64, events: EpollFlags) -> io::Result<()> {
        Ok(self.epoll.add(fd, EpollEvent::new(events, token))?)
    }

    /// Re-arms `fd` (registered with EPOLLONESHOT); fires at once if the
    /// descriptor is already ready.
    pub(crate) fn modify(&self, fd: impl AsFd, token: u64, events: EpollFlags) -> io::Result<()> {
        Ok(self.epoll.modify(fd, &mut EpollEvent::new(events, token))?)
    }

    pub(crate) fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(self.epoll.delete(fd)?)
    }

    /// Blocks until one event and returns its token; `None` when a signal
    /// interrupted the wait.
    pub(crate) fn wait(&self) -> io::Result<Option<u64>> {
        let mut events = [EpollEvent::empty()];
        match self.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(1) if events[0].data() == TIMER => {
                // Taken: a timerfd stays readable until read, and would be
                // reported again at each re-arm (a busy loop) until set
                // anew. Non-blocking: a `set_timer` meanwhile cleared it.
                let _ = self.timer.wait();
                Ok(Some(TIMER))
            }
            Ok(n) => Ok((n == 1).then(|| events[0].data())),
            Err(Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes every present and future `wait` return `WAKE`.
    pub(crate) fn wake_all(&self) {
        // It can only fail when the counter is near overflow, and then it is
        // readable already.
        let _ = self.wake.write(1);
    }
}

/// Waits until `fd` is writable (or failed, which the next write reports), at
/// most `timeout`; `false` when the time ran out.
pub(crate) fn wait_writable(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    // Rounded up, so that a wait never ends early for lack of precision.
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    let millis = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, millis) {
        Ok(0) => Ok(false),
        Ok(_) | Err(Errno::EINTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
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
        poller.add(&server, 7, READ_ONCE).unwrap();
        client.write_all(b"x").unwrap();
        assert_eq!(poller.wait().unwrap(), Some(7));
        // Still readable, but disarmed: only re-arming reports it again.
        poller.modify(&server, 7, READ_ONCE).unwrap();
        assert_eq!(poller.wait().unwrap(), Some(7));
        // Nothing to read, but writable: READ_OR_WRITE_ONCE fires at once.
        let mut buf = [0; 1];
        (&server).read_exact(&mut buf).unwrap();
        poller.modify(&server, 8, READ_OR_WRITE_ONCE).unwrap();
        assert_eq!(poller.wait().unwrap(), Some(8));
        poller.wake_all();
        for _ in 0..3 {
            assert_eq!(poller.wait().unwrap(), Some(WAKE));
        }
        poller.delete(&server).unwrap();
        assert!(poller.delete(&server).is_err());
    }

    #[test]
    fn the_timer_fires_once_per_setting_and_re_arming() {
        let poller = Poller::new().unwrap();
        poller.set_timer(Duration::from_millis(1)).unwrap();
        assert_eq!(poller.wait().unwrap(), Some(TIMER));
        // Set again while its event is disarmed: reported once re-armed.
        poller.set_timer(Duration::ZERO).unwrap();
        poller.rearm_timer().unwrap();
        assert_eq!(poller.wait().unwrap(), Some(TIMER));
        poller.wake_all();
        assert_eq!(poller.wait().unwrap(), Some(WAKE));
    }

    #[test]
    fn a_timer_event_taken_is_not_reported_again_once_re_armed() {
        let poller = Poller::new().unwrap();
        poller.set_timer(Duration::from_millis(1)).unwrap();
        assert_eq!(poller.wait().unwrap(), Some(TIMER));
        poller.rearm_timer().unwrap();
        poller.wake_all();
        // An expired timer left as it was would come first, for ever.
        assert_eq!(poller.wait().unwrap(), Some(WAKE));
    }

    #[test]
    fn wait_writable_times_out_on_a_full_socket() {
        let (client, server) = UnixStream::pair().unwrap();
        assert!(wait_writable(&server, Duration::from_secs(1)).unwrap());
        server.set_nonblocking(true).unwrap();
        let chunk = [0u8; 65536];
        while (&server).write(&chunk).is_ok() {}
        let started = std::time::Instant::now();
        assert!(!wait_writable(&server, Duration::from_millis(50)).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(client);
    }
}
