//! nova-agent's shadow password writer, shared by the `password` plugin
//! (Nova's `password` command: root's account) and the `qga-users` plugin
//! (QGA's `guest-set-user-password`: any account).
//!
//! [`set_password`] sets one user's password in `<root>/etc/shadow` the way
//! shadow-utils does: under `/etc/.pwd.lock`, by writing a complete new file
//! and renaming it over the old one, changing that user's hash field and not
//! one other byte. A plain password is hashed with the scheme and parameters
//! of the hash already on the entry (a fresh salt; the system's default where
//! the entry holds no hash) and must verify before anything is written; a
//! hash the caller crypted already is installed as it is. FreeBSD's
//! `<root>/etc/master.passwd` is rewritten the same way and installed by
//! `pwd_mkdb`, through the runner.
//!
//! What it is not: an account manager (it adds no entry, and changes no
//! field but the hash: not even the date of the last change), a caller of
//! `passwd`/`chpasswd`, or a logger of secrets (it never logs a password or
//! a hash, only the hash's scheme).
//!
//! Layout: `lock` the password-file lock, `scheme` the choice of hash,
//! [`crypt`] the system's crypt library (public, so that tests verify hashes
//! as login would).

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use nova_agent_support::files::{replace_file, under_root};
use nova_agent_support::runner::{Arg, Runner};
use zeroize::Zeroizing;

pub mod crypt;
mod lock;
mod scheme;

#[cfg(test)]
mod tests;

use lock::{PasswordLock, LOCK_WAIT};

/// The password a user gets.
pub enum NewPassword<'a> {
    /// A password to hash, as bytes (crypt takes any byte but NUL).
    Plain(&'a [u8]),
    /// A complete hash (`$6$salt$...`, `!`, ...) to install as it is; it may
    /// not hold `:`, a newline or a NUL byte.
    Crypted(&'a [u8]),
}

/// Writes the new file's bytes; replaced in tests to break a write halfway.
pub type Writer = fn(&mut File, &[u8]) -> io::Result<()>;

/// The [`Writer`] of production: all the bytes.
pub fn write_all(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)
}

/// How the files are edited: the writer, and FreeBSD's database tool (the
/// seed's absolute path; tests put a stub there).
pub struct Editor {
    pub writer: Writer,
    pub pwd_mkdb: String,
}

impl Default for Editor {
    fn default() -> Editor {
        Editor {
            writer: write_all,
            pwd_mkdb: "/usr/sbin/pwd_mkdb".to_owned(),
        }
    }
}

/// Sets `user`'s password under `root`; the error reads as an answer's
/// message ("/etc/shadow has no entry for alice").
pub fn set_password(
    root: &Path,
    user: &str,
    password: NewPassword<'_>,
    runner: &Runner,
    editor: &Editor,
) -> Result<(), String> {
    if user.is_empty() || user.contains([':', '\n']) {
        return Err(format!("invalid user name {user:?}"));
    }
    if let NewPassword::Crypted(hash) = password {
        if hash.iter().any(|b| matches!(b, b':' | b'\n' | 0)) {
            return Err("forbidden characters in crypted password".to_owned());
        }
    }
    let change = Change {
        root,
        user,
        password,
        writer: editor.writer,
    };
    let path = |p: &str| under_root(root, p).map_err(|e| e.to_string());
    let shadow = path("/etc/shadow")?;
    if shadow.exists() {
        let _lock = PasswordLock::take(&path("/etc/.pwd.lock")?, LOCK_WAIT)?;
        let field = change.rewrite(&shadow)?;
        return change.check_installed(&shadow, &field);
    }
    let master = path("/etc/master.passwd")?;
    if master.exists() {
        return change.in_master_passwd(&master, runner, editor);
    }
    Err("Unknown password file format".to_owned())
}

/// The byte range of `user`'s password field in a shadow or master.passwd
/// text: on the first line whose user is `user`, between its first and
/// second colon.
pub fn hash_field(content: &[u8], user: &str) -> Option<Range<usize>> {
    let prefix = format!("{user}:");
    let mut start = 0;
    for line in content.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(prefix.as_bytes()) {
            let field_start = start + prefix.len();
            let len = rest.iter().position(|&b| b == b':')?;
            return Some(field_start..field_start + len);
        }
        start += line.len() + 1;
    }
    None
}

