//! Installing an unpacked package, each file replaced atomically.
//!
//! In three steps: every target is checked (its directory exists; it is a
//! regular file or absent, never a symlink); every new file is copied next to
//! its target as a temporary (same directory, so the rename cannot cross a
//! filesystem), given mode 0755 (binary) or 0644 (plugins) and owner root,
//! and synced; only then are they renamed over their targets, plugins first
//! and the binary last, and the directories synced. A failure before the first
//! rename removes the temporaries and leaves the install byte-identical.
//! Renaming (never writing in place) also keeps the running agent safe: its
//! binary and the plugins it has mapped keep their old inodes.
//!
//! `nova_agent_support::files::replace_file` is not used: it renames each file
//! as soon as it is written and keeps the old file's mode, where an update
//! must stage every file before renaming any and give new files fixed modes.
//! Plugins the package does not carry are left in place.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{fchown, fsync, geteuid, Gid, Uid};

use crate::config::{GuestPath, Paths};
use crate::unpack::Package;

pub const BINARY_MODE: u32 = 0o755;
pub const PLUGIN_MODE: u32 = 0o644;

/// One file to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The package member, as logs show it (`bin/nova-agent`).
    pub member: String,
    /// The unpacked file.
    pub source: PathBuf,
    pub target: GuestPath,
    pub mode: u32,
}

/// The package's files in install order: plugins by name, the binary last.
pub fn plan(package: &Package, paths: &Paths) -> Vec<Item> {
    let mut items: Vec<Item> = package
        .plugins
        .iter()
        .map(|(name, source)| Item {
            member: format!("plugins/{name}"),
            source: source.clone(),
            target: paths.plugin_dir.join(name),
            mode: PLUGIN_MODE,
        })
        .collect();
    items.push(Item {
        member: "bin/nova-agent".to_owned(),
        source: package.binary.clone(),
        target: paths.binary.clone(),
        mode: BINARY_MODE,
    });
    items
}

/// Whether every target can be replaced: its directory exists, and it is a
/// regular file or absent. Reads only.
pub fn check(items: &[Item]) -> Result<(), String> {
    for item in items {
        let target = &item.target;
        let dir = target.real.parent().unwrap_or(Path::new("/"));
        if !dir.is_dir() {
            let guest_dir = Path::new(&target.guest)
                .parent()
                .map_or_else(|| "/".to_owned(), |d| d.display().to_string());
            return Err(format!(
                "cannot install {}: the directory {guest_dir} does not exist",
                target.guest
            ));
        }
        match std::fs::symlink_metadata(&target.real) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot install {}: {e}", target.guest)),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "refusing to replace {}: it is a symbolic link",
                    target.guest
                ))
            }
            Ok(meta) if !meta.is_file() => {
                return Err(format!(
                    "refusing to replace {}: it is not a regular file",
                    target.guest
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Why an install failed.
#[derive(Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Nothing was replaced.
    Untouched(String),
    /// The files named were replaced before the failure.
    Partial {
        replaced: Vec<String>,
        error: String,
    },
}

impl InstallError {
    pub fn message(&self) -> String {
        match self {
            InstallError::Untouched(error) => {
                format!("installing the update failed, nothing was changed: {error}")
            }
            InstallError::Partial { replaced, error } => format!(
                "installing the update failed after replacing {}: {error}",
                replaced.join(" ")
            ),
        }
    }
}

/// Installs `items` (checked with [`check`] first).
pub fn install(items: &[Item]) -> Result<(), InstallError> {
    install_with(items, || Ok(()))
}

/// [`install`], calling `before_renames` once every temporary is written
/// (tests inject a failure there).
pub(crate) fn install_with(
    items: &[Item],
    before_renames: impl FnOnce() -> io::Result<()>,
) -> Result<(), InstallError> {
    check(items).map_err(InstallError::Untouched)?;
    let mut staged = Vec::with_capacity(items.len());
    for item in items {
        let temporary = Temporary::write(item).map_err(|e| {
            InstallError::Untouched(format!("writing the new {}: {e}", item.target.guest))
        })?;
        staged.push(temporary);
    }
    before_renames().map_err(|e| InstallError::Untouched(e.to_string()))?;

    let mut replaced = Vec::new();
    for (item, temporary) in items.iter().zip(&mut staged) {
        if let Err(e) = std::fs::rename(&temporary.path, &item.target.real) {
            let error = format!("renaming the new {} into place: {e}", item.target.guest);
            return Err(if replaced.is_empty() {
                InstallError::Untouched(error)
            } else {
                InstallError::Partial { replaced, error }
            });
        }
        temporary.renamed = true;
        replaced.push(item.target.guest.clone());
        tracing::info!(
            "agentupdate: installed {} (mode {:04o})",
            item.target.guest,
            item.mode
        );
    }
    let mut dirs: Vec<&Path> = items
        .iter()
        .filter_map(|i| i.target.real.parent())
        .collect();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = File::open(dir).and_then(|d| fsync(d.as_fd()).map_err(io::Error::from)) {
            tracing::warn!(
                "agentupdate: files are installed, but syncing {} failed: {e}",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Distinguishes the temporaries of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A new file next to its target; removed when dropped unless renamed.
struct Temporary {
    path: PathBuf,
    renamed: bool,
}

impl Temporary {
    fn write(item: &Item) -> io::Result<Temporary> {
        let target = &item.target.real;
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (file, path) = create_beside(dir, &name)?;
        // From here on, the file is removed if anything fails.
        let temporary = Temporary {
            path,
            renamed: false,
        };
        let mut source = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(&item.source)?;
        let mut file = file;
        io::copy(&mut source, &mut file)?;
        if geteuid().is_root() {
            fchown(file.as_fd(), Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))?;
        }
        fchmod(file.as_fd(), Mode::from_bits_truncate(item.mode))?;
        fsync(file.as_fd())?;
        Ok(temporary)
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `.<name>.nova-agent-update.<pid>.<n>` in `dir`, created exclusively, mode
/// 0600. Hidden and not ending in `.so`, so the agent never loads it.
fn create_beside(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.nova-agent-update.{pid}.{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            // Left by an earlier process that had our pid and crashed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}
