//! The trust check run before any `dlopen` when the agent runs as root:
//! loading a file runs its code as root, so only root may have been able to
//! write it (sshd's StrictModes, applied to plugins, see [`crate::trusted`]).
//!
//! - the plugin directory, as written, passes [`trusted::directory`]: every
//!   directory on the way owned by root and not writable by group or others
//!   (one passed through may be root-owned and sticky, like `/tmp`), symlinks
//!   on the way root's and walked in turn;
//! - a symlinked plugin file must resolve to a file directly inside one of
//!   the plugin directories;
//! - the file is opened (`O_NOFOLLOW`) and checked through that descriptor:
//!   a regular file owned by root and writable by root only. What is loaded
//!   is what the descriptor holds, never a path looked up again.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::trusted;

/// Opens `file`, found in one of `plugin_dirs`, for loading; as root, only
/// once every check passed. The error is a one-line reason.
pub(crate) fn open(file: &Path, plugin_dirs: &[PathBuf]) -> Result<File, String> {
    if !required() {
        return File::open(file).map_err(|e| format!("cannot open: {e}"));
    }
    let holder = file.parent().unwrap_or(Path::new("/"));
    let real_holder = trusted::directory(holder)?;
    let name = file.file_name().ok_or("not a file name")?;
    let link = std::fs::symlink_metadata(file).map_err(|e| format!("cannot stat: {e}"))?;
    let real = if link.file_type().is_symlink() {
        let resolved =
            std::fs::canonicalize(file).map_err(|e| format!("cannot resolve the path: {e}"))?;
        let parent = resolved.parent().unwrap_or(Path::new("/"));
        let dir = plugin_dirs
            .iter()
            .find(|d| std::fs::canonicalize(d).is_ok_and(|d| d == parent))
            .ok_or_else(|| {
                format!(
                    "symlink to {}, outside the plugin directories; plugins must live in a trusted directory",
                    resolved.display()
                )
            })?;
        trusted::directory(dir)?;
        resolved
    } else {
        real_holder.join(name)
    };
    // Every directory on the way to `real` is root's alone, so nobody else
    // can have swapped it since; the file itself is checked by descriptor.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = opened.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    trusted::check_file(&meta, "plugin files")?;
    Ok(opened)
}

/// The check applies when the agent runs as root.
pub(crate) fn required() -> bool {
    trusted::required()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A plugin directory under a fresh root-only temp dir, for tests that run
    /// as root (the agent's real case); others skip with a note.
    fn plugin_dir() -> Option<(tempfile::TempDir, PathBuf)> {
        if !required() {
            eprintln!("skipped: the trust check applies to root only");
            return None;
        }
        let top = tempfile::tempdir().unwrap();
        fs::set_permissions(top.path(), Permissions::from_mode(0o755)).unwrap();
        let dir = top.path().join("plugins");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        Some((top, dir))
    }

    fn plugin(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, b"\x7fELF").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        path
    }

    fn check(file: &Path, dirs: &[PathBuf]) -> Result<u64, String> {
        open(file, dirs).map(|f| f.metadata().unwrap().ino())
    }

    fn ino(file: &Path) -> u64 {
        fs::metadata(file).unwrap().ino()
    }

    #[test]
    fn a_root_owned_read_only_plugin_is_trusted() {
        let Some((_top, dir)) = plugin_dir() else {
            return;
        };
        let file = plugin(&dir, "liba.so", 0o644);
        assert_eq!(
            check(&file, std::slice::from_ref(&dir)).unwrap(),
            ino(&file)
        );
    }

    #[test]
    fn group_or_world_writable_files_are_refused() {
        let Some((_top, dir)) = plugin_dir() else {
            return;
        };
        for mode in [0o664, 0o646] {
            let file = plugin(&dir, "liba.so", mode);
            let e = check(&file, std::slice::from_ref(&dir)).unwrap_err();
            assert!(e.starts_with("writable by group or others"), "{e}");
        }
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        let Some((_top, dir)) = plugin_dir() else {
            return;
        };
        let file = plugin(&dir, "liba.so", 0o644);
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        let e = check(&file, std::slice::from_ref(&dir)).unwrap_err();
        assert_eq!(e, "owned by uid 1000; plugin files must be owned by root");
    }

    #[test]
    fn a_writable_plugin_directory_is_refused_even_if_sticky() {
        let Some((_top, dir)) = plugin_dir() else {
            return;
        };
        let file = plugin(&dir, "liba.so", 0o644);
        fs::set_permissions(&dir, Permissions::from_mode(0o1777)).unwrap();
        let e = check(&file, std::slice::from_ref(&dir)).unwrap_err();
        assert!(
            e.contains("is writable by group or others (mode 1777)"),
            "{e}"
        );
    }

    #[test]
    fn a_writable_ancestor_is_refused_unless_sticky() {
        let Some((top, dir)) = plugin_dir() else {
            return;
        };
        let file = plugin(&dir, "liba.so", 0o644);
        fs::set_permissions(top.path(), Permissions::from_mode(0o777)).unwrap();
        let e = check(&file, std::slice::from_ref(&dir)).unwrap_err();
        assert!(
            e.contains(&format!("directory {} is writable", top.path().display())),
            "{e}"
        );
        fs::set_permissions(top.path(), Permissions::from_mode(0o1777)).unwrap();
        check(&file, std::slice::from_ref(&dir)).unwrap();
    }

    #[test]
    fn symlinks_must_stay_inside_the_plugin_directories() {
        let Some((top, dir)) = plugin_dir() else {
            return;
        };
        let inside = plugin(&dir, "liba.so", 0o644);
        std::os::unix::fs::symlink(&inside, dir.join("libb.so")).unwrap();
        assert_eq!(
            check(&dir.join("libb.so"), std::slice::from_ref(&dir)).unwrap(),
            ino(&inside)
        );

        let outside = plugin(top.path(), "libz.so", 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("libc.so")).unwrap();
        let e = check(&dir.join("libc.so"), std::slice::from_ref(&dir)).unwrap_err();
        assert!(e.starts_with("symlink to "), "{e}");
        assert!(e.contains("outside the plugin directories"), "{e}");
    }

    #[test]
    fn a_plugin_directory_reached_through_a_writable_directory_is_refused() {
        let Some((top, dir)) = plugin_dir() else {
            return;
        };
        plugin(&dir, "liba.so", 0o644);
        let ww = top.path().join("ww");
        fs::create_dir(&ww).unwrap();
        fs::set_permissions(&ww, Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink(&dir, ww.join("plugins")).unwrap();
        let configured = ww.join("plugins");
        let e = check(&configured.join("liba.so"), &[configured]).unwrap_err();
        assert!(
            e.contains(&format!("directory {} is writable", ww.display())),
            "{e}"
        );
    }
}
