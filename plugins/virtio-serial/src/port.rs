//! The port's life, driven by the agent's workers: no thread of its own.
//!
//! One port carries one byte stream at a time, and its input is handed out
//! one item at a time: a chunk of a stream only once the previous item was
//! answered, so answers go out in input order.
//!
//! Roles. The workers calling `next` share two roles, each held by at most
//! one of them; the others wait on a condvar.
//! - The *reader* exists only while nothing is owed: it waits for input
//!   (poll for POLLIN, and the `stop` eventfd), opens the device, accepts a
//!   client, and hands out what it reads. It is the only one that reads,
//!   except for the watcher's drain below.
//! - The *watcher* exists while a host is attached (the port open, a
//!   session begun): it polls the port with no events asked, which still
//!   reports POLLHUP and POLLERR, plus `stop` and its own `kick` eventfd,
//!   with no timeout. It stays in that poll across requests, so a host
//!   leaving mid-command is noticed even if another attaches before the
//!   answer is ready.
//!
//! The fast path makes no other thread run: the reader hands out a chunk
//! without waking anyone (the watcher is already in its poll), `respond`
//! writes and clears the owed item without waking anyone, and the worker
//! that answered comes back to `next` (the agent's workers loop on `next`
//! and `respond`) and becomes the reader again. Someone is woken only when
//! a role is vacant and needed (`notify_one`), or when the watcher must
//! look again (`kick`): an ended session's `StreamEnd` waits, the port
//! changed, shutdown (`stop`, `notify_all`), or a watcher that began while
//! an item was out, as its taker may not come back to read (a caller other
//! than the agent's loop): `respond` kicks that one, and it becomes the
//! reader.
//!
//! Only one of them reads, or ends a session on a hang-up it saw, at a
//! time, so that bytes read just before a hang-up cannot cross the end of
//! their session. A watcher that sees a hang-up while an item is out (no
//! reader exists then, and none can start before `respond` takes the lock)
//! ends the session and drains the port, under the lock; while nothing is
//! owed it leaves the hang-up to the reader, which sees it in its own poll,
//! and keeps out of the watch until the reader has looked again. Either
//! way it then gives the watch up (and reads if that role is free): an
//! ended session needs no watcher, so while no host is attached only the
//! reader wakes, once a `hangup_pause`, and the first chunk of the next
//! session calls a watcher back.
//!
//! Sessions. Each host attachment is one stream, `host-<n>`: it begins with
//! the first bytes read after a hang-up (or a client's connection) and ends
//! at the hang-up, which hands out `Input::StreamEnd` so the agent drops the
//! half-read input. An answer owed to an ended session is dropped, never
//! written: bytes from a host that went away never reach a later host's
//! answers. For the same reason whatever the port still holds when it hangs
//! up is read and dropped.
//!
//! Waiting. A virtio port with no host reports POLLHUP and reads 0 over and
//! over (so does a pty whose master is closed), so after a hang-up the
//! reader looks at the port again only after `hangup_pause`, as qemu-ga
//! does. A device that is not there yet is looked for every
//! `absent_retry`, having said so once.
//!
//! Reads go through one buffer per port, zeroed once; an item copies out
//! only the bytes read. `look` holds the system calls of both roles.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nova_agent_plugin_api::{Incoming, Input};
use nova_agent_support::sync::{lock, wait};
use tracing::{debug, info};

use crate::config::{Config, Method};
use crate::device::{self, Dirs};
use crate::listen;
use crate::wire::{self, Patience, WriteError};

mod look;

/// How long the port waits between its looks, and for a stuck host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// After a hang-up, before looking at the port again.
    pub(crate) hangup_pause: Duration,
    /// Between looks for a device that is not there.
    pub(crate) absent_retry: Duration,
    /// Between attempts to open a device that fails otherwise.
    pub(crate) failed_retry: Duration,
    pub(crate) write: Patience,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            hangup_pause: Duration::from_millis(100),
            absent_retry: Duration::from_secs(1),
            failed_retry: Duration::from_secs(2),
            write: Patience {
                stall: Duration::from_secs(30),
                after_stop: Duration::from_secs(1),
            },
        }
    }
}

