//! A listening unix socket made safely, for the exchanges that listen on one
//! (`unix-socket`, and `virtio-serial`'s `unix-listen`): refuse to clobber
//! what is not ours, replace a stale socket, never let the socket be
//! reachable with a mode wider than 0600, and remove it at the end only if
//! it is still ours.
//!
//! The socket is bound under a temporary name in the target's directory, made
//! 0600 while nothing listens on it yet, then set listening and renamed over
//! the target in one step. No umask is changed: the agent is multi-threaded.

use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

/// The longest socket path `sun_path` holds (108 bytes with the final NUL).
pub const MAX_PATH_LEN: usize = 107;

/// A listening socket at its final path.
pub struct Bound {
    pub listener: UnixListener,
    /// Device and inode of the socket file, to remove it at shutdown only if
    /// it is still ours.
    pub id: (u64, u64),
}

/// Opens `path` for listening (creating its directory, mode 0755, when
/// missing), or says in one sentence why not.
pub fn open(path: &Path) -> Result<Bound, String> {
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

/// Removes the socket file at `path` if it is still the one [`open`] made
/// (`id`); another file put there meanwhile is left alone.
pub fn remove_if_ours(path: &Path, id: (u64, u64)) {
    match file_id(path) {
        Ok(found) if found == id => {
            if let Err(e) = fs::remove_file(path) {
                tracing::warn!("cannot remove socket {}: {e}", path.display());
            }
        }
        Ok(_) => tracing::info!(
            "{} is no longer our socket; leaving it in place",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot inspect socket {}: {e}", path.display()),
    }
}

/// Device and inode of the file at `path`, without following a symlink.
pub fn file_id(path: &Path) -> io::Result<(u64, u64)> {
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
    let result = unix_socket(SockFlag::SOCK_NONBLOCK).and_then(|fd| {
        let addr = sockaddr(path)?;
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Err(Errno::EINTR) => {}
                result => return Ok(result),
            }
        }
    });
    match result {
        Ok(Ok(())) | Ok(Err(Errno::EAGAIN | Errno::EINPROGRESS)) => Probe::Listening,
        Ok(Err(Errno::ECONNREFUSED)) => Probe::Stale,
        Ok(Err(Errno::ENOENT)) => Probe::Gone,
        Ok(Err(e)) => Probe::Failed(e.into()),
        Err(e) => Probe::Failed(e),
    }
}

/// Binds `temp`, makes it 0600 before anyone can connect (a bound socket that
/// does not listen refuses connections), then listens.
fn bind_private(temp: &Path) -> io::Result<(OwnedFd, Temp)> {
    let fd = unix_socket(SockFlag::empty())?;
    let addr = sockaddr(temp)?;
    if let Err(e) = bind(fd.as_raw_fd(), &addr) {
        // A leftover of an agent that crashed with the same pid: ours to take,
        // but only if it is a socket.
        let leftover = fs::symlink_metadata(temp).is_ok_and(|m| m.file_type().is_socket());
        if e != Errno::EADDRINUSE || !leftover {
            return Err(e.into());
        }
        fs::remove_file(temp)?;
        bind(fd.as_raw_fd(), &addr)?;
    }
    // From here on the file is ours: removed again on any failure.
    let guard = Temp(temp.to_path_buf());
    fs::set_permissions(temp, fs::Permissions::from_mode(0o600))?;
    listen(&fd, Backlog::MAXCONN)?;
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

fn unix_socket(flags: SockFlag) -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | flags,
        None,
    )?)
}

fn sockaddr(path: &Path) -> io::Result<UnixAddr> {
    let bytes = path.as_os_str().as_bytes();
    let problem = if bytes.contains(&0) {
        "path contains a NUL byte".to_owned()
    } else if bytes.len() > MAX_PATH_LEN {
        format!(
            "path is too long for a unix socket ({} bytes, at most {MAX_PATH_LEN})",
            bytes.len()
        )
    } else {
        return Ok(UnixAddr::new(path)?);
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, problem))
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
