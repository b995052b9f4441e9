//! `guest-ssh-get-authorized-keys {username}`, `guest-ssh-add-authorized-keys
//! {username, keys, *reset}` and `guest-ssh-remove-authorized-keys
//! {username, keys}`, as qemu-ga 7.2's `commands-posix-ssh.c` does them, on
//! `<root><home>/.ssh/authorized_keys` of a user of `<root>/etc/passwd`.
//!
//! - A key may not start with `#` nor hold a newline ("invalid OpenSSH
//!   public key: '%s'"); the keys are checked before the user is looked up.
//! - get: the file's lines, stripped, without blank and `#` lines, the last
//!   line first (qemu-ga 7.2 builds the list by prepending).
//! - add: appends each key the file has no line equal to yet (an empty key
//!   adds nothing); `reset` replaces the whole file with the keys. remove:
//!   drops the lines equal to a key; with no file it does nothing.
//! - qemu-ga joins the lines with newlines and no final one, which leaves a
//!   blank line where an old file ended in one; here the old lines stay
//!   byte for byte and every line written ends in a newline.
//! - add creates a missing `~/.ssh`, mode 0700, owned by the user (an
//!   existing one is left as it is, as qemu-ga leaves it);
//!   `authorized_keys` is replaced atomically, then owned by the user, mode
//!   0600.
//! - Paths resolve inside the root (`guest_path`): the home and `~/.ssh` may
//!   be links within it. `~/.ssh` is then held open, and the file replaced
//!   through that descriptor (`/proc/self/fd/N/`), so a link swapped in
//!   meanwhile cannot redirect the write; `authorized_keys` itself may not
//!   be a link for add and remove.
//! - Ownership: when the agent does not run as root, `chown` to another user
//!   fails with EPERM; the file and directory then stay the agent's, with a
//!   warning, and the command succeeds (tests and development run so; in a
//!   guest the agent is root and a failed `chown` is an error).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, geteuid, Gid, Uid};
use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_support::files::replace_file;
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

use crate::passwd::{self, Account};
use nova_agent_support::guest_path::{strerror, GuestRoot, Refusal};

const FILE: &str = "authorized_keys";

pub(crate) struct Ssh {
    pub(crate) root: PathBuf,
}

/// One user's `~/.ssh` and `authorized_keys`, as the host names them.
struct Paths {
    ssh: String,
    keys: String,
}

impl Ssh {
    fn account(&self, username: &str) -> Result<(GuestRoot, Account, Paths), CommandError> {
        let root = GuestRoot::open(&self.root)
            .map_err(|e| failed(format!("cannot open the root {}: {e}", self.root.display())))?;
        let account = passwd::lookup(&root, username)?;
        let ssh = format!("{}/.ssh", account.home.trim_end_matches('/'));
        let keys = format!("{ssh}/{FILE}");
        Ok((root, account, Paths { ssh, keys }))
    }
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::failed(message)
}

fn check_keys(keys: &[String]) -> Result<(), CommandError> {
    match keys.iter().find(|k| k.starts_with('#') || k.contains('\n')) {
        Some(bad) => Err(failed(format!("invalid OpenSSH public key: '{bad}'"))),
        None => Ok(()),
    }
}

/// GLib's texts for a file that cannot be opened or read, in qemu-ga's.
fn open_failure(path: &str, why: impl std::fmt::Display) -> CommandError {
    failed(format!(
        "failed to read '{path}': Failed to open file \u{201c}{path}\u{201d}: {why}"
    ))
}

fn read_failure(path: &str, e: &std::io::Error) -> CommandError {
    let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
    failed(format!(
        "failed to read '{path}': Failed to read from file \u{201c}{path}\u{201d}: {}",
        strerror(errno)
    ))
}

fn read_all(fd: OwnedFd, path: &str) -> Result<Vec<u8>, CommandError> {
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| read_failure(path, &e))?;
    Ok(bytes)
}

/// `guest-ssh-get-authorized-keys`.
pub(crate) struct GetKeys(pub(crate) Arc<Ssh>);

impl Command for GetKeys {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let username = args.str("username")?;
        args.finish()?;
        let (root, _, paths) = self.0.account(&username)?;
        let fd = root
            .resolve(&paths.keys, true)
            .and_then(|file| Ok(file.open(OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?))
            .map_err(|why| open_failure(&paths.keys, why))?;
        let bytes = read_all(fd, &paths.keys)?;
        Ok(json!({ "keys": listed(&bytes) }))
    }
}

/// `guest-ssh-add-authorized-keys`.
pub(crate) struct AddKeys(pub(crate) Arc<Ssh>);