pub(crate) struct Port {
    config: Config,
    dirs: Dirs,
    timing: Timing,
    /// Made by `start`: `stop` (signalled once, for good) and `kick` (the
    /// watcher's, signalled only while a watcher is in place, drained by it).
    wakers: OnceLock<[EventFd; 2]>,
    state: Mutex<State>,
    changed: Condvar,
    /// The one read buffer, used by whoever reads (see the module doc).
    buffer: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct State {
    life: Life,
    /// The open device, or the connected client of `unix-listen`.
    port: Option<Arc<OwnedFd>>,
    /// `unix-listen`'s socket and its file's device and inode.
    listener: Option<(Arc<UnixListener>, (u64, u64))>,
    session: Option<Session>,
    sessions: u64,
    /// Ended sessions whose `StreamEnd` is still to be handed out.
    ended: VecDeque<String>,
    /// The one item handed out and not yet answered.
    owed: Option<Owed>,
    items: u64,
    /// A worker holds the reader's role.
    reading: bool,
    /// A worker holds the watcher's role.
    watching: bool,
    /// The watcher began while an item was out: `respond` kicks it.
    watch_kick: bool,
    /// The watcher saw a hang-up that is the reader's to handle: no watch
    /// until the reader has looked again.
    left_to_reader: bool,
    /// Workers waiting on the condvar.
    waiting: usize,
    /// Wait this long before the next read look.
    pause: Option<Duration>,
    /// "waiting for" was said, and the device has not opened since.
    waiting_said: bool,
    /// The last failure to open that was logged.
    failure_said: Option<String>,
    /// The device was open once.
    opened_before: bool,
    /// An answer was cut short on a device when its host left: QEMU may
    /// still hand the head it had taken to the next host, so that host's
    /// first answer starts on a line of its own (see `respond`).
    cut_short: bool,
}

#[derive(Default, PartialEq, Eq)]
enum Life {
    #[default]
    Idle,
    Running,
    Stopped,
}

struct Session {
    number: u64,
    stream: String,
}

#[derive(Clone, Copy)]
struct Owed {
    seq: u64,
    /// The session the item belongs to (0 for a `StreamEnd`).
    session: u64,
    end: bool,
}

type Guard<'a> = MutexGuard<'a, State>;

impl Port {
    pub(crate) fn new(config: Config, dirs: Dirs, timing: Timing) -> Self {
        Port {
            config,
            dirs,
            timing,
            wakers: OnceLock::new(),
            state: Mutex::default(),
            changed: Condvar::new(),
            buffer: Mutex::new(vec![0; wire::CHUNK]),
        }
    }

    pub(crate) fn start(&self) -> Result<(), String> {
        let path = self.config.path.display();
        let mut st = lock(&self.state);
        match st.life {
            Life::Idle => {}
            Life::Running => return Err(format!("{path} is already open")),
            Life::Stopped => return Err(format!("the exchange for {path} was shut down")),
        }
        if self.wakers.get().is_none() {
            let eventfd = || EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK);
            let made = eventfd()
                .and_then(|stop| Ok([stop, eventfd()?]))
                .map_err(|e| format!("cannot serve {path}: eventfd: {}", e.desc()))?;
            let _ = self.wakers.set(made);
        }
        if self.config.method == Method::UnixListen {
            let listening = listen::listen_at(&self.config.path)?;
            if let Err(e) = listening.listener.set_nonblocking(true) {
                listen::remove_if_ours(&self.config.path, listening.id);
                return Err(format!("cannot listen on {path}: {e}"));
            }
            st.listener = Some((Arc::new(listening.listener), listening.id));
            info!("listening on {path} for the host");
        } else {
            let opened = device::open_port(&self.config.path, self.config.method, &self.dirs);
            self.opened(&mut st, opened);
        }
        st.life = Life::Running;
        Ok(())
    }

