//! Private copies of plugin files, so a new build is really new code.
//!
//! glibc's `dlopen` hands back the object it already has for a path (or a
//! device and inode) it has loaded, so opening `/usr/lib/.../libfoo.so` again
//! after `apt upgrade` replaced it would return the OLD code. Each load
//! therefore copies the file to a unique name in a private directory under
//! `state_dir`, opens the copy, and unlinks it: the mapping keeps the inode
//! alive (so its number cannot be reused while the old code is mapped) and
//! nothing is left behind. The directory should be disk-backed: superseded
//! code stays mapped, and on disk the kernel can drop its pages.
//!
//! Copying also protects the running code from a file rewritten in place
//! (`cp new.so libfoo.so`), which would otherwise change mapped pages under
//! it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nova_agent_plugin_api::ffi::PluginRootRef;
use serde::{Deserialize, Serialize};

use super::load::{self, LoadError, Manifest};

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

    fn from_metadata(meta: &fs::Metadata) -> FileId {
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
    next: AtomicU64,
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
        Ok(Staging {
            dir,
            next: AtomicU64::new(1),
        })
    }

    /// Copies `source` (trusted, symlinks resolved) to a unique name, opens
    /// the copy and removes its name. Returns the root module, manifest, the
    /// identity of the copied content, and the bytes the copy maps.
    pub(crate) fn open(
        &self,
        source: &Path,
    ) -> Result<(PluginRootRef, Manifest, FileId, u64), LoadError> {
        let mut input =
            File::open(source).map_err(|e| LoadError::new(format!("cannot open: {e}")))?;
        let meta = input
            .metadata()
            .map_err(|e| LoadError::new(format!("cannot stat: {e}")))?;
        let id = FileId::from_metadata(&meta);
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy = self.dir.join(format!(
            "{stem}.{}.{}.so",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        let copied = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&copy)
            .and_then(|mut output| io::copy(&mut input, &mut output));
        if let Err(e) = copied {
            let _ = fs::remove_file(&copy);
            return Err(LoadError::new(format!(
                "cannot copy it to {}: {e}",
                self.dir.display()
            )));
        }
        let opened = load::open(&copy);
        let mapped = mapped_bytes(&copy);
        let _ = fs::remove_file(&copy);
        // dlopen's messages name the file it opened: name the plugin's.
        let (root, manifest) = opened.map_err(|mut e| {
            let (staged, original) = (copy.to_string_lossy(), source.to_string_lossy());
            e.reason = e.reason.replace(&*staged, &original);
            e
        })?;
        Ok((root, manifest, id, mapped))
    }
}

/// Bytes of this process's address space mapped from `path`.
pub(crate) fn mapped_bytes(path: &Path) -> u64 {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let wanted = path.to_string_lossy();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let name = fields.nth(4)?.trim_start();
            (name == wanted).then_some(range)
        })
        .filter_map(|range| {
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some(end.saturating_sub(start))
        })
        .sum()
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
        let Err(e) = staging.open(&junk) else {
            panic!("junk opened")
        };
        assert!(e.reason.starts_with("cannot load: "), "{}", e.reason);
        // The message names the plugin's file, never the staged copy.
        assert!(e.reason.contains(&*junk.to_string_lossy()), "{}", e.reason);
        assert!(!e.reason.contains("/plugins/"), "{}", e.reason);
        assert_eq!(
            fs::read_dir(state.path().join("plugins")).unwrap().count(),
            0
        );
    }

    #[test]
    fn mapped_bytes_counts_only_the_named_file() {
        assert_eq!(mapped_bytes(Path::new("/nonexistent/libx.so")), 0);
        let exe = std::env::current_exe().unwrap();
        assert!(mapped_bytes(&exe) > 0);
    }
}
