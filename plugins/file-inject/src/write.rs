//! The changes, once a path is resolved: missing directories, the backup,
//! the atomic write.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nova_agent_support::files::write_file;

use crate::path::{guest_text, host_path, Target};

/// A new file's mode (its owner is the agent's: root).
pub(crate) const NEW_FILE_MODE: u32 = 0o644;
/// A created directory's mode, whatever the umask.
pub(crate) const NEW_DIR_MODE: u32 = 0o755;

pub(crate) struct Outcome {
    /// The file existed and is now `<file>.bak`.
    pub(crate) backed_up: bool,
}

/// Creates `target`'s missing parents, moves an existing file to
/// `<file>.bak` (the previous backup goes), and writes `contents` atomically,
/// keeping an existing file's mode, owner and label.
pub(crate) fn inject(root: &Path, target: &Target, contents: &[u8]) -> Result<Outcome, String> {
    let (name, parents) = target
        .components
        .split_last()
        .expect("a resolved target names a file");
    create_parents(root, parents)?;
    let existing = match fs::symlink_metadata(&target.host) {
        Ok(metadata) if metadata.is_file() => true,
        Ok(_) => {
            return Err(format!(
                "Refusing path {}: {} changed while it was written",
                target.asked, target.guest
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("Could not look up {}: {e}", target.guest)),
    };
    if existing {
        back_up(&target.host, name).map_err(|e| {
            format!(
                "Could not keep {} as {}.bak, nothing written: {e}",
                target.guest, target.guest
            )
        })?;
    }
    write_file(&target.host, NEW_FILE_MODE, contents)
        .map_err(|e| format!("Could not write {}: {e}", target.guest))?;
    Ok(Outcome {
        backed_up: existing,
    })
}

/// Creates each missing directory of `parents` under `root`, mode 0755.
fn create_parents(root: &Path, parents: &[OsString]) -> Result<(), String> {
    for depth in 1..=parents.len() {
        let dir = host_path(root, &parents[..depth]);
        let failed = |e: io::Error| {
            format!(
                "Could not create the directory {}: {e}",
                guest_text(&parents[..depth])
            )
        };
        match fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => continue,
            Ok(_) => return Err(failed(io::Error::from(io::ErrorKind::AlreadyExists))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        DirBuilder::new()
            .mode(NEW_DIR_MODE)
            .create(&dir)
            .map_err(failed)?;
        // Not the umask's choice: the original agent's makedirs under the
        // usual 022.
        fs::set_permissions(&dir, Permissions::from_mode(NEW_DIR_MODE)).map_err(failed)?;
    }
    Ok(())
}

/// Distinguishes the temporary links of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Makes the file at `file` (named `name`) its own backup, `<name>.bak`: a
/// hard link under a temporary name, renamed over the previous backup. The
/// backup is the old file itself (contents, mode, owner, label); the write
/// that follows puts a new file in its place.
fn back_up(file: &Path, name: &OsString) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut backup_name = name.clone();
    backup_name.push(".bak");
    let backup = dir.join(backup_name);
    let temporary = temporary_link(dir, file)?;
    fs::rename(&temporary, &backup).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

/// A new hard link to `file` in `dir`, under a hidden temporary name.
fn temporary_link(dir: &Path, file: &Path) -> io::Result<PathBuf> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let link = dir.join(format!(".nova-agent-bak.{pid}.{n}"));
        match fs::hard_link(file, &link) {
            Ok(()) => return Ok(link),
            // Left by an earlier process that had our pid and crashed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
