//! Files under the configured root, and replacing a file atomically the way
//! shadow-utils and dpkg do: write a temporary file beside it, give it the old
//! file's mode, owner and SELinux label, sync it, rename it over.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{fchown, fsync, Gid, Uid};

use crate::label;

/// `path` (absolute, e.g. "/etc/shadow") resolved under `root`:
/// `root.join(path without leading /)`.
///
/// Refuses (`InvalidInput`, naming the path) a relative path, a `..`
/// component, an empty path and a NUL byte. `.` components and repeated
/// slashes are normalised away. It does not look at the filesystem (symlink
/// checks are the caller's job).
pub fn under_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let refuse = |why: &str| invalid(format!("refusing path {path:?}: {why}"));
    if path.is_empty() {
        return Err(refuse("it is empty"));
    }
    if path.contains('\0') {
        return Err(refuse("it contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(refuse("it is not absolute"));
    }
    let mut resolved = root.to_path_buf();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(refuse("it contains a `..` component")),
            name => resolved.push(name),
        }
    }
    Ok(resolved)
}

/// Replaces `target` atomically, the way shadow-utils and dpkg do:
///
/// 1. creates `.<file name>.nova-agent.<pid>.<n>` in the same directory
///    (exclusively, not following symlinks, mode 0600);
/// 2. calls `fill` to write the new content into it;
/// 3. gives it the owner, group, mode (setuid bits included) and SELinux label
///    of the existing `target`; when `target` does not exist, `mode_if_new`
///    and the process's owner and group;
/// 4. syncs it, renames it over `target` and syncs the directory.
///
/// On any error before the rename the temporary file is removed and `target`
/// is left as it was. A `target` that is a symlink (replacing it would replace
/// the link, not the file it points to) or not a regular file is refused with
/// `InvalidInput`.
pub fn replace_file(
    target: &Path,
    mode_if_new: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, name) = split(target)?;
    let existing = Existing::read(target)?;
    let mut temporary = Temporary::create(dir, name)?;
    let path = temporary.path.clone();
    let step = |what: &'static str| {
        let path = path.display().to_string();
        move |e: io::Error| context(e, format!("{what} {path}"))
    };

    fill(&mut temporary.file).map_err(step("writing the new content to"))?;
    let file = &temporary.file;
    match &existing {
        Some(old) => {
            let new = file.metadata().map_err(step("reading the metadata of"))?;
            // Before fchmod: chown clears the setuid and setgid bits.
            if (new.uid(), new.gid()) != (old.uid, old.gid) {
                fchown(
                    file.as_fd(),
                    Some(Uid::from_raw(old.uid)),
                    Some(Gid::from_raw(old.gid)),
                )
                .map_err(io::Error::from)
                .map_err(step("giving the old owner and group to"))?;
            }
            set_mode(file, old.mode).map_err(step("giving the old mode to"))?;
            if let Some(selinux) = &old.label {
                label::set(file, selinux).map_err(step("giving the old SELinux label to"))?;
            }
        }
        None => set_mode(file, mode_if_new).map_err(step("setting the mode of"))?,
    }
    fsync(file.as_fd())
        .map_err(io::Error::from)
        .map_err(step("syncing"))?;
    std::fs::rename(&temporary.path, target).map_err(|e| {
        context(
            e,
            format!(
                "renaming {} over {}",
                temporary.path.display(),
                target.display()
            ),
        )
    })?;
    temporary.renamed = true;

    let directory = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(directory)
        .and_then(|d| fsync(d.as_fd()).map_err(io::Error::from))
        .map_err(|e| {
            context(
                e,
                format!(
                    "{} is replaced, but syncing its directory failed",
                    target.display()
                ),
            )
        })
}

/// `replace_file` with `bytes` as the content.
pub fn write_file(target: &Path, mode_if_new: u32, bytes: &[u8]) -> io::Result<()> {
    replace_file(target, mode_if_new, |file| file.write_all(bytes))
}

/// What the replacement inherits from the file it replaces.
struct Existing {
    uid: u32,
    gid: u32,
    mode: u32,
    label: Option<Vec<u8>>,
}

impl Existing {
    /// The target's attributes, or `None` when it does not exist. Metadata and
    /// label come from one open descriptor, so they describe the same file.
    fn read(target: &Path) -> io::Result<Option<Existing>> {
        let opened = OpenOptions::new()
            .read(true)
            // Non-blocking so that a FIFO put in its place cannot hang us.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(target);
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(invalid(format!(
                    "refusing to replace {}: it is a symbolic link",
                    target.display()
                )))
            }
            Err(e) => return Err(context(e, format!("opening {}", target.display()))),
        };
        let metadata = file
            .metadata()
            .map_err(|e| context(e, format!("reading the metadata of {}", target.display())))?;
        if !metadata.is_file() {
            return Err(invalid(format!(
                "refusing to replace {}: it is not a regular file",
                target.display()
            )));
        }
        let label = label::get(&file).map_err(|e| {
            context(
                e,
                format!("reading the SELinux label of {}", target.display()),
            )
        })?;
        Ok(Some(Existing {
            uid: metadata.uid(),
            gid: metadata.gid(),
            mode: metadata.mode() & 0o7777,
            label,
        }))
    }
}

/// The temporary file; removed when dropped unless it has been renamed.
struct Temporary {
    file: File,
    path: PathBuf,
    renamed: bool,
}

/// Distinguishes the temporary files of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Temporary {
    fn create(dir: &Path, name: &OsStr) -> io::Result<Temporary> {
        let pid = std::process::id();
        let mut attempts = 0;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut file_name = OsStr::new(".").to_os_string();
            file_name.push(name);
            file_name.push(format!(".nova-agent.{pid}.{n}"));
            let path = dir.join(file_name);
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path);
            match created {
                Ok(file) => {
                    return Ok(Temporary {
                        file,
                        path,
                        renamed: false,
                    })
                }
                // Left by an earlier process that had our pid and crashed.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(context(e, format!("creating {}", path.display()))),
            }
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The directory and file name of `target`, which must name a file.
fn split(target: &Path) -> io::Result<(&Path, &OsStr)> {
    match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(invalid(format!(
            "refusing to replace {}: it does not name a file",
            target.display()
        ))),
    }
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate((mode & 0o7777) as libc::mode_t);
    Ok(fchmod(file.as_fd(), mode)?)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `e` with `what` in front, keeping its kind.
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
