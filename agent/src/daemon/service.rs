//! Living with an init system: systemd's notify protocol (READY, STATUS,
//! STOPPING, the watchdog), and, for sysvinit and OpenRC, `run --daemonize`
//! and `--pidfile`.
//!
//! What it is not: the signal handling (`run`) or the log's destination
//! (`logging`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nova_agent_support::sync::lock;

/// sd_notify(3), for `Type=notify` units; a no-op outside systemd.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!("cannot notify systemd: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = result {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// The agent is serving: tells systemd (READY=1 and the status line) and, when
/// daemonized, the waiting parent.
pub(crate) fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
    if let Some(pipe) = lock(parent_pipe()).take() {
        let mut pipe = pipe;
        let _ = pipe.write_all(READY);
    }
}

/// Tells the waiting parent of a daemonized agent why it could not start
/// (it prints the reason and exits 1). A no-op otherwise.
pub(crate) fn failed(reason: &str) {
    if let Some(mut pipe) = lock(parent_pipe()).take() {
        let _ = pipe.write_all(reason.as_bytes());
    }
}

const READY: &[u8] = b"\0ready";

fn parent_pipe() -> &'static Mutex<Option<File>> {
    static PIPE: OnceLock<Mutex<Option<File>>> = OnceLock::new();
    PIPE.get_or_init(|| Mutex::new(None))
}

/// The watchdog systemd asked for (`WatchdogSec=`), if it is meant for us.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Sends a keep-alive every half `interval` as long as no channel is stalled
/// (`stalled_channels(interval)` names none: every worker inside one
/// request, none finished for `interval`); a stalled agent gets no
/// keep-alive, and systemd restarts it. Ends once `stopping` is set.
pub(crate) fn spawn_watchdog(
    interval: Duration,
    stopping: Arc<AtomicBool>,
    stalled_channels: impl Fn(Duration) -> Vec<String> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut stalled_before = false;
            while !stopping.load(Ordering::Acquire) {
                let stalled = stalled_channels(interval);
                if stalled.is_empty() {
                    notify("WATCHDOG=1");
                    stalled_before = false;
                } else if !stalled_before {
                    tracing::error!(
                        "channels {} have had every worker in one request for {interval:?}; \
                         withholding the watchdog keep-alive",
                        stalled.join(", ")
                    );
                    stalled_before = true;
                }
                std::thread::sleep(interval / 2);
            }
        })
}

/// `run --daemonize`: forks; the parent waits until the child is serving (or
/// says why it is not) and exits with 0 (or 1). The child continues in a new
/// session, in `/`, with stdin, stdout and stderr on `/dev/null`. Must run
/// before any thread exists.
pub(crate) fn daemonize() -> Result<()> {
    let (read_end, write_end) = nix::unistd::pipe().context("creating a pipe")?;
    // SAFETY: no other thread exists yet (the caller's contract), so the
    // child may run anything after fork.
    match unsafe { nix::unistd::fork() }.context("forking")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write_end);
            let mut message = Vec::new();
            let _ = File::from(read_end).read_to_end(&mut message);
            if message == READY {
                std::process::exit(0);
            }
            let reason = String::from_utf8_lossy(&message);
            if reason.is_empty() {
                eprintln!("nova-agent: error: the agent exited before it was serving");
            } else {
                eprintln!("nova-agent: error: {reason}");
            }
            std::process::exit(1);
        }
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            nix::unistd::setsid().context("starting a session")?;
            std::env::set_current_dir("/").context("changing to /")?;
            let null = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("opening /dev/null")?;
            for fd in 0..=2 {
                // SAFETY: dup2 onto the standard descriptors, which this
                // process owns; nothing else uses them concurrently.
                if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                    return Err(std::io::Error::last_os_error()).context("redirecting stdio");
                }
            }
            *lock(parent_pipe()) = Some(File::from(write_end));
            Ok(())
        }
    }
}

/// A pidfile, locked while the agent runs, removed when dropped.
pub(crate) struct Pidfile {
    path: PathBuf,
    _file: File,
}

impl Pidfile {
    /// Writes this process's pid to `path`, refusing if another live agent
    /// holds it (the lock, not the file's existence, decides: a pidfile left
    /// by a crash is taken over).
    pub(crate) fn create(path: &Path) -> Result<Pidfile> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .with_context(|| format!("opening pidfile {}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut other = String::new();
            let _ = file.read_to_string(&mut other);
            bail!(
                "pidfile {} is held by a running nova-agent (pid {})",
                path.display(),
                other.trim()
            );
        }
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .with_context(|| format!("writing pidfile {}", path.display()))?;
        Ok(Pidfile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
