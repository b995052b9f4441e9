//! One program run to its end or to its deadline, with both output pipes
//! drained by a thread each (so the program never blocks on a full pipe) and
//! at most `KEEP` bytes of each kept.
//!
//! The program gets a process group of its own, so that a timeout kills what
//! it started as well: a shell's children would otherwise hold the pipes open
//! after the shell is gone.

use std::io::{self, Read};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::arg::Arg;
use crate::sync::lock;

/// How much of each of stdout and stderr is kept.
pub(crate) const KEEP: usize = 64 * 1024;

/// How long the pipes may stay open after the program exited: a background
/// process it started may hold them, and the agent does not wait for that.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The longest pause between two checks of the program or the readers.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// A program that ran to its end.
pub(crate) struct Exit {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// Some process still held a pipe `OUTPUT_GRACE` after the program exited.
    pub(crate) output_left_open: bool,
}

/// Why a program did not run to its end.
#[derive(Debug)]
pub(crate) enum Failure {
    Start(io::Error),
    /// Killed at its deadline.
    TimedOut,
    Io(&'static str, io::Error),
}

/// Runs `program` with `args`, stdin from /dev/null, the environment inherited.
pub(crate) fn run(program: &str, args: &[Arg], timeout: Duration) -> Result<Exit, Failure> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args.iter().map(Arg::value))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(Failure::Start)?;

    let captures = match start_captures(&mut child) {
        Ok(captures) => captures,
        Err(e) => {
            kill(&mut child);
            return Err(Failure::Io("reading the output of", e));
        }
    };
    let status = match wait_until(deadline, || child.try_wait()) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill(&mut child);
            return Err(Failure::TimedOut);
        }
        // Not killed: the child may be reaped already (SIGCHLD ignored), and its
        // process group id then names nothing of ours.
        Err(e) => return Err(Failure::Io("waiting for", e)),
    };

    let (stdout, stderr) = captures;
    let all_read = || Ok((stdout.finished() && stderr.finished()).then_some(()));
    let output_left_open = matches!(
        wait_until(Instant::now() + OUTPUT_GRACE, all_read),
        Ok(None)
    );
    Ok(Exit {
        status,
        stdout: stdout
            .take()
            .map_err(|e| Failure::Io("reading the output of", e))?,
        stderr: stderr
            .take()
            .map_err(|e| Failure::Io("reading the output of", e))?,
        output_left_open,
    })
}

/// Calls `check` until it yields something or `deadline` passes (`None`).
fn wait_until<T>(
    deadline: Instant,
    mut check: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(done) = check()? {
            return Ok(Some(done));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Kills the child's process group, then the child itself should it have left
/// the group, and reaps it. The child is not reaped yet, so its pid (the
/// group's id) cannot have been reused.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn start_captures(child: &mut Child) -> io::Result<(Capture, Capture)> {
    let stdout: Option<ChildStdout> = child.stdout.take();
    let stderr: Option<ChildStderr> = child.stderr.take();
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok((Capture::start(stdout)?, Capture::start(stderr)?)),
        _ => Err(io::Error::other("the output pipes were not set up")),
    }
}

/// One pipe being drained by its own thread.
struct Capture {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<io::Result<()>>,
}

impl Capture {
    fn start(pipe: impl Read + Send + 'static) -> io::Result<Capture> {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let reader = thread::Builder::new()
            .name("nova-agent-output".to_owned())
            .spawn({
                let kept = Arc::clone(&kept);
                move || drain(pipe, &kept)
            })?;
        Ok(Capture { kept, reader })
    }

    fn finished(&self) -> bool {
        self.reader.is_finished()
    }

    /// What was kept; an error if the reader failed. A reader still running
    /// (the pipe held open by someone else) is left to finish on its own.
    fn take(self) -> io::Result<Vec<u8>> {
        if self.reader.is_finished() {
            match self.reader.join() {
                Ok(result) => result?,
                Err(_) => return Err(io::Error::other("the output reader panicked")),
            }
        }
        Ok(std::mem::take(&mut *lock(&self.kept)))
    }
}

/// Reads `pipe` to its end, keeping the first `KEEP` bytes.
fn drain(mut pipe: impl Read, kept: &Mutex<Vec<u8>>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut kept = lock(kept);
        let room = KEEP.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}
