//! QGA over a pty, as over a virtio-serial port: the test holds the master
//! (the host's side, as QEMU holds the port's chardev) in raw mode, and the
//! agent opens the slave with `method = "virtio-serial"` (or
//! `"isa-serial"`). Closing the master is the host going away: the slave
//! then reads 0 and polls POLLHUP for good, as a virtio port does with no
//! host attached. A pty cannot be attached again; a test that needs a later
//! host points a symlink at a second pty (the `isa-serial` method opens the
//! line afresh after a hang-up) or uses `unix-listen`.
//!
//! Also here: the CPU time a process has used, to show an idle agent stays
//! idle.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::qga::Reply;
use crate::{plugin, Sandbox, TIMEOUT};

/// The plugins a QGA channel over a pty needs: the exchange, the parser and
/// the basic commands.
pub const PTY_PLUGINS: [&str; 3] = ["virtio-serial", "qga", "qga-core"];

/// The host's side of a pty; the agent opens [`PtyHost::slave`].
pub struct PtyHost {
    master: Option<File>,
    /// The slave's path (`/dev/pts/N`).
    pub slave: PathBuf,
    /// Bytes read past the last line returned.
    pending: Vec<u8>,
}

impl PtyHost {
    /// A new pty in raw mode: bytes pass unchanged both ways.
    pub fn open() -> PtyHost {
        // SAFETY: posix_openpt takes flags only and returns a new descriptor
        // or -1; we own it from here.
        let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a valid descriptor nobody else owns.
        let master = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = master.as_raw_fd();
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: raw is an open pty master for the calls below; ptsname_r
        // writes at most name.len() bytes, NUL included, into name; the
        // termios struct is plain data that tcgetattr fills before use.
        unsafe {
            assert_eq!(libc::grantpt(raw), 0, "grantpt");
            assert_eq!(libc::unlockpt(raw), 0, "unlockpt");
            assert_eq!(libc::ptsname_r(raw, name.as_mut_ptr(), name.len()), 0);
            let mut termios: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(raw, &mut termios), 0, "tcgetattr");
            libc::cfmakeraw(&mut termios);
            assert_eq!(libc::tcsetattr(raw, libc::TCSANOW, &termios), 0);
        }
        // SAFETY: ptsname_r succeeded, so name holds a NUL-terminated string.
        let slave = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        PtyHost {
            master: Some(File::from(master)),
            slave: PathBuf::from(slave.to_str().expect("a pty's name is ASCII")),
            pending: Vec::new(),
        }
    }

    fn master(&self) -> &File {
        self.master.as_ref().expect("the host is attached")
    }

    pub fn send(&self, bytes: &[u8]) {
        self.master().write_all(bytes).expect("writing to the pty");
    }

    /// The next line the agent wrote, `\n` included; panics after
    /// [`TIMEOUT`] without one.
    pub fn read_line(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                return self.pending.drain(..=end).collect();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                self.readable(left),
                "no reply line from the agent; got {:?} so far",
                String::from_utf8_lossy(&self.pending)
            );
            let mut buf = [0u8; 4096];
            let n = self.master().read(&mut buf).expect("reading the pty");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// The next reply, checked against QGA's wire rules.
    pub fn reply(&mut self) -> Reply {
        let line = self.read_line();
        Reply::from_line(&line).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `text` and reads one reply.
    pub fn request(&mut self, text: &str) -> Reply {
        self.send(text.as_bytes());
        self.reply()
    }

    /// Whether the agent wrote anything (not yet read) within `wait`.
    pub fn has_output(&self, wait: Duration) -> bool {
        !self.pending.is_empty() || self.readable(wait)
    }

    fn readable(&self, wait: Duration) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.master().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let millis = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid array of one pollfd for the call's length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
        ready > 0
    }

    /// The host goes away: the master is closed, the slave hung up for good.
    pub fn detach(&mut self) {
        self.master = None;
    }
}

/// A sandbox with the built-in plugins, [`PTY_PLUGINS`] and a QGA channel on
/// `path` with `method` (`virtio-serial`, `isa-serial`, `unix-listen`).
pub fn pty_sandbox(path: &Path, method: &str) -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    for name in PTY_PLUGINS {
        sandbox.add_plugin(&plugin(name));
    }
    sandbox.write_config(&format!(
        "\n[[channel]]\nexchange = \"virtio-serial\"\nparser = \"qga\"\n\n\
         [plugins.virtio-serial]\npath = \"{}\"\nmethod = \"{method}\"\n",
        path.display()
    ));
    sandbox
}

/// Points the symlink `link` at `target`, replacing what it pointed at in
/// one step.
pub fn point(link: &Path, target: &Path) {
    let temp = link.with_extension("new");
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).unwrap();
    std::fs::rename(&temp, link).unwrap();
}

/// The CPU time (user and system) process `pid` has used so far, all
/// threads, at the clock tick's resolution.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name may hold spaces: the fields start after its ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("(comm)") + 2..]
        .split(' ')
        .collect();
    // utime and stime: fields 14 and 15 of the whole line.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}
