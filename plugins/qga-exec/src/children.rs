//! The programs `guest-exec` started, until `guest-exec-status` reported
//! them as exited (then they are forgotten, as qemu-ga forgets them).
//!
//! Each program has a waiter thread, which reaps it the moment it exits,
//! and, when it has pipes, a pump thread (see `pump`). The waiter first
//! waits without reaping (`WNOWAIT`) and reaps only under the table's lock,
//! so a pid the table calls running always names our child, alive or a
//! zombie, never a stranger that reused the number: stopping the plugin can
//! kill it safely.
//!
//! When the plugin stops (agent exit or hot swap), the pumps are woken and
//! end, every program still running is killed (SIGKILL) and reaped by its
//! waiter, and every thread is joined: no thread runs on in old code and no
//! zombie is left. A stopping qemu-guest-agent unit has the same effect on
//! qemu-ga's programs (systemd stops the whole control group).

use std::mem;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use nova_agent_plugin_api::CommandError;
use nova_agent_support::sync::lock;
use serde_json::{json, Value};

use crate::pump::{pump, Captured, Pipes, Stream};
use crate::spawn::{spawn, Request};
use nova_agent_support::glib_base64 as base64;

pub(crate) struct Children {
    table: Mutex<Table>,
    /// Signalled whenever a program exits or an output ends.
    changed: Condvar,
    /// Every pump polls this; it turns readable when `wake_writer` goes.
    wake: UnixStream,
    wake_writer: Mutex<Option<UnixStream>>,
}

#[derive(Default)]
struct Table {
    /// In start order: a pid the system reused finds the older entry first.
    entries: Vec<Entry>,
    /// Threads of forgotten programs; a pump may still wait on a pipe a
    /// grandchild holds.
    retired: Vec<JoinHandle<()>>,
    next_serial: u64,
    stopped: bool,
}

struct Entry {
    serial: u64,
    pid: i64,
    capture: bool,
    /// `Some` once exited; `Some(None)` when the status was lost (reaped by
    /// someone else).
    status: Option<Option<ExitStatus>>,
    out: Option<Captured>,
    err: Option<Captured>,
    threads: Vec<JoinHandle<()>>,
}

impl Entry {
    /// What qemu-ga calls exited: the program ended, and so did both
    /// outputs when they are captured (so none of it is missing).
    fn finished(&self) -> bool {
        self.status.is_some() && (!self.capture || (self.out.is_some() && self.err.is_some()))
    }
}

impl Children {
    pub(crate) fn new() -> std::io::Result<Children> {
        let (wake, wake_writer) = UnixStream::pair()?;
        Ok(Children {
            table: Mutex::default(),
            changed: Condvar::new(),
            wake,
            wake_writer: Mutex::new(Some(wake_writer)),
        })
    }

