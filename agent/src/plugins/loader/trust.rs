//! The trust check run before any `dlopen` when the agent runs as root:
//! loading a file runs its code as root, so only root may have been able to
//! write it (sshd's StrictModes, applied to plugins).
//!
//! - the file, its directory and every ancestor are owned by root and not
//!   writable by group or others;
//! - an ancestor (not the plugin directory itself) that is root-owned and
//!   sticky, like `/tmp`, is accepted;
//! - a symlink must resolve to a file directly inside one of the plugin
//!   directories.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Checks `file`, found in one of `plugin_dirs`, and returns the path to open
/// (the symlink resolved). The error is a one-line reason.
pub(crate) fn check(file: &Path, plugin_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let link = std::fs::symlink_metadata(file).map_err(|e| format!("cannot stat: {e}"))?;
    let resolved =
        std::fs::canonicalize(file).map_err(|e| format!("cannot resolve the path: {e}"))?;
    if link.file_type().is_symlink() {
        let inside = resolved.parent().is_some_and(|parent| {
            plugin_dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok())
                .any(|d| d == parent)
        });
        if !inside {
            return Err(format!(
                "symlink to {}, outside the plugin directories; plugins must live in a trusted directory",
                resolved.display()
            ));
        }
    }

    let meta = std::fs::metadata(&resolved).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}; plugin files must be owned by root",
            meta.uid()
        ));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(format!(
            "writable by group or others (mode {:04o}); plugin files must be writable by root only",
            meta.permissions().mode() & 0o7777
        ));
    }

    let plugin_dir = resolved.parent().unwrap_or(Path::new("/"));
    for dir in plugin_dir.ancestors() {
        let meta = std::fs::metadata(dir)
            .map_err(|e| format!("cannot stat directory {}: {e}", dir.display()))?;
        if meta.uid() != 0 {
            return Err(format!(
                "directory {} is owned by uid {}; it and its parents must be owned by root",
                dir.display(),
                meta.uid()
            ));
        }
        let sticky_ancestor = dir != plugin_dir && meta.mode() & STICKY != 0;
        if meta.mode() & WRITABLE_BY_OTHERS != 0 && !sticky_ancestor {
            return Err(format!(
                "directory {} is writable by group or others (mode {:04o}); it and its parents must be writable by root only",
                dir.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(resolved)
}

/// The check applies when the agent runs as root.
pub(crate) fn required() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};

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

    #[test]
    fn a_root_owned_read_only_plugin_is_trusted() {
        let Some((_top, dir)) = plugin_dir() else {
            return;
        };
        let file = plugin(&dir, "liba.so", 0o644);
        assert_eq!(
            check(&file, std::slice::from_ref(&dir)).unwrap(),
            fs::canonicalize(&file).unwrap()
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
            fs::canonicalize(&inside).unwrap()
        );

        let outside = plugin(top.path(), "libz.so", 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("libc.so")).unwrap();
        let e = check(&dir.join("libc.so"), std::slice::from_ref(&dir)).unwrap_err();
        assert!(e.starts_with("symlink to "), "{e}");
        assert!(e.contains("outside the plugin directories"), "{e}");
    }
}