    /// Blocks until there is an item to hand out; `None` once shut down.
    pub(crate) fn next(&self) -> Result<Option<Incoming>, String> {
        let mut st = lock(&self.state);
        loop {
            match st.life {
                Life::Idle => {
                    let path = self.config.path.display();
                    return Err(format!("the exchange for {path} is not started"));
                }
                Life::Stopped => return Ok(None),
                Life::Running => {}
            }
            if st.owed.is_none() {
                if let Some(stream) = st.ended.pop_front() {
                    let seq = owe(&mut st, 0, true);
                    let input = Input::StreamEnd { stream };
                    let id = seq.to_string();
                    return Ok(Some(Incoming { id, input }));
                }
                if !st.reading {
                    let read;
                    (st, read) = self.read(st);
                    match read {
                        // Still the one to read.
                        Ok(None) => continue,
                        Ok(Some(item)) => {
                            // A new session needs a watcher; the one in
                            // place carries on unwoken.
                            if !st.watching && watchable(&st) && st.waiting > 0 {
                                self.changed.notify_one();
                            }
                            return Ok(Some(item));
                        }
                        Err(e) => {
                            self.wake_one(&st);
                            return Err(e);
                        }
                    }
                }
            }
            if !st.watching && watchable(&st) {
                st = self.watch(st)?;
                continue;
            }
            st.waiting += 1;
            st = wait(&self.changed, st);
            st.waiting -= 1;
        }
    }

