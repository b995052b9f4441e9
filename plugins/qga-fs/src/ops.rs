//! The three filesystem ioctls qemu-ga issues on a mount point (FIFREEZE,
//! FITHAW, FITRIM), behind a trait: the kernel's with `apply = true`, a
//! logging stand-in with `apply = false`, a scripted one in tests.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nova_agent_support::sync::lock;

use crate::mounts::Mount;

/// Why an ioctl on a mount did not happen or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The mount point could not be opened.
    Open(Errno),
    /// The ioctl failed.
    Ioctl(Errno),
}

/// The C library's text for `errno`, as qemu-ga writes it in its errors:
/// glibc's `strerror`, without Rust's " (os error N)".
pub(crate) fn strerror(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// What FITRIM reports: the bytes discarded and the minimum extent it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trimmed {
    pub(crate) bytes: u64,
    pub(crate) minimum: u64,
}

/// The ioctls, one mount at a time. Called under the freezer's lock.
pub(crate) trait Filesystems: Send + Sync + 'static {
    /// FIFREEZE on the mount point.
    fn freeze(&self, mount: &Mount) -> Result<(), Failure>;
    /// FITHAW on the mount point until it fails (a filesystem frozen N
    /// times needs N thaws); how many succeeded.
    fn thaw(&self, mount: &Mount) -> Result<u32, Failure>;
    /// FITRIM of the whole filesystem, discarding free extents of at least
    /// `minimum` bytes.
    fn trim(&self, mount: &Mount, minimum: u64) -> Result<Trimmed, Failure>;
}

/// The real thing: each call opens the mount point read-only, as qemu-ga
/// does.
pub(crate) struct Kernel;

impl Kernel {
    fn open(dir: &Path) -> Result<std::os::fd::OwnedFd, Failure> {
        open(dir, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(Failure::Open)
    }
}

impl Filesystems for Kernel {
    fn freeze(&self, mount: &Mount) -> Result<(), Failure> {
        let fd = Kernel::open(&mount.dir)?;
        ioctl(fd.as_fd(), Request::Freeze).map_err(Failure::Ioctl)
    }

    fn thaw(&self, mount: &Mount) -> Result<u32, Failure> {
        let fd = Kernel::open(&mount.dir)?;
        let mut thawed = 0;
        while ioctl(fd.as_fd(), Request::Thaw).is_ok() {
            thawed += 1;
        }
        Ok(thawed)
    }

    fn trim(&self, mount: &Mount, minimum: u64) -> Result<Trimmed, Failure> {
        let fd = Kernel::open(&mount.dir)?;
        let mut range = FstrimRange {
            start: 0,
            len: u64::MAX,
            minlen: minimum,
        };
        ioctl(fd.as_fd(), Request::Trim(&mut range)).map_err(Failure::Ioctl)?;
        Ok(Trimmed {
            bytes: range.len,
            minimum: range.minlen,
        })
    }
}

/// `struct fstrim_range` of linux/fs.h.
#[repr(C)]
struct FstrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

enum Request<'a> {
    Freeze,
    Thaw,
    Trim(&'a mut FstrimRange),
}

nix::ioctl_readwrite!(fifreeze, b'X', 119, libc::c_int);
nix::ioctl_readwrite!(fithaw, b'X', 120, libc::c_int);
nix::ioctl_readwrite!(fitrim, b'X', 121, FstrimRange);

/// The crate's only unsafe code: the ioctl itself.
fn ioctl(fd: BorrowedFd<'_>, request: Request<'_>) -> Result<(), Errno> {
    // FIFREEZE and FITHAW are declared with an int argument the kernel never
    // reads; FITRIM reads and rewrites the range.
    let mut unused: libc::c_int = 0;
    let fd = fd.as_raw_fd();
    // SAFETY: `fd` is borrowed, so open for the whole call, and each
    // pointer is to a live value of the type its request code declares.
    let result = unsafe {
        match request {
            Request::Freeze => fifreeze(fd, &mut unused),
            Request::Thaw => fithaw(fd, &mut unused),
            Request::Trim(range) => fitrim(fd, range),
        }
    };
    result.map(drop)
}

/// `apply = false`: logs each ioctl instead of issuing it, and answers as
/// the kernel would. A filesystem (one device, whatever its mount points) is
/// frozen once: freezing it again is EBUSY, as for a bind mount, and a thaw
/// succeeds once per freeze. Nothing is opened, so no mount point needs to
/// exist.
#[derive(Default)]
pub(crate) struct DryRun {
    frozen: Mutex<BTreeSet<(u32, u32)>>,
}

impl Filesystems for DryRun {
    fn freeze(&self, mount: &Mount) -> Result<(), Failure> {
        if !lock(&self.frozen).insert((mount.major, mount.minor)) {
            return Err(Failure::Ioctl(Errno::EBUSY));
        }
        tracing::info!("not issuing FIFREEZE on {} (apply = false)", mount.shown());
        Ok(())
    }

