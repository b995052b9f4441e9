//! The pipes of one started program, served by one thread: the input
//! written as the program takes it, each output read to its end and kept up
//! to qemu-ga's cap. A program that never reads its input or whose
//! children hold its output open keeps the thread waiting, as qemu-ga's
//! watches wait; the wake socket ends the wait when the plugin stops.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// qemu-ga's `GUEST_EXEC_MAX_OUTPUT`: what is kept of each output.
pub(crate) const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// One output, read to its end.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) data: Vec<u8>,
    /// More than [`MAX_OUTPUT`] bytes came; the rest was read and dropped.
    pub(crate) truncated: bool,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_OUTPUT - self.data.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// The pipes of one program, and the input still to write.
pub(crate) struct Pipes {
    pub(crate) stdin: Option<(ChildStdin, Vec<u8>)>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

impl Pipes {
    pub(crate) fn is_empty(&self) -> bool {
        self.stdin.is_none() && self.stdout.is_none() && self.stderr.is_none()
    }
}

/// Serves `pipes` until every one is closed, or until `wake` becomes
/// readable (its other end is closed when the plugin stops). Each output is
/// handed to `publish` once it reached its end.
pub(crate) fn pump(
    wake: &UnixStream,
    mut pipes: Pipes,
    pid: i64,
    mut publish: impl FnMut(Stream, Captured),
) {
    let mut written = 0;
    let mut captured = [Captured::default(), Captured::default()];
    if let Some((stdin, input)) = &pipes.stdin {
        // Written as the program reads: a full pipe must not block the thread.
        let nonblocking = fcntl(stdin, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        if input.is_empty() || nonblocking.is_err() {
            pipes.stdin = None;
        }
    }
    let mut buffer = vec![0u8; 64 * 1024];
    while !pipes.is_empty() {
        let Some(ready) = wait(wake, &pipes) else {
            return;
        };
        if ready[0] {
            if let Some((stdin, input)) = &mut pipes.stdin {
                match stdin.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if retry(&e) => {}
                    Err(e) => {
                        tracing::warn!("guest-exec: writing the input of pid {pid}: {e}");
                        written = input.len();
                    }
                }
                if written == input.len() {
                    pipes.stdin = None;
                }
            }
        }
        for (stream, index) in [(Stream::Out, 1), (Stream::Err, 2)] {
            if !ready[index] {
                continue;
            }
            let result = match stream {
                Stream::Out => pipes.stdout.as_mut().map(|p| p.read(&mut buffer)),
                Stream::Err => pipes.stderr.as_mut().map(|p| p.read(&mut buffer)),
            };
            let ended = match result {
                None => continue,
                Some(Ok(0)) => true,
                Some(Ok(n)) => {
                    captured[index - 1].push(&buffer[..n]);
                    false
                }
                Some(Err(e)) if retry(&e) => false,
                Some(Err(e)) => {
                    tracing::warn!("guest-exec: reading the output of pid {pid}: {e}");
                    true
                }
            };
            if ended {
                match stream {
                    Stream::Out => pipes.stdout = None,
                    Stream::Err => pipes.stderr = None,
                }
                publish(stream, std::mem::take(&mut captured[index - 1]));
            }
        }
    }
}

/// Waits for a pipe to be ready: which of stdin, stdout, stderr are.
/// `None` when the plugin stops (or poll fails, which it cannot here).
fn wait(wake: &UnixStream, pipes: &Pipes) -> Option<[bool; 3]> {
    let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
    let mut slots = [None; 3];
    if let Some((stdin, _)) = &pipes.stdin {
        slots[0] = Some(fds.len());
        fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
    }
    for (slot, pipe) in [
        (1, pipes.stdout.as_ref().map(AsFd::as_fd)),
        (2, pipes.stderr.as_ref().map(AsFd::as_fd)),
    ] {
        if let Some(fd) = pipe {
            slots[slot] = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
    }
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("guest-exec: waiting on the pipes of a program: {e}");
                return None;
            }
        }
    }
    let fired = |index: usize| fds[index].revents().is_some_and(|r| !r.is_empty());
    if fired(0) {
        return None;
    }
    Some(slots.map(|slot| slot.is_some_and(fired)))
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::{Captured, MAX_OUTPUT};

    #[test]
    fn output_past_the_cap_is_dropped_and_marked() {
        let mut captured = Captured::default();
        captured.push(&vec![b'a'; MAX_OUTPUT - 1]);
        assert!(!captured.truncated);
        captured.push(b"b");
        assert!(!captured.truncated, "exactly the cap is not truncated");
        captured.push(b"c");
        assert!(captured.truncated);
        assert_eq!(captured.data.len(), MAX_OUTPUT);
        assert_eq!(captured.data.last(), Some(&b'b'));
    }
}
