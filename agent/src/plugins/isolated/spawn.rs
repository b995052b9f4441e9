//! Starting a plugin's child process: this binary again (`/proc/self/exe`,
//! so an agent whose file was upgraded still starts its own build), in its
//! hidden `plugin-host` mode, with its end of the request socketpair as fd
//! 3, the checked library as fd 4 and its end of the background socketpair
//! as fd 5, and the limits applied between `fork` and `exec`.
//!
//! Between `fork` and `exec` only async-signal-safe calls run (`dup2`,
//! `setrlimit`, `prctl`, `setgroups`, `setgid`, `setuid`); everything they
//! need (the user's ids and groups) is looked up before.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, Stdio};

use super::Settings;

/// The descriptors the child finds its sockets and library at: requests
/// and everything the agent sends go over the first; what the plugin's own
/// threads (and `init`) send the agent over the background one, so that a
/// request's answer wakes only the request waiting for it.
pub(crate) const SOCKET_FD: RawFd = 3;
pub(crate) const LIBRARY_FD: RawFd = 4;
pub(crate) const BACKGROUND_FD: RawFd = 5;

/// `close_range`'s flag to mark descriptors close-on-exec instead of closing
/// them (Linux 5.11): std's own pipe reporting a failed `exec` must stay.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// A started child: the process, the agent's end of the socketpair, and the
/// child's stdout and stderr (one pipe).
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) socket: UnixStream,
    pub(crate) background: UnixStream,
    pub(crate) output: ChildStderr,
}

/// Who the child becomes.
struct Identity {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

fn identity(user: &str) -> Result<Identity, String> {
    let found = nix::unistd::User::from_name(user)
        .map_err(|e| format!("cannot look up user '{user}': {e}"))?
        .ok_or_else(|| {
            format!("user '{user}' does not exist; set [isolation] user to an existing user")
        })?;
    let name = CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
    let groups = nix::unistd::getgrouplist(&name, found.gid)
        .map_err(|e| format!("cannot list the groups of user '{user}': {e}"))?;
    Ok(Identity {
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
    })
}

/// A copy of `fd` numbered 10 or above (close-on-exec), so that moving the
/// copies to 3 and 4 in the child cannot overwrite one another.
fn high_copy(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor the caller holds; the result is a new
    // descriptor owned by the returned value.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just created and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Starts `nova-agent plugin-host <plugin>` on the library held by
/// `library`, under `limits`.
pub(crate) fn spawn(plugin: &str, library: RawFd, limits: &Settings) -> Result<Spawned, String> {
    let identity = match limits.user.as_deref() {
        None | Some("root") => None,
        Some(user) => Some(identity(user)?),
    };
    let (socket, child_end) =
        UnixStream::pair().map_err(|e| format!("cannot create a socketpair: {e}"))?;
    let socket_copy = high_copy(child_end.as_raw_fd())
        .map_err(|e| format!("cannot duplicate the socket: {e}"))?;
    let (background, background_end) =
        UnixStream::pair().map_err(|e| format!("cannot create a socketpair: {e}"))?;
    let background_copy = high_copy(background_end.as_raw_fd())
        .map_err(|e| format!("cannot duplicate the socket: {e}"))?;
    let library_copy =
        high_copy(library).map_err(|e| format!("cannot duplicate the plugin's descriptor: {e}"))?;
    let (output_read, output_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let stdout = output_write
        .try_clone()
        .map_err(|e| format!("cannot duplicate a pipe: {e}"))?;

    let (socket_fd, library_fd, background_fd) = (
        socket_copy.as_raw_fd(),
        library_copy.as_raw_fd(),
        background_copy.as_raw_fd(),
    );
    let memory = limits.memory_bytes as libc::rlim_t;
    let no_new_privs = limits.no_new_privs;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("nova-agent")
        .args(["plugin-host", plugin])
        .current_dir("/")
        // systemd's: only the agent itself speaks to it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(output_write));
    // SAFETY: the closure runs in the child between fork and exec, and makes
    // only async-signal-safe calls on values prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            check(libc::dup2(socket_fd, SOCKET_FD))?;
            check(libc::dup2(library_fd, LIBRARY_FD))?;
            check(libc::dup2(background_fd, BACKGROUND_FD))?;
            // Whatever else the agent holds (a plugin's C library may open
            // descriptors without close-on-exec) closes at exec; older
            // kernels without the flag close only what is marked already.
            let _ = libc::syscall(libc::SYS_close_range, 6u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            let memory = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            check(libc::setrlimit(libc::RLIMIT_DATA, &memory))?;
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            check(libc::setrlimit(libc::RLIMIT_CORE, &no_core))?;
            if let Some(who) = &identity {
                check(libc::setgroups(who.groups.len(), who.groups.as_ptr()))?;
                check(libc::setgid(who.gid))?;
                check(libc::setuid(who.uid))?;
            }
            if no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start the plugin's process: {e}"))?;
    drop((child_end, socket_copy, library_copy, command));
    drop((background_end, background_copy));
    Ok(Spawned {
        child,
        socket,
        background,
        output: ChildStderr::from(output_read),
    })
}
