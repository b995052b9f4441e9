//! Accounts, as `<root>/etc/passwd` lists them (not through NSS: the
//! agent acts on the root's files, which may not be the running system's).

use std::io::Read;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nova_agent_plugin_api::CommandError;

use nova_agent_support::guest_path::{GuestRoot, Refusal};

/// What the commands need of a `passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

/// `user`'s entry: the first line that names it, as getpwnam takes it.
pub(crate) fn lookup(root: &GuestRoot, user: &str) -> Result<Account, CommandError> {
    let fail = |why: &str| CommandError::failed(format!("failed to lookup user '{user}': {why}"));
    let unreadable = |why: Refusal| fail(&format!("cannot read /etc/passwd: {why}"));
    let fd = root
        .resolve("/etc/passwd", true)
        .map_err(unreadable)?
        .open(OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())
        .map_err(|errno| unreadable(Refusal::Os(errno)))?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
            unreadable(Refusal::Os(errno))
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text
        .lines()
        .find(|line| !user.is_empty() && line.split(':').next() == Some(user))
        .ok_or_else(|| fail("no such user in /etc/passwd"))?;
    parse(line).ok_or_else(|| fail("its entry in /etc/passwd is malformed"))
}

/// `name:password:uid:gid:gecos:home:shell`.
fn parse(line: &str) -> Option<Account> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    Some(Account {
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: fields[5].to_owned(),
    })
}
