//! The two looks at the port, without the state lock (the reader's and
//! the watcher's), and taking in what they saw under it: the system-call
//! side of `port`, whose module doc says who looks when.

use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{accept4, SockFlag};
use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::lock;
use tracing::{debug, info, warn};

use super::{live, owe, Guard, Life, Port, Session, State};
use crate::config::Method;
use crate::device::{self, OpenError};
use crate::wire::{self, Read};

/// What the reader found.
enum Seen {
    Nothing,
    Data(Vec<u8>),
    Hangup { dropped: usize },
    Opened(Result<(OwnedFd, std::path::PathBuf), OpenError>),
    Accepted(OwnedFd),
    AcceptFailed(Errno),
    Failed(String),
}

impl Port {
    /// The reader's turn: one look at the port without the state lock, then
    /// what it found taken in.
    pub(super) fn read<'a>(
        &'a self,
        mut st: Guard<'a>,
    ) -> (Guard<'a>, Result<Option<Incoming>, String>) {
        st.reading = true;
        let pause = st.pause.take();
        let port = st.port.clone();
        let listener = st.listener.as_ref().map(|(l, _)| Arc::clone(l));
        drop(st);
        let seen = self.look(pause, port.as_ref(), listener);
        let mut st = lock(&self.state);
        st.reading = false;
        st.left_to_reader = false;
        let result = self.apply(&mut st, seen);
        (st, result)
    }

    /// The reader's look: waits for input (or a client, or the device).
    fn look(
        &self,
        pause: Option<Duration>,
        port: Option<&Arc<OwnedFd>>,
        listener: Option<Arc<UnixListener>>,
    ) -> Seen {
        let Some([stop, _]) = self.wakers.get() else {
            return Seen::Failed("the exchange is not started".to_owned());
        };
        if let Some(pause) = pause {
            match wire::wait(None, &[stop.as_fd()], Some(pause)) {
                Ok(woke) if woke.wakers[0] => return Seen::Nothing,
                Ok(_) => {}
                Err(e) => return Seen::Failed(format!("cannot wait: {}", e.desc())),
            }
        }
        let fd = match (port, &listener) {
            (Some(port), _) => port.as_fd(),
            (None, Some(listener)) => listener.as_fd(),
            // Shut down meanwhile.
            (None, None) if self.config.method == Method::UnixListen => return Seen::Nothing,
            (None, None) => {
                let opened = device::open_port(&self.config.path, self.config.method, &self.dirs);
                return Seen::Opened(opened);
            }
        };
        let woke = match wire::wait(Some((fd, PollFlags::POLLIN)), &[stop.as_fd()], None) {
            Ok(woke) => woke,
            Err(e) => {
                let path = self.config.path.display();
                return Seen::Failed(format!("cannot wait on {path}: {}", e.desc()));
            }
        };
        if woke.wakers[0] {
            return Seen::Nothing;
        }
        if port.is_none() {
            if !woke.port.contains(PollFlags::POLLIN) {
                return Seen::Nothing;
            }
            return match accept4(fd, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
                Ok(client) => Seen::Accepted(client),
                Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED) => Seen::Nothing,
                Err(e) => Seen::AcceptFailed(e),
            };
        }
        if woke.hangup() {
            return Seen::Hangup {
                dropped: wire::drain(fd, &mut lock(&self.buffer)),
            };
        }
        if !woke.port.contains(PollFlags::POLLIN) {
            return Seen::Nothing;
        }
        match wire::read_chunk(fd, &mut lock(&self.buffer)) {
            Read::Data(bytes) => Seen::Data(bytes),
            Read::Gone => Seen::Hangup { dropped: 0 },
            Read::Nothing => Seen::Nothing,
            Read::Failed(e) => {
                let path = self.config.path.display();
                Seen::Failed(format!("cannot read {path}: {}", e.desc()))
            }
        }
    }

    /// The watcher's turn: one poll of the port for a hang-up, without the
    /// state lock, until the host leaves, `stop`, or `kick`.
    pub(super) fn watch<'a>(&'a self, mut st: Guard<'a>) -> Result<Guard<'a>, String> {
        let (Some(port), Some([stop, kick])) = (st.port.clone(), self.wakers.get()) else {
            return Ok(st);
        };
        st.watching = true;
        st.watch_kick = !st.reading;
        drop(st);
        debug!(
            "watching {} for the host leaving",
            self.config.path.display()
        );
        let wakers = [stop.as_fd(), kick.as_fd()];
        let waited = wire::wait(Some((port.as_fd(), PollFlags::empty())), &wakers, None);
        let mut st = lock(&self.state);
        st.watching = false;
        st.watch_kick = false;
        // Under the lock, where every kick is written: none is left over.
        let _ = kick.read();
        let woke = waited.map_err(|e| {
            let path = self.config.path.display();
            format!("cannot wait on {path}: {}", e.desc())
        })?;
        if woke.hangup() && !woke.wakers[0] {
            self.watched_hangup(&mut st, &port);
        }
        Ok(st)
    }

    /// Takes in a hang-up the watcher saw on `port`.
    fn watched_hangup(&self, st: &mut State, port: &Arc<OwnedFd>) {
        if !st.port.as_ref().is_some_and(|p| Arc::ptr_eq(p, port)) {
            return;
        }
        match st.owed {
            Some(owed) if !owed.end && live(st, owed) => {
                // No reader while an item is out, and none starts while the
                // lock is held: what the host left is ours to drop.
                let dropped = wire::drain(port.as_fd(), &mut lock(&self.buffer));
                self.hung_up(st, dropped);
            }
            _ => st.left_to_reader = true,
        }
    }

    /// Takes in what the reader found; an item to hand out, if any.
    fn apply(&self, st: &mut State, seen: Seen) -> Result<Option<Incoming>, String> {
        let running = st.life == Life::Running;
        match seen {
            Seen::Nothing => {}
            Seen::Data(bytes) if running => {
                let session = match &st.session {
                    Some(session) => session,
                    None => {
                        st.sessions += 1;
                        let number = st.sessions;
                        let stream = format!("host-{number}");
                        debug!("host attached to {}: {stream}", self.config.path.display());
                        st.session.insert(Session { number, stream })
                    }
                };
                let (number, stream) = (session.number, session.stream.clone());
                debug!("read {} bytes of {stream}", bytes.len());
                let seq = owe(st, number, false);
                return Ok(Some(Incoming::stream(seq.to_string(), stream, bytes)));
            }
            Seen::Data(_) => {}
            Seen::Hangup { dropped } => self.hung_up(st, dropped),
            Seen::Opened(opened) if running => self.opened(st, opened),
            Seen::Opened(_) => {}
            Seen::Accepted(client) if running => {
                debug!("host connected to {}", self.config.path.display());
                self.set_port(st, Some(Arc::new(client)));
                st.failure_said = None;
            }
            Seen::Accepted(_) => {}
            Seen::AcceptFailed(e) => {
                // Out of descriptors or memory: the listener would fire at
                // once again, so pause.
                let message = format!(
                    "cannot accept on {}: {}",
                    self.config.path.display(),
                    e.desc()
                );
                if st.failure_said.as_deref() != Some(message.as_str()) {
                    warn!("{message}");
                    st.failure_said = Some(message);
                }
                st.pause = Some(self.timing.failed_retry);
            }
            Seen::Failed(message) => return Err(message),
        }
        Ok(None)
    }

    /// The host hung up: its session ends, and the port is looked at again
    /// after a pause, or opened (accepted) afresh.
    fn hung_up(&self, st: &mut State, dropped: usize) {
        if dropped > 0 {
            debug!("dropped {dropped} bytes left by a host that went away");
        }
        if let Some(number) = st.session.as_ref().map(|s| s.number) {
            self.end_session(st, number);
        }
        match self.config.method {
            Method::VirtioSerial => st.pause = Some(self.timing.hangup_pause),
            // A hung-up line stays hung up: open it afresh.
            Method::IsaSerial => {
                self.set_port(st, None);
                st.pause = Some(self.timing.absent_retry);
            }
            Method::UnixListen => self.hang_up_client(st),
        }
    }

    /// Takes in an attempt to open the device.
    pub(super) fn opened(
        &self,
        st: &mut State,
        opened: Result<(OwnedFd, std::path::PathBuf), OpenError>,
    ) {
        let path = self.config.path.display();
        match opened {
            Ok((fd, at)) => {
                let shown = if at == self.config.path {
                    path.to_string()
                } else {
                    format!("{path} (as {})", at.display())
                };
                if st.opened_before && !st.waiting_said && st.failure_said.is_none() {
                    debug!("reopened {shown}");
                } else {
                    info!("opened {shown}");
                }
                self.set_port(st, Some(Arc::new(fd)));
                st.opened_before = true;
                st.waiting_said = false;
                st.failure_said = None;
            }
            Err(OpenError::Absent) => {
                if !mem::replace(&mut st.waiting_said, true) {
                    info!("waiting for {path}");
                }
                st.pause = Some(self.timing.absent_retry);
            }
            Err(OpenError::Failed(message)) => {
                if st.failure_said.as_deref() != Some(message.as_str()) {
                    let every = self.timing.failed_retry.as_secs();
                    warn!("{message}; retrying every {every} s");
                    st.failure_said = Some(message);
                }
                st.waiting_said = false;
                st.pause = Some(self.timing.failed_retry);
            }
        }
    }
}
