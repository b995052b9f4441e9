//! Opening the character device: a virtio-serial port (found through sysfs
//! when no udev made its `/dev/virtio-ports/` link) or a serial line set raw.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::termios::{
    cfmakeraw, cfsetspeed, tcflush, tcgetattr, tcsetattr, BaudRate, FlushArg, SetArg,
    SpecialCharacterIndices,
};

use crate::config::Method;

/// Where the kernel and udev show virtio ports; tests point them elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    /// udev's links, by port name.
    pub(crate) ports: PathBuf,
    /// One directory per port (`vport<N>p<M>`), each with a `name` file.
    pub(crate) sys: PathBuf,
    /// Where the `vport<N>p<M>` nodes are.
    pub(crate) dev: PathBuf,
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs {
            ports: PathBuf::from("/dev/virtio-ports"),
            sys: PathBuf::from("/sys/class/virtio-ports"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// Why the device could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Nothing is there (yet): wait for it quietly.
    Absent,
    /// Something is there but cannot be used, with the reason.
    Failed(String),
}

/// Opens the port at `path` non-blocking, without making it the agent's
/// controlling terminal; a serial line is also set raw. Returns the
/// descriptor and the path it was opened at.
pub(crate) fn open_port(
    path: &Path,
    method: Method,
    dirs: &Dirs,
) -> Result<(OwnedFd, PathBuf), OpenError> {
    let (fd, opened) = match open_device(path) {
        Ok(fd) => (fd, path.to_path_buf()),
        Err(Errno::ENOENT) if path.parent() == Some(&dirs.ports) => {
            let name = path.file_name().unwrap_or_default();
            let node = find_vport(dirs, name).ok_or(OpenError::Absent)?;
            match open_device(&node) {
                Ok(fd) => (fd, node),
                Err(Errno::ENOENT) => return Err(OpenError::Absent),
                Err(e) => return Err(failed(&node, e)),
            }
        }
        Err(Errno::ENOENT) => return Err(OpenError::Absent),
        Err(e) => return Err(failed(path, e)),
    };
    if method == Method::IsaSerial {
        set_raw(&fd).map_err(|e| {
            OpenError::Failed(format!(
                "cannot set up serial line {}: {}",
                opened.display(),
                e.desc()
            ))
        })?;
    }
    Ok((fd, opened))
}

fn open_device(path: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    loop {
        match open(path, flags, Mode::empty()) {
            Err(Errno::EINTR) => {}
            result => return result,
        }
    }
}

fn failed(path: &Path, e: Errno) -> OpenError {
    OpenError::Failed(format!("cannot open {}: {}", path.display(), e.desc()))
}

/// The `/dev` node of the virtio port called `name`, as sysfs lists it:
/// what udev's `virtio-ports/$attr{name}` link would point at.
fn find_vport(dirs: &Dirs, name: &OsStr) -> Option<PathBuf> {
    let mut ports: Vec<_> = fs::read_dir(&dirs.sys)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|port| port.as_encoded_bytes().starts_with(b"vport"))
        .collect();
    ports.sort();
    ports.into_iter().find_map(|port| {
        let text = fs::read(dirs.sys.join(&port).join("name")).ok()?;
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        (text == name.as_encoded_bytes()).then(|| dirs.dev.join(&port))
    })
}

/// As qemu-ga sets a serial line: raw bytes (no echo, no CR/LF mapping, no
/// flow control), 38400 baud, reads that return as soon as a byte is there,
/// and whatever is queued flushed ("it's garbage at this point").
fn set_raw(fd: &OwnedFd) -> nix::Result<()> {
    let mut termios = tcgetattr(fd)?;
    cfmakeraw(&mut termios);
    cfsetspeed(&mut termios, BaudRate::B38400)?;
    termios.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    termios.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcflush(fd, FlushArg::TCIFLUSH)?;
    tcsetattr(fd, SetArg::TCSANOW, &termios)
}