/// One password change being made.
struct Change<'a> {
    root: &'a Path,
    user: &'a str,
    password: NewPassword<'a>,
    writer: Writer,
}

impl Change<'_> {
    /// Rewrites `file` with the user's hash field replaced; returns the new
    /// field.
    fn rewrite(&self, file: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
        let name = display(file, self.root);
        let user = self.user;
        let content = std::fs::read(file).map_err(|e| format!("cannot read {name}: {e}"))?;
        let field =
            hash_field(&content, user).ok_or_else(|| format!("{name} has no entry for {user}"))?;
        let new = self.new_field(&content[field.clone()])?;
        let mut updated = Zeroizing::new(Vec::with_capacity(content.len() + new.len()));
        updated.extend_from_slice(&content[..field.start]);
        updated.extend_from_slice(&new);
        updated.extend_from_slice(&content[field.end..]);
        replace_file(file, 0o600, |f| (self.writer)(f, &updated))
            .map_err(|e| format!("cannot write {name}: {e}"))?;
        let how = match self.password {
            NewPassword::Plain(_) => "",
            NewPassword::Crypted(_) => ", crypted by the host",
        };
        tracing::info!(
            "{user}'s password set in {name} ({} hash{how})",
            scheme_name(&new)
        );
        Ok(new)
    }

    /// The new hash field, given the old one.
    fn new_field(&self, old: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        match self.password {
            NewPassword::Crypted(hash) => Ok(Zeroizing::new(hash.to_vec())),
            NewPassword::Plain(password) => {
                let old = std::str::from_utf8(old).unwrap_or("");
                let setting = scheme::setting_for(old, self.root)?;
                let hashed = crypt::hash(password, &setting)?;
                if !crypt::verify(password, &hashed) {
                    return Err(format!(
                        "the new {} password hash does not verify; nothing was changed",
                        self.user
                    ));
                }
                Ok(Zeroizing::new(hashed.into_bytes()))
            }
        }
    }

    /// Reads `file` back: the user's field must be `field`.
    fn check_installed(&self, file: &Path, field: &[u8]) -> Result<(), String> {
        let installed = std::fs::read(file).unwrap_or_default();
        match hash_field(&installed, self.user) {
            Some(range) if installed[range.clone()] == *field => Ok(()),
            _ => Err(format!(
                "{} does not hold the new {} password after writing it",
                display(file, self.root),
                self.user
            )),
        }
    }

    /// FreeBSD: a new master.passwd next to the old, installed (with the
    /// databases rebuilt) by `pwd_mkdb -p -d <root>/etc`.
    fn in_master_passwd(
        &self,
        master: &Path,
        runner: &Runner,
        editor: &Editor,
    ) -> Result<(), String> {
        let etc = master.parent().unwrap_or(Path::new("/etc"));
        if !runner.apply() {
            // Nothing may run: the file is replaced directly, and the
            // database rebuild is only logged.
            let field = self.rewrite(master)?;
            let _ = runner.run(&editor.pwd_mkdb, &pwd_mkdb_args(etc, master));
            return self.check_installed(master, &field);
        }
        let staged = staging_copy(master)?;
        let outcome = self.rewrite(&staged).and_then(|field| {
            match runner.run(&editor.pwd_mkdb, &pwd_mkdb_args(etc, &staged)) {
                Ok(outcome) if outcome.succeeded() => Ok(field),
                Ok(_) | Err(_) => {
                    tracing::warn!("pwd_mkdb failed; /etc/master.passwd is unchanged");
                    Err("Rebuilding the passwd database failed".to_owned())
                }
            }
        });
        let _ = std::fs::remove_file(&staged); // pwd_mkdb moved it on success
        self.check_installed(master, &outcome?)
    }
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

/// The hash's scheme, for the log (never the hash itself).
fn scheme_name(field: &[u8]) -> &'static str {
    match field.split(|&b| b == b'$').nth(1) {
        Some(b"y") => "yescrypt",
        Some(b"6") => "SHA-512",
        Some(b"5") => "SHA-256",
        Some(b"2b" | b"2a" | b"2y") => "bcrypt",
        Some(b"1") => "MD5",
        _ if field.is_empty() => "empty",
        _ if field.starts_with(b"!") || field.starts_with(b"*") => "locked",
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