impl Command for AddKeys {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let username = args.str("username")?;
        let keys = args.str_list("keys")?;
        let reset = args.opt_bool("reset")?.unwrap_or(false);
        args.finish()?;
        check_keys(&keys)?;
        let (root, account, paths) = self.0.account(&username)?;
        let dir = ssh_dir(&root, &account, &paths)?;
        let old = match reset {
            true => None,
            false => read_in(&dir, &paths.keys)?,
        };
        write(&dir, &account, &paths, &with_keys(old.as_deref(), &keys))?;
        tracing::info!(
            "guest-ssh-add-authorized-keys: {} key(s) given for {username:?}{}",
            keys.len(),
            if reset { ", replacing the file" } else { "" }
        );
        Ok(json!({}))
    }
}

/// `guest-ssh-remove-authorized-keys`.
pub(crate) struct RemoveKeys(pub(crate) Arc<Ssh>);

impl Command for RemoveKeys {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let username = args.str("username")?;
        let keys = args.str_list("keys")?;
        args.finish()?;
        check_keys(&keys)?;
        let (root, account, paths) = self.0.account(&username)?;
        let dir = match root
            .resolve(&paths.ssh, true)
            .and_then(|ssh| Ok(ssh.open(OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?))
        {
            Ok(dir) => dir,
            Err(Refusal::Os(Errno::ENOENT | Errno::ENOTDIR)) => return Ok(json!({})),
            Err(why) => return Err(open_failure(&paths.keys, why)),
        };
        let Some(old) = read_in(&dir, &paths.keys)? else {
            return Ok(json!({}));
        };
        write(&dir, &account, &paths, &without_keys(&old, &keys))?;
        tracing::info!(
            "guest-ssh-remove-authorized-keys: {} key(s) given for {username:?}",
            keys.len()
        );
        Ok(json!({}))
    }
}

/// The user's `~/.ssh`, opened; made (0700, the user's) when missing.
fn ssh_dir(root: &GuestRoot, account: &Account, paths: &Paths) -> Result<OwnedFd, CommandError> {
    let mkdir_failure = |why: &dyn std::fmt::Display| {
        failed(format!("failed to create directory '{}': {why}", paths.ssh))
    };
    let ssh = root
        .resolve(&paths.ssh, true)
        .map_err(|why| mkdir_failure(&why))?;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    match ssh.open(flags, Mode::empty()) {
        Ok(dir) => return Ok(dir),
        Err(Errno::ENOENT | Errno::ENOTDIR) => {}
        Err(errno) => return Err(mkdir_failure(&strerror(errno))),
    }
    // As qemu-ga's mkdir would: a name that is there (a file, or a link to
    // nothing) is in the way.
    let made = match (&ssh.name, ssh.via_link) {
        (Some(name), false) => mkdirat(&ssh.dir, name.as_os_str(), Mode::from_bits_truncate(0o700)),
        _ => Err(Errno::EEXIST),
    };
    made.map_err(|errno| mkdir_failure(&strerror(errno)))?;
    let dir = ssh
        .open(flags, Mode::empty())
        .map_err(|errno| mkdir_failure(&strerror(errno)))?;
    give(&dir, account, &format!("directory '{}'", paths.ssh))?;
    fchmod(&dir, Mode::from_bits_truncate(0o700)).map_err(|errno| {
        failed(format!(
            "failed to set permissions of directory '{}': {}",
            paths.ssh,
            strerror(errno)
        ))
    })?;
    Ok(dir)
}

/// `authorized_keys` in `dir`, or `None` when there is none.
fn read_in(dir: &OwnedFd, path: &str) -> Result<Option<Vec<u8>>, CommandError> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match openat(dir, FILE, flags, Mode::empty()) {
        Ok(fd) => read_all(fd, path).map(Some),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(open_failure(path, strerror(errno))),
    }
}

/// Replaces `authorized_keys` in `dir` with `content`, then gives it to the
/// user with mode 0600.
fn write(
    dir: &OwnedFd,
    account: &Account,
    paths: &Paths,
    content: &[u8],
) -> Result<(), CommandError> {
    let held = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let target = Path::new(&held).join(FILE);
    replace_file(&target, 0o600, |file| file.write_all(content)).map_err(|e| {
        let why = e.to_string().replace(&held, &paths.ssh);
        failed(format!("failed to write to '{}': {why}", paths.keys))
    })?;
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = openat(dir, FILE, flags, Mode::empty()).map_err(|errno| {
        failed(format!(
            "failed to set ownership of '{}': {}",
            paths.keys,
            strerror(errno)
        ))
    })?;
    // The name must still be the file just written: one link, regular.
    let stat = fstat(&file).map_err(|errno| failed(strerror(errno)))?;
    let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    if !regular || stat.st_nlink != 1 {
        return Err(failed(format!(
            "failed to set ownership of '{}': it was replaced while being written",
            paths.keys
        )));
    }
    give(&file, account, &format!("'{}'", paths.keys))?;
    fchmod(&file, Mode::from_bits_truncate(0o600)).map_err(|errno| {
        failed(format!(
            "failed to set permissions of '{}': {}",
            paths.keys,
            strerror(errno)
        ))
    })
}

