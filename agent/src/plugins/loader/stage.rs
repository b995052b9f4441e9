//! Private copies of plugin files, so a new build is really new code.
//!
//! glibc's `dlopen` hands back the object it already has for a path (or a
//! device and inode) it has loaded, so opening `/usr/lib/.../libfoo.so` again
//! after `apt upgrade` replaced it would return the OLD code. Each load
//! therefore copies the checked file, from the descriptor the trust check
//! approved, into an anonymous file (`O_TMPFILE`) in a private directory
//! under `state_dir`, and opens that copy by its descriptor: it never has a
//! name, so nobody can rename another file over it between the copy and the
//! `dlopen`, and the mapping keeps its inode alive (so its number cannot be
//! reused while the old code is mapped). The directory should be
//! disk-backed: superseded code stays mapped, and on disk the kernel can drop
//! its pages. Where the filesystem has no `O_TMPFILE`, the copy is a memfd.
//!
//! Copying also protects the running code from a file rewritten in place
//! (`cp new.so libfoo.so`), which would otherwise change mapped pages under
//! it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::load::{self, Library, LoadError};

/// A file's identity and version: a changed one is a new build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
}

impl FileId {
    /// Of what `path` leads to (symlinks followed).
    pub(crate) fn of(path: &Path) -> io::Result<FileId> {
        fs::metadata(path).map(|m| FileId::from_metadata(&m))
    }

    pub(crate) fn from_metadata(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The staging directory.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Creates `<state_dir>/plugins` (mode 0700) and empties it of what an
    /// earlier run left there.
    pub(crate) fn prepare(state_dir: &Path) -> Result<Staging, String> {
        let dir = state_dir.join("plugins");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let meta = fs::symlink_metadata(&dir)
            .map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
        if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(format!(
                "{} is not a directory owned by the agent's user",
                dir.display()
            ));
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        if nix::sys::statfs::statfs(&dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        {
            tracing::warn!(
                "plugin staging directory {} is on tmpfs: code of replaced plugins will stay in memory \
                 until the agent restarts; put state_dir on disk",
                dir.display()
            );
        }
        let staging = Staging { dir };
        if let Err(e) = staging.unnamed_in_dir() {
            tracing::warn!(
                "cannot create unnamed files in {} ({e}): staged plugin copies are kept in memory; \
                 put state_dir on a filesystem with O_TMPFILE (ext4, xfs, btrfs)",
                staging.dir.display()
            );
        }
        Ok(staging)
    }

    /// Copies what `source` holds (the file the trust check approved) to an
    /// anonymous file and opens that. `name` is the plugin's path, for
    /// messages.
    pub(crate) fn open(&self, mut source: File, name: &Path) -> Result<Library, LoadError> {
        // Readable by all (it has no name, and only root can reach it by
        // /proc/<agent>/fd): an isolated plugin's child running as another
        // user loads it by /proc/self/fd/4, which checks this mode.
        let copied = self.anonymous_file().and_then(|mut copy| {
            io::copy(&mut source, &mut copy)?;
            copy.set_permissions(fs::Permissions::from_mode(0o444))?;
            Ok(copy)
        });
        let copy = copied.map_err(|e| {
            LoadError::new(format!("cannot copy it to {}: {e}", self.dir.display()))
        })?;
        // The copy is what gets mapped: the installed file's pages that the
        // copying read into the page cache would only duplicate it. Advice
        // only; pages someone else maps stay.
        let _ = nix::fcntl::posix_fadvise(
            &source,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        load::open(copy, name)
    }

    /// A new file without a name: in the staging directory, else in memory.
    fn anonymous_file(&self) -> io::Result<File> {
        match self.unnamed_in_dir() {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let fd = nix::sys::memfd::memfd_create(
                    c"nova-agent-plugin",
                    nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
                )?;
                Ok(File::from(fd))
            }
            other => other,
        }
    }

    fn unnamed_in_dir(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o700)
            .custom_flags(libc::O_TMPFILE)
            .open(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_changes_with_content_and_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liba.so");
        fs::write(&path, b"one").unwrap();
        let first = FileId::of(&path).unwrap();
        assert_eq!(first, FileId::of(&path).unwrap());
        let replacement = dir.path().join("liba.so.dpkg-new");
        fs::write(&replacement, b"one").unwrap();
        fs::rename(&replacement, &path).unwrap();
        assert_ne!(first, FileId::of(&path).unwrap());
    }

    #[test]
    fn staging_is_private_and_emptied() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("plugins");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("leftover.1.1.so"), b"x").unwrap();
        Staging::prepare(state.path()).unwrap();
        let meta = fs::metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_open_leaves_no_copy() {
        let state = tempfile::tempdir().unwrap();
        let staging = Staging::prepare(state.path()).unwrap();
        let junk = state.path().join("libjunk.so");
        fs::write(&junk, b"not an ELF file").unwrap();
        let Err(e) = staging.open(File::open(&junk).unwrap(), &junk) else {
            panic!("junk opened")
        };
        assert!(e.reason.starts_with("cannot load: "), "{}", e.reason);
        // The message names the plugin's file, never the staged copy.
        assert!(e.reason.contains(&*junk.to_string_lossy()), "{}", e.reason);
        assert!(!e.reason.contains("/plugins/"), "{}", e.reason);
        assert!(!e.reason.contains("/proc/self/fd/"), "{}", e.reason);
        assert_eq!(
            fs::read_dir(state.path().join("plugins")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_copy_never_has_a_name_anyone_could_replace() {
        let state = tempfile::tempdir().unwrap();
        let staging = Staging::prepare(state.path()).unwrap();
        let source = state.path().join("liba.so");
        fs::write(&source, b"the checked content").unwrap();
        let mut copy = staging.anonymous_file().unwrap();
        io::copy(&mut File::open(&source).unwrap(), &mut copy).unwrap();
        assert_eq!(copy.metadata().unwrap().nlink(), 0);
        assert_eq!(
            fs::read_dir(state.path().join("plugins")).unwrap().count(),
            0
        );
        let by_fd = fs::read(load::fd_path(&copy)).unwrap();
        assert_eq!(by_fd, b"the checked content");
    }
}
