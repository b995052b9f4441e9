//! The signals `run` handles. All are blocked before any thread exists, so
//! every thread (the agent's and the plugins') inherits the mask and only
//! `sigwait` on the main thread sees them; child processes get an empty mask
//! again (std resets it), so programs the agent runs get a normal one.
//!
//! - SIGTERM, SIGINT, SIGQUIT: stop (exit 0, sockets removed);
//! - SIGHUP: reload the plugins;
//! - every other signal a stray `kill` may send whose default action would
//!   end the agent and leave its sockets behind: logged and ignored
//!   (SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,
//!   SIGSTKFLT, SIGXCPU, SIGXFSZ, the real-time signals).
//!
//! SIGPIPE stays ignored, as std leaves it. The fault signals and SIGABRT
//! keep their default, a core dump: they mean a bug, and a real fault kills
//! a process that blocks them all the same.

use std::ffi::c_int;
use std::io;
use std::mem::MaybeUninit;

use nix::sys::signal::Signal;

const STOP: [c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];
const IGNORED: [c_int; 10] = [
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
];

/// What a signal asks for; each carries the signal's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    Stop(String),
    Reload,
    Ignored(String),
}

/// The blocked set, to wait on.
pub(crate) struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Blocks every signal `run` handles in the calling thread (and so in
    /// every thread it starts from now on).
    pub(crate) fn block() -> io::Result<Signals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given.
        let mut set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            set.assume_init()
        };
        let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
        let all = STOP
            .into_iter()
            .chain([libc::SIGHUP])
            .chain(IGNORED)
            .chain(realtime);
        for signal in all {
            // SAFETY: `set` is an initialised sigset_t; every number is a
            // valid signal the C library lets a program use.
            if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: blocks signals in the calling thread; `set` is valid.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Signals { set })
    }

    /// Waits for the next of the blocked signals.
    pub(crate) fn wait(&self) -> io::Result<Received> {
        let mut signal: c_int = 0;
        loop {
            // SAFETY: `self.set` is a valid set, `signal` a valid out
            // pointer.
            match unsafe { libc::sigwait(&self.set, &mut signal) } {
                0 => return Ok(received(signal)),
                libc::EINTR => {}
                rc => return Err(io::Error::from_raw_os_error(rc)),
            }
        }
    }
}

fn received(signal: c_int) -> Received {
    if signal == libc::SIGHUP {
        Received::Reload
    } else if STOP.contains(&signal) {
        Received::Stop(name(signal))
    } else {
        Received::Ignored(name(signal))
    }
}

fn name(signal: c_int) -> String {
    match Signal::try_from(signal) {
        Ok(known) => known.as_str().to_owned(),
        Err(_) => format!("SIGRTMIN+{}", signal - libc::SIGRTMIN()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_told_apart_and_named() {
        assert_eq!(received(libc::SIGHUP), Received::Reload);
        assert_eq!(received(libc::SIGQUIT), Received::Stop("SIGQUIT".into()));
        assert_eq!(received(libc::SIGUSR1), Received::Ignored("SIGUSR1".into()));
        assert_eq!(
            received(libc::SIGRTMIN() + 3),
            Received::Ignored("SIGRTMIN+3".into())
        );
    }

    #[test]
    fn a_blocked_signal_waits_for_sigwait() {
        // A thread of its own: the mask is per thread, and the signal is
        // sent to that thread only.
        std::thread::spawn(|| {
            let signals = Signals::block().unwrap();
            // SAFETY: sends SIGUSR2 to this very thread, which blocks it.
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            assert_eq!(rc, 0);
            assert_eq!(signals.wait().unwrap(), Received::Ignored("SIGUSR2".into()));
        })
        .join()
        .unwrap();
    }
}
