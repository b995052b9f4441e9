//! Setting root's password in `<root>/etc/shadow` the way shadow-utils does:
//! under `/etc/.pwd.lock`, by writing a complete new file and renaming it
//! over the old one, changing root's hash field and not one other byte.
//! FreeBSD's `<root>/etc/master.passwd` is rewritten the same way and
//! installed by `pwd_mkdb`, through the runner.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nova_agent_support::files::{replace_file, under_root};
use nova_agent_support::runner::{Arg, Runner};

use crate::{crypt, scheme};

/// How long to wait for another program holding the password lock
/// (lckpwdf's own limit).
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// Writes the new file's bytes; replaced in tests to break a write halfway.
pub(crate) type Writer = fn(&mut File, &[u8]) -> io::Result<()>;

pub(crate) fn write_all(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)
}

/// How the files are edited: the writer, and FreeBSD's database tool (the
/// seed's absolute path; tests put a stub there).
pub(crate) struct Editor {
    pub(crate) writer: Writer,
    pub(crate) pwd_mkdb: String,
}

impl Default for Editor {
    fn default() -> Editor {
        Editor {
            writer: write_all,
            pwd_mkdb: "/usr/sbin/pwd_mkdb".to_owned(),
        }
    }
}

/// Sets root's password; the error is the answer's message.
pub(crate) fn set_root_password(
    root: &Path,
    password: &str,
    runner: &Runner,
    editor: &Editor,
) -> Result<(), String> {
    let path = |p: &str| under_root(root, p).map_err(|e| e.to_string());
    let shadow = path("/etc/shadow")?;
    if shadow.exists() {
        let _lock = PasswordLock::take(&path("/etc/.pwd.lock")?, LOCK_WAIT)?;
        let hashed = rewrite(&shadow, root, password, editor.writer)?;
        return check_installed(&shadow, root, &hashed);
    }
    let master = path("/etc/master.passwd")?;
    if master.exists() {
        return set_in_master_passwd(&master, root, password, runner, editor);
    }
    Err("Unknown password file format".to_owned())
}

/// Reads `file` back: root's field must be `hashed`.
fn check_installed(file: &Path, root: &Path, hashed: &str) -> Result<(), String> {
    let installed = std::fs::read(file).unwrap_or_default();
    match root_hash_field(&installed) {
        Some(field) if installed[field.clone()] == *hashed.as_bytes() => Ok(()),
        _ => Err(format!(
            "{} does not hold the new root password after writing it",
            display(file, root)
        )),
    }
}

/// Rewrites `file` with root's hash replaced; returns the new hash.
fn rewrite(file: &Path, root: &Path, password: &str, writer: Writer) -> Result<String, String> {
    let name = display(file, root);
    let content = std::fs::read(file).map_err(|e| format!("cannot read {name}: {e}"))?;
    let field = root_hash_field(&content).ok_or_else(|| format!("{name} has no entry for root"))?;
    let old = std::str::from_utf8(&content[field.clone()]).unwrap_or("");
    let setting = scheme::setting_for(old, root)?;
    let hashed = crypt::hash(password, &setting)?;
    if !crypt::verify(password, &hashed) {
        return Err("the new root password hash does not verify; nothing was changed".to_owned());
    }
    let mut updated = Vec::with_capacity(content.len() + hashed.len());
    updated.extend_from_slice(&content[..field.start]);
    updated.extend_from_slice(hashed.as_bytes());
    updated.extend_from_slice(&content[field.end..]);
    replace_file(file, 0o600, |f| writer(f, &updated))
        .map_err(|e| format!("cannot write {name}: {e}"))?;
    tracing::info!(
        "root's password set in {name} ({} hash)",
        scheme_name(&hashed)
    );
    Ok(hashed)
}

/// The byte range of root's password field: the first line (not a comment)
/// whose user is `root`, between its first and second colon.
pub(crate) fn root_hash_field(content: &[u8]) -> Option<Range<usize>> {
    let mut start = 0;
    for line in content.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"root:") {
            let field_start = start + 5;
            let len = rest.iter().position(|&b| b == b':')?;
            return Some(field_start..field_start + len);
        }
        start += line.len() + 1;
    }
    None
}

fn scheme_name(hashed: &str) -> &'static str {
    match hashed.split('$').nth(1) {
        Some("y") => "yescrypt",
        Some("6") => "SHA-512",
        Some("5") => "SHA-256",
        Some("2b" | "2a" | "2y") => "bcrypt",
        Some("1") => "MD5",
        _ => "crypt",
    }
}

