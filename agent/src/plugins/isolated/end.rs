//! The end of a child process, from the agent's side: collecting what it
//! writes to stdout and stderr, reaping it (killing it if it lingers), and
//! why it ended.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nova_agent_support::sync::lock;

use super::cause;

/// How long a child that closed its socket may take to exit before it is
/// killed.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long the end of a child's output is waited for once it exited (a
/// process it started may hold the pipe open).
pub(crate) const OUTPUT_GRACE: Duration = Duration::from_millis(500);
/// The lines of a child's output kept to explain its end.
const TAIL_LINES: usize = 16;

/// Whether the agent may still signal the child, and why it killed it.
#[derive(Default)]
pub(crate) struct Process {
    pub(crate) reaped: bool,
    pub(crate) killed_for: Option<String>,
}

/// Reaps `child`, killing it if it does not exit within [`EXIT_GRACE`] of
/// closing its socket. `None` when it could not be waited for, or lingered
/// and was killed for it (not a crash). `process` is held while waiting and
/// reaping, so nobody signals a reaped pid.
pub(crate) fn reap(
    plugin: &str,
    child: &mut Child,
    process: &Mutex<Process>,
) -> Option<ExitStatus> {
    let deadline = Instant::now() + EXIT_GRACE;
    let mut lingered = false;
    loop {
        {
            let mut process = lock(process);
            match child.try_wait() {
                Ok(Some(status)) => {
                    process.reaped = true;
                    return (!lingered || process.killed_for.is_some()).then_some(status);
                }
                Ok(None) => {}
                Err(e) => {
                    process.reaped = true;
                    tracing::warn!(plugin, "cannot wait for process {}: {e}", child.id());
                    return None;
                }
            }
            if !lingered && Instant::now() >= deadline {
                // SAFETY: kill(2) on our child, not reaped (we hold the lock).
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                lingered = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Logs what the child writes to stdout or stderr (the Rust runtime's last
/// words, a C library's complaints) and keeps what explains an end: the
/// runtime's fatal messages (a backtrace may follow them) and the last
/// lines. The receiver gets them at the end of the output.
pub(crate) fn collect_output(plugin: &str, pid: u32, output: ChildStderr) -> Receiver<String> {
    let (sender, kept) = mpsc::channel();
    let plugin = plugin.to_owned();
    let spawned = std::thread::Builder::new()
        .name(format!("plugin {plugin} output"))
        .spawn(move || {
            let mut fatal: Vec<String> = Vec::new();
            let mut last: Vec<String> = Vec::new();
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                tracing::warn!(plugin = %plugin, "plugin {plugin} (pid {pid}) wrote: {line}");
                if cause::explains_an_end(&line) && fatal.len() < TAIL_LINES {
                    fatal.push(line.clone());
                }
                if last.len() == TAIL_LINES {
                    last.remove(0);
                }
                last.push(line);
            }
            fatal.extend(last);
            let _ = sender.send(fatal.join("\n"));
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read the output of plugin process {pid}: {e}");
    }
    kept
}