/// `chown` to the user (see the module doc for an agent that is not root).
fn give(fd: &OwnedFd, account: &Account, what: &str) -> Result<(), CommandError> {
    let stat = fstat(fd).map_err(|errno| failed(strerror(errno)))?;
    if (stat.st_uid, stat.st_gid) == (account.uid, account.gid) {
        return Ok(());
    }
    let owner = (
        Some(Uid::from_raw(account.uid)),
        Some(Gid::from_raw(account.gid)),
    );
    match fchown(fd, owner.0, owner.1) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) if !geteuid().is_root() => {
            tracing::warn!(
                "not running as root: {what} stays owned by uid {}, not {}",
                stat.st_uid,
                account.uid
            );
            Ok(())
        }
        Err(errno) => Err(failed(format!(
            "failed to set ownership of {what}: {}",
            strerror(errno)
        ))),
    }
}

/// What get answers: stripped lines (GLib's `g_strstrip`), no blank or
/// comment ones, last first.
fn listed(content: &[u8]) -> Vec<String> {
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let text = String::from_utf8_lossy(content);
    let mut keys: Vec<String> = text
        .split('\n')
        .map(|line| line.trim_matches(space))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    keys.reverse();
    keys
}

/// The lines of a file; a final newline ends the last line, it does not
/// start an empty one.
fn lines(content: &[u8]) -> Vec<&[u8]> {
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    match content.is_empty() {
        true => Vec::new(),
        false => content.split(|&b| b == b'\n').collect(),
    }
}

/// `old` (none: an empty file) with each key it has no line for appended.
fn with_keys(old: Option<&[u8]>, keys: &[String]) -> Vec<u8> {
    let old = old.unwrap_or_default();
    let mut present = lines(old);
    let mut content = old.to_vec();
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    for key in keys.iter().map(String::as_bytes) {
        if key.is_empty() || present.contains(&key) {
            continue;
        }
        content.extend_from_slice(key);
        content.push(b'\n');
        present.push(key);
    }
    content
}

/// `old` without the lines equal to a key.
fn without_keys(old: &[u8], keys: &[String]) -> Vec<u8> {
    old.split_inclusive(|&b| b == b'\n')
        .filter(|line| {
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            !keys.iter().any(|key| key.as_bytes() == text)
        })
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn get_lists_stripped_keys_last_first_as_qemu_ga_7_2() {
        let content = b"k1 a\n# c\n\n  k2 b  \nk3 c\x0b\r";
        assert_eq!(listed(content), ["k3 c", "k2 b", "k1 a"]);
        assert!(listed(b"").is_empty());
        assert!(listed(b"\n\n   # only comments\n").is_empty());
    }

    #[test]
    fn add_appends_only_missing_keys_and_ends_every_line() {
        assert_eq!(with_keys(None, &keys(&["k1", "k2", "k1"])), b"k1\nk2\n");
        assert_eq!(
            with_keys(Some(b"# c\nk1\n"), &keys(&["k2", "k1", ""])),
            b"# c\nk1\nk2\n"
        );
        assert_eq!(
            with_keys(Some(b"k1\r\nk2"), &keys(&["k2", "k1"])),
            b"k1\r\nk2\nk1\n",
            "lines match exactly, as in qemu-ga"
        );
        assert_eq!(with_keys(None, &[]), b"");
    }

    #[test]
    fn remove_drops_equal_lines_and_keeps_the_rest_byte_for_byte() {
        let old = b"k1\nk1\n# c\n  k2\nk3";
        assert_eq!(without_keys(old, &keys(&["k1", "k3"])), b"# c\n  k2\n");
        assert_eq!(without_keys(old, &keys(&["k2"])), old, "no strip");
        assert_eq!(without_keys(b"", &keys(&["k1"])), b"");
    }

    #[test]
    fn keys_starting_with_a_hash_or_holding_a_newline_are_refused() {
        assert!(check_keys(&keys(&["ssh-ed25519 AAAA a@b", "", "x # y"])).is_ok());
        for bad in ["#x", "a\nb"] {
            let error = check_keys(&keys(&["ok", bad])).unwrap_err();
            assert_eq!(
                error.message,
                format!("invalid OpenSSH public key: '{bad}'")
            );
        }
    }
}