    fn thaw(&self, mount: &Mount) -> Result<u32, Failure> {
        if !lock(&self.frozen).remove(&(mount.major, mount.minor)) {
            return Ok(0);
        }
        tracing::info!("not issuing FITHAW on {} (apply = false)", mount.shown());
        Ok(1)
    }

    fn trim(&self, mount: &Mount, minimum: u64) -> Result<Trimmed, Failure> {
        tracing::info!(
            "not issuing FITRIM on {} with minimum {minimum} (apply = false)",
            mount.shown()
        );
        Ok(Trimmed { bytes: 0, minimum })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn mount(dir: &str, major: u32, minor: u32) -> Mount {
        Mount {
            dir: PathBuf::from(dir),
            fstype: "ext4".into(),
            major,
            minor,
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn the_request_codes_are_those_of_linux_fs_h() {
        let int = std::mem::size_of::<libc::c_int>();
        let range = std::mem::size_of::<FstrimRange>();
        assert_eq!(nix::request_code_readwrite!(b'X', 119, int), 0xC004_5877);
        assert_eq!(nix::request_code_readwrite!(b'X', 120, int), 0xC004_5878);
        assert_eq!(nix::request_code_readwrite!(b'X', 121, range), 0xC018_5879);
    }

    #[test]
    fn errors_read_as_the_c_library_writes_them() {
        assert_eq!(strerror(Errno::ELOOP), "Too many levels of symbolic links");
        assert_eq!(strerror(Errno::EOPNOTSUPP), "Operation not supported");
    }

    #[test]
    fn the_dry_run_freezes_a_filesystem_once_and_thaws_it_once() {
        let ops = DryRun::default();
        let (root, bind, other) = (mount("/", 8, 1), mount("/bind", 8, 1), mount("/b", 8, 2));
        assert_eq!(ops.freeze(&root), Ok(()));
        assert_eq!(ops.freeze(&bind), Err(Failure::Ioctl(Errno::EBUSY)));
        assert_eq!(ops.freeze(&other), Ok(()));
        assert_eq!(ops.thaw(&bind), Ok(1));
        assert_eq!(ops.thaw(&root), Ok(0));
        assert_eq!(ops.thaw(&other), Ok(1));
        assert_eq!(ops.thaw(&other), Ok(0));
    }

    #[test]
    fn the_dry_run_logs_what_it_would_issue_and_trims_nothing() {
        let ops = DryRun::default();
        let log = nova_agent_support::testing::captured_log(|| {
            ops.freeze(&mount("/srv", 8, 1)).unwrap();
            ops.thaw(&mount("/srv", 8, 1)).unwrap();
            let trimmed = ops.trim(&mount("/srv", 8, 1), 4096).unwrap();
            assert_eq!(
                trimmed,
                Trimmed {
                    bytes: 0,
                    minimum: 4096
                }
            );
        });
        assert!(
            log.contains("not issuing FIFREEZE on /srv (apply = false)"),
            "{log}"
        );
        assert!(
            log.contains("not issuing FITHAW on /srv (apply = false)"),
            "{log}"
        );
        assert!(
            log.contains("not issuing FITRIM on /srv with minimum 4096"),
            "{log}"
        );
    }

    #[test]
    fn the_kernel_reports_a_mount_point_it_cannot_open() {
        // Only the open is reached: the directory does not exist.
        let gone = mount("/nonexistent/qga-fs-test", 8, 1);
        assert_eq!(Kernel.thaw(&gone), Err(Failure::Open(Errno::ENOENT)));
    }
}