#[cfg(test)]
mod tests {
    use nix::sys::termios::{LocalFlags, OutputFlags};

    use super::*;
    use crate::tests::Pty;

    fn dirs(root: &Path) -> Dirs {
        let dirs = Dirs {
            ports: root.join("dev/virtio-ports"),
            sys: root.join("sys/class/virtio-ports"),
            dev: root.join("dev"),
        };
        fs::create_dir_all(&dirs.ports).unwrap();
        fs::create_dir_all(&dirs.sys).unwrap();
        dirs
    }

    fn add_port(dirs: &Dirs, vport: &str, name: &str, node: Option<&Path>) {
        fs::create_dir(dirs.sys.join(vport)).unwrap();
        fs::write(dirs.sys.join(vport).join("name"), format!("{name}\n")).unwrap();
        if let Some(node) = node {
            std::os::unix::fs::symlink(node, dirs.dev.join(vport)).unwrap();
        }
    }

    #[test]
    fn a_missing_port_is_absent_not_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let path = dirs.ports.join("org.qemu.guest_agent.0");
        let result = open_port(&path, Method::VirtioSerial, &dirs);
        assert_eq!(result.err(), Some(OpenError::Absent));
        // A port of another name does not stand in for it.
        add_port(&dirs, "vport0p1", "org.qemu.guest_agent.1", None);
        let result = open_port(&path, Method::VirtioSerial, &dirs);
        assert_eq!(result.err(), Some(OpenError::Absent));
        // Listed in sysfs but without its node yet.
        add_port(&dirs, "vport1p1", "org.qemu.guest_agent.0", None);
        let result = open_port(&path, Method::VirtioSerial, &dirs);
        assert_eq!(result.err(), Some(OpenError::Absent));
    }

    #[test]
    fn without_udev_the_port_is_found_by_its_sysfs_name() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let pty = Pty::new();
        add_port(&dirs, "vport0p1", "com.example.other", None);
        add_port(
            &dirs,
            "vport2p1",
            "org.qemu.guest_agent.0",
            Some(&pty.slave),
        );
        let path = dirs.ports.join("org.qemu.guest_agent.0");
        let (_fd, opened) = open_port(&path, Method::VirtioSerial, &dirs).unwrap();
        assert_eq!(opened, dirs.dev.join("vport2p1"));
        // Outside the links' directory a missing path is just absent.
        let elsewhere = root.path().join("org.qemu.guest_agent.0");
        let result = open_port(&elsewhere, Method::VirtioSerial, &dirs);
        assert_eq!(result.err(), Some(OpenError::Absent));
    }

    #[test]
    fn something_unusable_is_a_failure_with_the_reason() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let result = open_port(root.path(), Method::VirtioSerial, &dirs);
        let expected = format!("cannot open {}: Is a directory", root.path().display());
        assert_eq!(result.err(), Some(OpenError::Failed(expected)));
        let file = root.path().join("plain");
        fs::write(&file, "").unwrap();
        let Err(OpenError::Failed(message)) = open_port(&file, Method::IsaSerial, &dirs) else {
            panic!("a plain file is no serial line");
        };
        assert!(
            message.starts_with("cannot set up serial line"),
            "{message}"
        );
    }

    #[test]
    fn a_serial_line_is_set_raw_at_38400_baud() {
        let pty = Pty::new();
        let dirs = Dirs::default();
        let (fd, _) = open_port(&pty.slave, Method::IsaSerial, &dirs).unwrap();
        let termios = tcgetattr(&fd).unwrap();
        assert!(!termios.local_flags.contains(LocalFlags::ECHO));
        assert!(!termios.local_flags.contains(LocalFlags::ICANON));
        assert!(!termios.output_flags.contains(OutputFlags::OPOST));
        assert_eq!(nix::sys::termios::cfgetospeed(&termios), BaudRate::B38400);
        assert_eq!(
            termios.control_chars[SpecialCharacterIndices::VMIN as usize],
            1
        );
    }
}
