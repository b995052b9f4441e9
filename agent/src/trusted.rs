//! sshd's StrictModes for what the agent opens as root: a file is trusted
//! only if nobody but root could have written it or replaced it, so it must
//! be owned by root and writable by root only, and so must every directory
//! on the way to it, as the path is written.
//!
//! The path is walked one component at a time, the way the kernel resolves
//! it: each directory passed through is checked before what it holds is
//! looked at, and a symlink counts as part of the directory that holds it
//! (that directory is checked, the symlink must be root's, and its target is
//! walked in turn). A root-owned sticky directory, like `/tmp`, may be passed
//! through; the directory that holds the agent's own files may not be
//! sticky-writable.
//!
//! The checks apply when the agent runs as root ([`required`]).

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;
/// As the kernel's limit on symlinks followed while resolving a path.
const MAX_SYMLINKS: u32 = 40;

/// The checks apply when the agent runs as root.
pub(crate) fn required() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where a walk ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Walked {
    /// The real path (symlinks resolved) of what `path` names. What it is,
    /// and whether it may be trusted itself, is the caller's to check.
    Found(PathBuf),
    /// This component does not exist; everything before it passed.
    Missing(PathBuf),
}

/// Walks the absolute `path` as written, checking every directory it passes
/// through and every symlink on the way. The error is a one-line reason.
pub(crate) fn walk(path: &Path) -> Result<Walked, String> {
    let mut real = PathBuf::from("/");
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let root = fs::symlink_metadata(&real).map_err(|e| format!("cannot stat /: {e}"))?;
    check_directory(&real, &root, true)?;
    let mut followed = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            // The parent of a real directory is one the walk passed through.
            real.pop();
            continue;
        }
        let next = real.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Walked::Missing(next)),
            Err(e) => return Err(format!("cannot stat {}: {e}", next.display())),
        };
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 {
                return Err(format!(
                    "symlink {} is owned by uid {}; a symlink on the way must be owned by root",
                    next.display(),
                    meta.uid()
                ));
            }
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(format!("too many symlinks in {}", path.display()));
            }
            let target = fs::read_link(&next)
                .map_err(|e| format!("cannot read symlink {}: {e}", next.display()))?;
            if target.is_absolute() {
                real = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
            continue;
        }
        if !pending.is_empty() {
            if !meta.is_dir() {
                return Err(format!("{} is not a directory", next.display()));
            }
            check_directory(&next, &meta, true)?;
        }
        real = next;
    }
    Ok(Walked::Found(real))
}

/// Pushes `path`'s components so that the first one is popped first; `.`
/// and the root are dropped (the walk starts at `/`, and a symlink's
/// absolute target restarts it there).
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names = path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    });
    let names: Vec<OsString> = names.collect();
    pending.extend(names.into_iter().rev());
}

/// `path`, walked, must be an existing directory that is trusted itself
/// (not even sticky-writable): one whose entries only root can change.
/// Returns its real path.
pub(crate) fn directory(path: &Path) -> Result<PathBuf, String> {
    match walk(path)? {
        Walked::Found(real) => {
            check_holder(&real)?;
            Ok(real)
        }
        Walked::Missing(missing) => Err(format!("{} does not exist", missing.display())),
    }
}

/// As [`directory`], but what does not exist yet passes: the agent creates
/// it, as root, under a directory that passed.
pub(crate) fn directory_or_missing(path: &Path) -> Result<(), String> {
    match walk(path)? {
        Walked::Found(real) => check_holder(&real),
        Walked::Missing(_) => Ok(()),
    }
}

