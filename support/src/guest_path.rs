//! Paths the host names, resolved under the agent's root as a process
//! chrooted there would resolve them, and never outside it.
//!
//! The walk starts from a descriptor of the root (an absolute path and a
//! relative one alike) and takes one component at a time, each opened with
//! `O_PATH | O_NOFOLLOW` relative to the descriptor of the directory before
//! it, so a rename elsewhere cannot move the walk. A symbolic link is read
//! through its own descriptor and its target walked in its place, an
//! absolute target from the root again (at most 40 links, as the kernel
//! allows). `..` returns to the directory walked before it; a `..` at the
//! root itself, in the path or in a link's target, is refused: nothing the
//! host names reaches outside the root. The caller opens the last component
//! by name beside its directory's descriptor, with `O_NOFOLLOW`.
//!
//! Used by the `qga-file` and `qga-users` plugins.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// The kernel's limit on links followed in one lookup (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Why a path cannot be resolved or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// What the system said, shown as `strerror` shows it.
    Os(Errno),
    /// A `..` above the root.
    Escape,
}

/// `errno` as the C library's `strerror` words it (nix's own texts differ:
/// "Bad file number" for EBADF).
pub fn strerror(errno: Errno) -> String {
    let code = errno as i32;
    let text = std::io::Error::from_raw_os_error(code).to_string();
    match text.strip_suffix(&format!(" (os error {code})")) {
        Some(text) => text.to_owned(),
        None => text,
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Os(errno) => f.write_str(&strerror(*errno)),
            Refusal::Escape => f.write_str("the path leads out of the agent's root"),
        }
    }
}

impl From<Errno> for Refusal {
    fn from(errno: Errno) -> Refusal {
        Refusal::Os(errno)
    }
}

/// The agent's root, held open.
pub struct GuestRoot {
    fd: OwnedFd,
}

/// A resolved path: the directory that holds its last component, and that
/// component's name (`None` when the path names a directory by `/`, `.` or
/// `..`, or names the root).
pub struct Resolved {
    pub dir: OwnedFd,
    pub name: Option<OsString>,
    /// The last component was a link, followed to `name`.
    pub via_link: bool,
}