    /// Starts `request` with `input` for its stdin; answers its pid.
    pub(crate) fn start(
        self: &Arc<Self>,
        request: &Request,
        input: Option<Vec<u8>>,
    ) -> Result<i64, CommandError> {
        let mut table = lock(&self.table);
        if table.stopped {
            return Err(CommandError::failed("guest-exec: the agent is stopping"));
        }
        let mut child = spawn(request).map_err(|message| {
            CommandError::failed(format!("Guest agent command failed, error was '{message}'"))
        })?;
        let pid = i64::from(child.id());
        let serial = table.next_serial;
        table.next_serial += 1;
        let pipes = Pipes {
            stdin: child.stdin.take().zip(input),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        table.entries.push(Entry {
            serial,
            pid,
            capture: request.capture,
            status: None,
            out: None,
            err: None,
            threads: Vec::new(),
        });
        let mut threads = Vec::with_capacity(2);
        if let Err(e) = self.start_threads(serial, pid, child, pipes, &mut threads) {
            // The child went with the thread that failed to start: kill and
            // reap it by its pid, which no one reaped yet. A pump that did
            // start ends with the pipes.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None);
            table.entries.retain(|e| e.serial != serial);
            table.retired.append(&mut threads);
            return Err(CommandError::failed(format!(
                "guest-exec: cannot start a thread for pid {pid}: {e}"
            )));
        }
        if let Some(entry) = table.entries.iter_mut().find(|e| e.serial == serial) {
            entry.threads = threads;
        }
        Self::prune(&mut table);
        Ok(pid)
    }

    fn start_threads(
        self: &Arc<Self>,
        serial: u64,
        pid: i64,
        child: Child,
        pipes: Pipes,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> std::io::Result<()> {
        if !pipes.is_empty() {
            let children = Arc::clone(self);
            threads.push(
                thread::Builder::new()
                    .name(format!("qga-exec-io-{pid}"))
                    .spawn(move || {
                        pump(&children.wake, pipes, pid, |stream, captured| {
                            children.output_ended(serial, stream, captured);
                        });
                    })?,
            );
        }
        let children = Arc::clone(self);
        threads.push(
            thread::Builder::new()
                .name(format!("qga-exec-wait-{pid}"))
                .spawn(move || children.reap(serial, pid, child))?,
        );
        Ok(())
    }

    /// The waiter: sleeps until the child exits, then reaps it and records
    /// its status under the lock.
    fn reap(&self, serial: u64, pid: i64, mut child: Child) {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        while let Err(Errno::EINTR) = waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {}
        let mut table = lock(&self.table);
        let status = child.wait().ok();
        if let Some(entry) = table.entries.iter_mut().find(|e| e.serial == serial) {
            entry.status = Some(status);
        }
        self.changed.notify_all();
    }

    fn output_ended(&self, serial: u64, stream: Stream, captured: Captured) {
        let mut table = lock(&self.table);
        if let Some(entry) = table.entries.iter_mut().find(|e| e.serial == serial) {
            match stream {
                Stream::Out => entry.out = Some(captured),
                Stream::Err => entry.err = Some(captured),
            }
        }
        self.changed.notify_all();
    }

    /// `guest-exec-status`: `{"exited": false}` while running; once
    /// exited, the status and outputs, reported this once.
    pub(crate) fn status(&self, pid: i64) -> Result<Value, CommandError> {
        tracing::debug!("guest-exec-status: pid {pid}");
        let mut table = lock(&self.table);
        let Some(index) = table.entries.iter().position(|e| e.pid == pid) else {
            return Err(CommandError::bad_arguments("Invalid parameter 'pid'"));
        };
        if !table.entries[index].finished() {
            return Ok(json!({"exited": false}));
        }
        let mut entry = table.entries.remove(index);
        table.retired.append(&mut entry.threads);
        let mut answer = json!({"exited": true});
        if let Some(status) = entry.status.flatten() {
            if let Some(code) = status.code() {
                answer["exitcode"] = json!(code);
            } else if let Some(signal) = status.signal() {
                answer["signal"] = json!(signal);
            }
        }
        for (captured, data, truncated) in [
            (entry.out, "out-data", "out-truncated"),
            (entry.err, "err-data", "err-truncated"),
        ] {
            // Present with the data only; 7.2.20 onwards always says
            // whether it was cut.
            if let Some(captured) = captured.filter(|c| !c.data.is_empty()) {
                answer[data] = json!(base64::encode(&captured.data));
                answer[truncated] = json!(captured.truncated);
            }
        }
        Ok(answer)
    }

    /// Joins the threads of forgotten programs that have ended.
    fn prune(table: &mut Table) {
        let (ended, running) = mem::take(&mut table.retired)
            .into_iter()
            .partition(JoinHandle::is_finished);
        table.retired = running;
        for thread in ended {
            let _ = thread.join();
        }
    }

    /// Stops everything (see the module's doc). Runs once no request is
    /// inside the plugin.
    pub(crate) fn stop(&self) {
        drop(lock(&self.wake_writer).take());
        let threads = {
            let mut table = lock(&self.table);
            table.stopped = true;
            for entry in table.entries.iter().filter(|e| e.status.is_none()) {
                tracing::warn!(
                    "guest-exec: killing pid {}, still running as the plugin stops",
                    entry.pid
                );
                let _ = kill(Pid::from_raw(entry.pid as i32), Signal::SIGKILL);
            }
            let mut threads = mem::take(&mut table.retired);
            for entry in &mut table.entries {
                threads.append(&mut entry.threads);
            }
            threads
        };
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Blocks until `pid` is what qemu-ga calls exited (or unknown).
    #[cfg(test)]
    pub(crate) fn wait_finished(&self, pid: i64) {
        self.wait_for(pid, Entry::finished);
    }

    /// Blocks until the program `pid` ended, whatever its outputs do.
    #[cfg(test)]
    pub(crate) fn wait_reaped(&self, pid: i64) {
        self.wait_for(pid, |e| e.status.is_some());
    }

    #[cfg(test)]
    fn wait_for(&self, pid: i64, done: impl Fn(&Entry) -> bool) {
        let mut table = lock(&self.table);
        while table
            .entries
            .iter()
            .find(|e| e.pid == pid)
            .is_some_and(|e| !done(e))
        {
            table = nova_agent_support::sync::wait(&self.changed, table);
        }
    }
}