/// The real directory that holds the agent's files: it and what it holds
/// can be changed by root only.
fn check_holder(real: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(real)
        .map_err(|e| format!("cannot stat directory {}: {e}", real.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", real.display()));
    }
    check_directory(real, &meta, false)
}

fn check_directory(dir: &Path, meta: &Metadata, sticky_passes: bool) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!(
            "directory {} is owned by uid {}; it and its parents must be owned by root",
            dir.display(),
            meta.uid()
        ));
    }
    let sticky = sticky_passes && meta.mode() & STICKY != 0;
    if meta.mode() & WRITABLE_BY_OTHERS != 0 && !sticky {
        return Err(format!(
            "directory {} is writable by group or others (mode {:04o}); it and its parents must be writable by root only",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Opens the file `path` leads to, every directory on the way checked, and
/// checks the file through the descriptor (see [`check_file`]).
pub(crate) fn open_file(path: &Path, what: &str) -> Result<File, String> {
    let absolute;
    let path = if path.is_absolute() {
        path
    } else {
        let cwd = std::env::current_dir().map_err(|e| format!("cannot resolve the path: {e}"))?;
        absolute = cwd.join(path);
        &absolute
    };
    let real = match walk(path)? {
        Walked::Found(real) => real,
        Walked::Missing(missing) => return Err(format!("{} does not exist", missing.display())),
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    check_file(&meta, what)?;
    Ok(file)
}

/// An opened file's own metadata (from `fstat`): a regular file, owned by
/// root, writable by root only. `what` names it in the reason ("plugin
/// files", "the config file").
pub(crate) fn check_file(meta: &Metadata, what: &str) -> Result<(), String> {
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}; {what} must be owned by root",
            meta.uid()
        ));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(format!(
            "writable by group or others (mode {:04o}); {what} must be writable by root only",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A fresh directory, mode 0755, for tests that run as root (the
    /// agent's real case); others skip with a note.
    fn top() -> Option<tempfile::TempDir> {
        if !required() {
            eprintln!("skipped: the checks apply to root only");
            return None;
        }
        let top = tempfile::tempdir().unwrap();
        fs::set_permissions(top.path(), Permissions::from_mode(0o755)).unwrap();
        Some(top)
    }

    fn mkdir(path: &Path, mode: u32) -> PathBuf {
        fs::create_dir(path).unwrap();
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
        path.to_path_buf()
    }

    #[test]
    fn a_root_only_path_passes_and_resolves() {
        let Some(top) = top() else { return };
        let real = mkdir(&top.path().join("real"), 0o755);
        symlink(&real, top.path().join("link")).unwrap();
        assert_eq!(directory(&top.path().join("link")).unwrap(), real);
        assert_eq!(directory(&top.path().join("real/../link/.")).unwrap(), real);
    }

    #[test]
    fn a_symlink_counts_as_part_of_the_directory_holding_it() {
        let Some(top) = top() else { return };
        let real = mkdir(&top.path().join("real"), 0o755);
        let ww = mkdir(&top.path().join("ww"), 0o777);
        symlink(&real, ww.join("plugins")).unwrap();
        let e = directory(&ww.join("plugins")).unwrap_err();
        assert_eq!(
            e,
            format!(
                "directory {} is writable by group or others (mode 0777); \
                 it and its parents must be writable by root only",
                ww.display()
            )
        );
    }

    #[test]
    fn a_symlink_in_a_sticky_directory_must_be_roots() {
        let Some(top) = top() else { return };
        let real = mkdir(&top.path().join("real"), 0o755);
        let sticky = mkdir(&top.path().join("sticky"), 0o1777);
        let link = sticky.join("plugins");
        symlink(&real, &link).unwrap();
        assert_eq!(directory(&link).unwrap(), real);
        std::os::unix::fs::lchown(&link, Some(1000), None).unwrap();
        let e = directory(&link).unwrap_err();
        assert!(e.starts_with("symlink "), "{e}");
        assert!(e.contains("is owned by uid 1000"), "{e}");
    }

    #[test]
    fn the_symlinks_target_is_walked_too() {
        let Some(top) = top() else { return };
        let ww = mkdir(&top.path().join("ww"), 0o777);
        let real = mkdir(&ww.join("real"), 0o755);
        symlink(&real, top.path().join("link")).unwrap();
        let e = directory(&top.path().join("link")).unwrap_err();
        assert!(
            e.contains(&format!("directory {} is writable", ww.display())),
            "{e}"
        );
    }

    #[test]
    fn the_last_directory_may_not_be_sticky_but_one_on_the_way_may() {
        let Some(top) = top() else { return };
        let sticky = mkdir(&top.path().join("sticky"), 0o1777);
        let inner = mkdir(&sticky.join("inner"), 0o755);
        assert_eq!(directory(&inner).unwrap(), inner);
        let e = directory(&sticky).unwrap_err();
        assert!(e.contains("(mode 1777)"), "{e}");
    }

    #[test]
    fn missing_components_pass_only_when_asked() {
        let Some(top) = top() else { return };
        let missing = top.path().join("state/sub");
        directory_or_missing(&missing).unwrap();
        let e = directory(&missing).unwrap_err();
        assert_eq!(
            e,
            format!("{} does not exist", top.path().join("state").display())
        );
        let ww = mkdir(&top.path().join("ww"), 0o757);
        let e = directory_or_missing(&ww.join("state")).unwrap_err();
        assert!(e.contains("(mode 0757)"), "{e}");
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        let Some(top) = top() else { return };
        let dir = mkdir(&top.path().join("dir"), 0o755);
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        let e = directory(&dir.join(".")).unwrap_err();
        assert!(e.contains("is owned by uid 1000"), "{e}");
    }

    #[test]
    fn a_file_is_checked_by_descriptor_and_on_its_way() {
        let Some(top) = top() else { return };
        let real = top.path().join("agent.toml");
        fs::write(&real, b"x").unwrap();
        fs::set_permissions(&real, Permissions::from_mode(0o644)).unwrap();
        open_file(&real, "the config file").unwrap();
        let ww = mkdir(&top.path().join("ww"), 0o777);
        symlink(&real, ww.join("agent.toml")).unwrap();
        let e = open_file(&ww.join("agent.toml"), "the config file").unwrap_err();
        assert!(
            e.contains(&format!("directory {} is writable", ww.display())),
            "{e}"
        );
        fs::set_permissions(&real, Permissions::from_mode(0o620)).unwrap();
        let e = open_file(&real, "the config file").unwrap_err();
        assert_eq!(
            e,
            "writable by group or others (mode 0620); the config file must be writable by root only"
        );
    }

    #[test]
    fn symlink_loops_end() {
        let Some(top) = top() else { return };
        symlink(top.path().join("b"), top.path().join("a")).unwrap();
        symlink(top.path().join("a"), top.path().join("b")).unwrap();
        let e = directory(&top.path().join("a")).unwrap_err();
        assert!(e.starts_with("too many symlinks"), "{e}");
    }
}