/// `/etc/shadow` as the host sees it (the path under the root, without the
/// root), for messages.
fn display(file: &Path, root: &Path) -> String {
    match file.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => file.display().to_string(),
    }
}

/// FreeBSD: a new master.passwd next to the old, installed (with the
/// databases rebuilt) by `pwd_mkdb -p -d <root>/etc`.
fn set_in_master_passwd(
    master: &Path,
    root: &Path,
    password: &str,
    runner: &Runner,
    editor: &Editor,
) -> Result<(), String> {
    let etc = master.parent().unwrap_or(Path::new("/etc"));
    if !runner.apply() {
        // Nothing may run: the file is replaced directly, and the database
        // rebuild is only logged.
        let hashed = rewrite(master, root, password, editor.writer)?;
        let _ = runner.run(&editor.pwd_mkdb, &pwd_mkdb_args(etc, master));
        return check_installed(master, root, &hashed);
    }
    let staged = staging_copy(master)?;
    let outcome = rewrite(&staged, root, password, editor.writer).and_then(|hashed| {
        match runner.run(&editor.pwd_mkdb, &pwd_mkdb_args(etc, &staged)) {
            Ok(outcome) if outcome.succeeded() => Ok(hashed),
            Ok(_) | Err(_) => {
                tracing::warn!("pwd_mkdb failed; /etc/master.passwd is unchanged");
                Err("Rebuilding the passwd database failed".to_owned())
            }
        }
    });
    let _ = std::fs::remove_file(&staged); // pwd_mkdb moved it on success
    check_installed(master, root, &outcome?)
}

fn pwd_mkdb_args(etc: &Path, file: &Path) -> Vec<Arg> {
    vec![
        "-p".into(),
        "-d".into(),
        etc.display().to_string().into(),
        file.display().to_string().into(),
    ]
}

/// A copy of master.passwd (same mode and owner) for pwd_mkdb to install.
fn staging_copy(master: &Path) -> Result<PathBuf, String> {
    let staged = master.with_file_name(format!("master.passwd.nova-agent.{}", std::process::id()));
    let copy = std::fs::read(master)
        .map_err(|e| format!("cannot read {}: {e}", master.display()))
        .and_then(|bytes| {
            nova_agent_support::files::write_file(&staged, 0o600, &bytes)
                .map_err(|e| format!("cannot stage {}: {e}", staged.display()))
        });
    copy.map(|()| staged)
}

/// The lock shadow-utils programs take (lckpwdf): an fcntl write lock on
/// `/etc/.pwd.lock`, held until dropped. libc's lckpwdf always locks the
/// real /etc, so this takes the one under the configured root.
pub(crate) struct PasswordLock {
    _file: File,
}

impl PasswordLock {
    pub(crate) fn take(path: &Path, wait: Duration) -> Result<PasswordLock, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags((OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).bits())
            .open(path)
            .map_err(|e| format!("cannot open the password lock {}: {e}", path.display()))?;
        let deadline = Instant::now() + wait;
        loop {
            match write_lock(&file) {
                Ok(()) => return Ok(PasswordLock { _file: file }),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) if is_busy(&e) => {
                    return Err(format!(
                        "the password files are locked by another program (waited {:.1} s)",
                        wait.as_secs_f64()
                    ))
                }
                Err(e) => return Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
    }
}

/// A write lock on the whole file (`l_len` 0: to its end, however long).
fn whole_file_write_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

fn write_lock(file: &File) -> io::Result<()> {
    fcntl(file, FcntlArg::F_SETLK(&whole_file_write_lock()))
        .map(drop)
        .map_err(io::Error::from)
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EAGAIN | Errno::EACCES)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fcntl's process-owned locks do not conflict within one process, but
    /// an open file description lock (`F_OFD_SETLK`) conflicts with them
    /// even there: the other holder is such a lock, released by a thread
    /// after `hold`.
    fn hold_elsewhere(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        fcntl(&file, FcntlArg::F_OFD_SETLK(&whole_file_write_lock())).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            drop(file);
        })
    }

    #[test]
    fn the_lock_waits_for_another_holder_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pwd.lock");

        let holder = hold_elsewhere(&path, Duration::from_millis(1500));
        let error = PasswordLock::take(&path, Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(error.contains("locked by another program"), "{error}");
        let started = Instant::now();
        let lock = PasswordLock::take(&path, Duration::from_secs(10));
        assert!(lock.is_ok(), "{:?}", lock.err());
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "it waited for the holder"
        );
        holder.join().unwrap();
    }
}
