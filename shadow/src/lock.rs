//! The lock shadow-utils programs take before editing the password files.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;

/// lckpwdf's own limit for waiting on another program holding the lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(15);

/// The lock shadow-utils programs take (lckpwdf): an fcntl write lock on
/// `/etc/.pwd.lock`, held until dropped. libc's lckpwdf always locks the
/// real /etc, so this takes the one under the configured root.
pub(crate) struct PasswordLock {
    _file: File,
}

impl PasswordLock {
    pub(crate) fn take(path: &Path, wait: Duration) -> Result<PasswordLock, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags((OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).bits())
            .open(path)
            .map_err(|e| format!("cannot open the password lock {}: {e}", path.display()))?;
        let deadline = Instant::now() + wait;
        loop {
            match write_lock(&file) {
                Ok(()) => return Ok(PasswordLock { _file: file }),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) if is_busy(&e) => {
                    return Err(format!(
                        "the password files are locked by another program (waited {:.1} s)",
                        wait.as_secs_f64()
                    ))
                }
                Err(e) => return Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
    }
}

/// A write lock on the whole file (`l_len` 0: to its end, however long).
fn whole_file_write_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

fn write_lock(file: &File) -> io::Result<()> {
    fcntl(file, FcntlArg::F_SETLK(&whole_file_write_lock()))
        .map(drop)
        .map_err(io::Error::from)
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EAGAIN | Errno::EACCES)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fcntl's process-owned locks do not conflict within one process, but
    /// an open file description lock (`F_OFD_SETLK`) conflicts with them
    /// even there: the other holder is such a lock, released by a thread
    /// after `hold`.
    fn hold_elsewhere(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        fcntl(&file, FcntlArg::F_OFD_SETLK(&whole_file_write_lock())).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            drop(file);
        })
    }

    #[test]
    fn the_lock_waits_for_another_holder_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pwd.lock");

        let holder = hold_elsewhere(&path, Duration::from_millis(1500));
        let error = PasswordLock::take(&path, Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(error.contains("locked by another program"), "{error}");
        let started = Instant::now();
        let lock = PasswordLock::take(&path, Duration::from_secs(10));
        assert!(lock.is_ok(), "{:?}", lock.err());
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "it waited for the holder"
        );
        holder.join().unwrap();
    }
}