impl GuestRoot {
    pub fn open(root: &Path) -> Result<GuestRoot, Refusal> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        Ok(GuestRoot {
            fd: open(root, flags, Mode::empty())?,
        })
    }

    /// Resolves every component of `path` but the last, which is left to
    /// the caller; with `follow_last`, a last component that is a link is
    /// followed too (the target's last component is then the one left).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Resolved, Refusal> {
        // Innermost last; empty means the root itself.
        let mut walked: Vec<OwnedFd> = Vec::new();
        let mut pending: Vec<OsString> = components(path.as_bytes());
        pending.reverse(); // popped from the end
        let mut links = 0;
        let mut via_link = false;
        while let Some(name) = pending.pop() {
            if name == ".." {
                walked.pop().ok_or(Refusal::Escape)?;
                continue;
            }
            let last = pending.is_empty();
            let dir = walked.last().map_or(self.fd.as_fd(), AsFd::as_fd);
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match openat(dir, name.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if last => return self.found(walked, Some(name), via_link),
                Err(errno) => return Err(errno.into()),
            };
            let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = readlinkat(&fd, "")?;
                if target.as_bytes().starts_with(b"/") {
                    walked.clear();
                }
                let mut more = components(target.as_bytes());
                more.reverse();
                pending.extend(more);
                // Whatever the target's last component, the path's last
                // one was a link.
                via_link |= last;
            } else if last {
                return self.found(walked, Some(name), via_link);
            } else if kind == SFlag::S_IFDIR {
                walked.push(fd);
            } else {
                return Err(Errno::ENOTDIR.into());
            }
        }
        self.found(walked, None, via_link)
    }

    fn found(
        &self,
        mut walked: Vec<OwnedFd>,
        name: Option<OsString>,
        via_link: bool,
    ) -> Result<Resolved, Refusal> {
        let dir = match walked.pop() {
            Some(fd) => fd,
            None => self
                .fd
                .try_clone()
                .map_err(|e| Refusal::Os(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?,
        };
        Ok(Resolved {
            dir,
            name,
            via_link,
        })
    }
}

impl Resolved {
    /// Opens what the path names with `flags` (plus `O_NOFOLLOW` and
    /// `O_CLOEXEC`); `mode` is for a file `O_CREAT` makes.
    pub fn open(&self, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match &self.name {
            Some(name) => openat(&self.dir, name.as_os_str(), flags, mode),
            None => openat(&self.dir, ".", flags, mode),
        }
    }
}

/// The names in a path, `.` and empty ones left out.
fn components(path: &[u8]) -> Vec<OsString> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| std::ffi::OsStr::from_bytes(c).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn sandbox() -> (tempfile::TempDir, tempfile::TempDir, GuestRoot) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(root.join("home/alice")).unwrap();
        std::fs::write(root.join("etc/hostname"), "guest").unwrap();
        std::fs::write(root.join("secret"), "guest secret").unwrap();
        symlink("/etc", root.join("home/alice/abs")).unwrap();
        symlink("../../etc/hostname", root.join("home/alice/rel")).unwrap();
        symlink("../../../../../../secret", root.join("home/alice/climb")).unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let guest = GuestRoot::open(root).unwrap();
        (outside, dir, guest)
    }

    fn read(guest: &GuestRoot, path: &str) -> Result<String, Refusal> {
        let resolved = guest.resolve(path, true)?;
        let fd = resolved.open(OFlag::O_RDONLY, Mode::empty())?;
        Ok(std::io::read_to_string(std::fs::File::from(fd)).unwrap())
    }

    #[test]
    fn paths_resolve_inside_the_root_links_included() {
        let (_outside, _dir, guest) = sandbox();
        for path in [
            "/etc/hostname",
            "etc/hostname",
            "//etc/./hostname",
            "/home/alice/../../etc/hostname",
            "/home/alice/abs/hostname",
            "/home/alice/rel",
            "home/alice/abs/ssh/../hostname",
        ] {
            assert_eq!(read(&guest, path), Ok("guest".to_owned()), "{path}");
        }
    }

    #[test]
    fn nothing_climbs_out_of_the_root() {
        let (_outside, _dir, guest) = sandbox();
        for path in ["..", "/../secret", "etc/../../secret", "/home/alice/climb"] {
            assert_eq!(read(&guest, path).err(), Some(Refusal::Escape), "{path}");
        }
        // An absolute link to a host directory is re-rooted, so it names a
        // path inside the root, which does not exist there.
        assert_eq!(
            read(&guest, "/out/secret").err(),
            Some(Refusal::Os(Errno::ENOENT))
        );
        assert_eq!(read(&guest, "/secret"), Ok("guest secret".to_owned()));
    }

    #[test]
    fn the_last_component_is_left_to_the_caller() {
        let (_outside, dir, guest) = sandbox();
        let resolved = guest.resolve("/home/alice/new", false).unwrap();
        assert_eq!(resolved.name.as_deref(), Some("new".as_ref()));
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        drop(
            resolved
                .open(flags, Mode::from_bits_truncate(0o600))
                .unwrap(),
        );
        assert!(dir.path().join("home/alice/new").is_file());

        let link = guest.resolve("/home/alice/rel", false).unwrap();
        assert_eq!(link.name.as_deref(), Some("rel".as_ref()));
        assert_eq!(
            link.open(OFlag::O_RDONLY, Mode::empty()).err(),
            Some(Errno::ELOOP),
            "a link is never opened by name"
        );
        let followed = guest.resolve("/home/alice/rel", true).unwrap();
        assert!(followed.via_link);
        assert_eq!(followed.name.as_deref(), Some("hostname".as_ref()));
        symlink("abs/hostname", dir.path().join("home/alice/deep")).unwrap();
        let deep = guest.resolve("/home/alice/deep", true).unwrap();
        assert!(deep.via_link, "a link inside the target keeps it");
        assert!(
            !guest
                .resolve("/home/alice/abs/hostname", true)
                .unwrap()
                .via_link
        );
        assert!(guest.resolve("/", true).unwrap().name.is_none());
        assert!(guest.resolve("/etc/ssh/..", true).unwrap().name.is_none());
    }

    #[test]
    fn missing_directories_files_in_the_way_and_loops_are_errors() {
        let (_outside, _dir, guest) = sandbox();
        for (path, errno) in [
            ("/nowhere/file", Errno::ENOENT),
            ("/etc/hostname/x", Errno::ENOTDIR),
            ("/loop", Errno::ELOOP),
            ("/loop/x", Errno::ELOOP),
        ] {
            assert_eq!(
                guest.resolve(path, true).err(),
                Some(Refusal::Os(errno)),
                "{path}"
            );
        }
        assert_eq!(
            Refusal::Os(Errno::ENOENT).to_string(),
            "No such file or directory"
        );
        assert_eq!(strerror(Errno::EBADF), "Bad file descriptor");
    }
}
