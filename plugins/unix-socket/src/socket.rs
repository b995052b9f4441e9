//! Opening the socket file safely: refuse to clobber what is not ours, replace
//! a stale socket, and never let the socket be reachable with a mode wider
//! than 0600.
//!
//! The socket is bound under a temporary name in the target's directory, made
//! 0600 while nothing listens on it yet, then set listening and renamed over
//! the target in one step. No umask is changed: the agent is multi-threaded.

use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest socket path `sun_path` holds (108 bytes with the final NUL).
pub(crate) const MAX_PATH_LEN: usize = 107;

/// A listening socket at its final path.
pub(crate) struct Bound {
    pub(crate) listener: UnixListener,
    /// Device and inode of the socket file, to remove it at shutdown only if
    /// it is still ours.
    pub(crate) id: (u64, u64),
}

/// Opens `path` for listening, or says in one sentence why not.
pub(crate) fn open(path: &Path) -> Result<Bound, String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return Err(format!("{} has no parent directory", path.display())),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    check_existing(path)?;

    let temp_path = temp_name(dir, path);
    let (fd, temp) = bind_private(&temp_path).map_err(|e| {
        format!(
            "cannot open socket {} (as {}): {e}",
            path.display(),
            temp_path.display()
        )
    })?;
    let meta = fs::symlink_metadata(&temp.0)
        .map_err(|e| format!("cannot inspect {}: {e}", temp.0.display()))?;
    fs::rename(&temp.0, path).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            temp.0.display(),
            path.display()
        )
    })?;
    mem::forget(temp);
    Ok(Bound {
        listener: UnixListener::from(fd),
        id: (meta.dev(), meta.ino()),
    })
}

/// Device and inode of the file at `path`, without following a symlink.
pub(crate) fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let meta = fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// What is at `path` may be replaced: nothing, or a socket nobody listens on.
fn check_existing(path: &Path) -> Result<(), String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ));
    }
    match probe(path) {
        Probe::Listening => Err(format!(
            "socket {} is in use by another process (is another nova-agent running?)",
            path.display()
        )),
        Probe::Stale => {
            tracing::info!("replacing stale socket {}", path.display());
            Ok(())
        }
        Probe::Gone => Ok(()),
        Probe::Failed(e) => Err(format!("cannot check socket {}: {e}", path.display())),
    }
}

enum Probe {
    /// Something accepted (or queued) the connection.
    Listening,
    /// ECONNREFUSED: the file outlived its process.
    Stale,
    /// The file vanished meanwhile.
    Gone,
    Failed(io::Error),
}

/// Connects without blocking: a live server whose backlog is full must not
/// hang `start`.
fn probe(path: &Path) -> Probe {
    let result = unix_socket(libc::SOCK_NONBLOCK).and_then(|fd| {
        let (addr, len) = sockaddr(path)?;
        loop {
            // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
            let r = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_un).cast(),
                    len,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    });
    match result {
        Ok(()) => Probe::Listening,
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => Probe::Listening,
            Some(libc::ECONNREFUSED) => Probe::Stale,
            Some(libc::ENOENT) => Probe::Gone,
            _ => Probe::Failed(e),
        },
    }
}

/// Binds `temp`, makes it 0600 before anyone can connect (a bound socket that
/// does not listen refuses connections), then listens.
fn bind_private(temp: &Path) -> io::Result<(OwnedFd, Temp)> {
    let fd = unix_socket(0)?;
    let (addr, len) = sockaddr(temp)?;
    let bind = || {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if let Err(e) = bind() {
        // A leftover of an agent that crashed with the same pid: ours to take,
        // but only if it is a socket.
        let leftover = fs::symlink_metadata(temp).is_ok_and(|m| m.file_type().is_socket());
        if e.raw_os_error() != Some(libc::EADDRINUSE) || !leftover {
            return Err(e);
        }
        fs::remove_file(temp)?;
        bind()?;
    }
    // From here on the file is ours: removed again on any failure.
    let guard = Temp(temp.to_path_buf());
    fs::set_permissions(temp, fs::Permissions::from_mode(0o600))?;
    // SAFETY: plain call on a socket we own.
    if unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fd, guard))
}

/// Removes the temporary socket file unless forgotten.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `<dir>/.<name>.<pid>.<n>`, or a shorter form when that would not fit
/// `sun_path`.
fn temp_name(dir: &Path, path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let long = dir.join(format!(".{name}.{pid}.{n}"));
    if long.as_os_str().len() <= MAX_PATH_LEN {
        long
    } else {
        dir.join(format!(".{pid}.{n}"))
    }
}

fn unix_socket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "path is too long for a unix socket ({} bytes, at most {MAX_PATH_LEN})",
                bytes.len()
            ),
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn opens_with_mode_0600_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/agent.sock");
        let bound = open(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(bound.id, (meta.dev(), meta.ino()));
        let parent = fs::metadata(dir.path().join("a/b")).unwrap();
        assert!(parent.is_dir());
        assert_eq!(
            parent.mode() & 0o022,
            0,
            "parent must not be group/other writable"
        );
        // Nothing but the socket is left in the directory.
        let names: Vec<_> = fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["agent.sock"]);
        UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn probe_tells_live_stale_and_gone_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        assert!(matches!(probe(&path), Probe::Gone));
        let listener = UnixListener::bind(&path).unwrap();
        assert!(matches!(probe(&path), Probe::Listening));
        drop(listener);
        assert!(matches!(probe(&path), Probe::Stale));
    }

    #[test]
    fn a_symlink_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.sock");
        let _listener = UnixListener::bind(&target).unwrap();
        let path = dir.path().join("agent.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let error = open(&path).err().unwrap();
        assert_eq!(
            error,
            format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )
        );
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn temp_names_fit_sun_path() {
        let dir = PathBuf::from(format!("/{}", "d".repeat(80)));
        let path = dir.join("agent-socket-name.sock");
        assert!(path.as_os_str().len() <= MAX_PATH_LEN);
        let temp = temp_name(&dir, &path);
        assert!(temp.as_os_str().len() <= MAX_PATH_LEN, "{}", temp.display());
        assert!(sockaddr(&temp).is_ok());
        assert!(sockaddr(&dir.join("x".repeat(30))).is_err());
    }
}