    /// Writes the answer to item `id`, unless its session has ended.
    pub(crate) fn respond(&self, id: &str, response: &[u8]) -> Result<(), String> {
        let st = lock(&self.state);
        let owed = match (id.parse::<u64>(), st.owed) {
            (Ok(seq), Some(owed)) if owed.seq == seq => owed,
            _ => {
                debug!("response for unknown item {id:?} ignored");
                return Ok(());
            }
        };
        let mut st = st;
        // After a cut-short answer, a newline first: it ends the head QEMU
        // may deliver, a line libvirt passes over on its first sync, instead
        // of gluing it to this answer. Nothing else ever writes a blank line.
        let response: Cow<'_, [u8]> = if st.cut_short && !response.is_empty() && live(&st, owed) {
            st.cut_short = false;
            Cow::Owned([b"\n", response].concat())
        } else {
            Cow::Borrowed(response)
        };
        let len = response.len();
        let sink = match st.port.clone() {
            Some(port) if !owed.end && live(&st, owed) => Some(port),
            _ => {
                if len > 0 {
                    debug!("dropped a {len}-byte response owed to a host that went away");
                }
                None
            }
        };
        drop(st);
        let written = match (sink, self.wakers.get()) {
            (Some(port), Some([stop, _])) if len > 0 => {
                let socket = self.config.method == Method::UnixListen;
                let patience = self.timing.write;
                let current = || live(&lock(&self.state), owed);
                Some(wire::write_all(
                    port.as_fd(),
                    socket,
                    &response,
                    stop.as_fd(),
                    patience,
                    &current,
                ))
            }
            _ => None,
        };
        let mut st = lock(&self.state);
        st.owed = None;
        let mut error = None;
        match written {
            None => {}
            Some(Ok(())) => debug!("wrote {len} bytes to {}", self.config.path.display()),
            Some(Err(WriteError::Gone { written })) => {
                debug!("the host went away after {written} of {len} bytes; dropped the rest");
                st.cut_short |= written > 0 && self.config.method != Method::UnixListen;
                self.end_session(&mut st, owed.session);
            }
            Some(Err(WriteError::Stalled { written })) => {
                st.cut_short |= written > 0 && self.config.method != Method::UnixListen;
                error = Some(format!(
                    "the host took nothing from {} for {} s; dropped the last {} of {len} bytes of a response",
                    self.config.path.display(),
                    self.timing.write.stall.as_secs(),
                    len - written
                ));
                self.end_session(&mut st, owed.session);
                self.hang_up_client(&mut st);
            }
            Some(Err(WriteError::Failed { written, errno })) => {
                st.cut_short |= written > 0 && self.config.method != Method::UnixListen;
                error = Some(format!(
                    "cannot write to {}: {}; dropped the last {} of {len} bytes of a response",
                    self.config.path.display(),
                    errno.desc(),
                    len - written
                ));
                self.end_session(&mut st, owed.session);
                self.hang_up_client(&mut st);
            }
        }
        if st.life == Life::Stopped {
            // The last answer of a drain is out: close what is left.
            self.set_port(&mut st, None);
        }
        if st.watch_kick || !st.ended.is_empty() {
            self.wake_one(&st);
        }
        drop(st);
        error.map_or(Ok(()), Err)
    }

    /// Wakes every `next` (they answer `None`), removes the socket file, and
    /// closes the port, or leaves that to `respond` when an answer is owed.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.state);
        if mem::replace(&mut st.life, Life::Stopped) == Life::Stopped {
            return;
        }
        if let Some([stop, _]) = self.wakers.get() {
            let _ = stop.write(1);
        }
        if let Some((_, id)) = st.listener.take() {
            listen::remove_if_ours(&self.config.path, id);
        }
        let owed = st.owed.is_some_and(|o| !o.end);
        if !owed {
            st.port = None;
        }
        drop(st);
        self.changed.notify_all();
        let path = self.config.path.display();
        if owed {
            info!("closing {path} once the answer it owes is out");
        } else {
            info!("closed {path}");
        }
    }

    /// Ends session `number` if it is the current one: its `StreamEnd` is
    /// handed out next, and what it is still owed is dropped.
    fn end_session(&self, st: &mut State, number: u64) {
        if st.session.as_ref().is_some_and(|s| s.number == number) {
            let session = st.session.take().expect("checked above");
            debug!("the host of {} went away", session.stream);
            st.ended.push_back(session.stream);
        }
    }

    /// Closes `unix-listen`'s client, so that the next one is accepted.
    fn hang_up_client(&self, st: &mut State) {
        if self.config.method == Method::UnixListen && st.port.is_some() {
            self.set_port(st, None);
            debug!("host disconnected from {}", self.config.path.display());
        }
    }

    /// Replaces the port; a watcher lets go of the old one (for a client,
    /// that is what closes the connection).
    fn set_port(&self, st: &mut State, port: Option<Arc<OwnedFd>>) {
        st.port = port;
        if st.watching {
            self.kick();
        }
    }

    /// Has one worker look at the state again: the watcher, which can do
    /// whatever a waiting worker could, or else a waiting worker.
    fn wake_one(&self, st: &State) {
        if st.watching {
            self.kick();
        } else if st.waiting > 0 {
            self.changed.notify_one();
        }
    }

    fn kick(&self) {
        if let Some([_, kick]) = self.wakers.get() {
            // Fails only when the counter is near overflow: readable anyway.
            let _ = kick.write(1);
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Records the next item as owed; returns its number.
fn owe(st: &mut State, session: u64, end: bool) -> u64 {
    st.items += 1;
    let seq = st.items;
    st.owed = Some(Owed { seq, session, end });
    seq
}

/// The session `owed` belongs to is still the current one.
fn live(st: &State, owed: Owed) -> bool {
    st.session
        .as_ref()
        .is_some_and(|s| s.number == owed.session)
}

/// A host is attached, as far as the port shows: worth a watcher.
fn watchable(st: &State) -> bool {
    st.port.is_some() && st.session.is_some() && !st.left_to_reader
}
