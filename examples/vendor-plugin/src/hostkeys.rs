//! Finding and reading `<root>/etc/ssh/ssh_host_*_key.pub`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nova_agent_plugin_api::CommandError;

use crate::pubkey;

/// Where the keys are, relative to the root.
const KEY_DIR: &str = "etc/ssh";
/// The most read of one file; a public key line is well under 1 KiB.
pub const MAX_FILE_LEN: u64 = 64 * 1024;

/// The command's answer for the host keys under `root`: the fingerprints
/// joined by `"; "`. The not-found message names the directory looked in,
/// root included (`/etc/ssh` when the root is `/`).
pub fn report(root: &Path) -> Result<String, CommandError> {
    match fingerprints(root) {
        Ok(lines) if lines.is_empty() => Err(CommandError::not_found(format!(
            "no SSH host keys in {}",
            root.join(KEY_DIR).display()
        ))),
        Ok(lines) => {
            tracing::debug!("reported {} SSH host keys", lines.len());
            Ok(lines.join("; "))
        }
        Err(message) => {
            tracing::warn!("{message}");
            Err(CommandError::failed(message))
        }
    }
}

/// One `<bits> SHA256:<fp> (<TYPE>)` per key file, sorted by file name.
fn fingerprints(root: &Path) -> Result<Vec<String>, String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the root {}: {e}", root.display()))?;
    let dir = match root.join(KEY_DIR).canonicalize() {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot resolve /{KEY_DIR}: {e}")),
    };
    if !dir.starts_with(&root) {
        return Err(format!("/{KEY_DIR} leads outside the root"));
    }
    let mut names = key_file_names(&dir).map_err(|e| format!("cannot list /{KEY_DIR}: {e}"))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
        .iter()
        .map(|name| {
            let shown = format!("/{KEY_DIR}/{}", Path::new(name).display());
            let text = read_under(&root, &dir.join(name)).map_err(|e| format!("{shown}: {e}"))?;
            let fingerprint = pubkey::fingerprint(&text)
                .map_err(|e| format!("{shown}: not a valid public key: {e}"))?;
            Ok(fingerprint.to_string())
        })
        .collect()
}

/// The names matching `ssh_host_*_key.pub`, as the shell glob would.
fn key_file_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let matches = name
            .as_bytes()
            .strip_prefix(b"ssh_host_")
            .is_some_and(|rest| rest.ends_with(b"_key.pub"));
        if matches {
            names.push(name);
        }
    }
    Ok(names)
}

/// The text of the regular file at `path`, whose links must stay under
/// `root` (checked just before reading, like the agent's other plugins).
fn read_under(root: &Path, path: &Path) -> Result<String, String> {
    let real: PathBuf = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve: {e}"))?;
    if !real.starts_with(root) {
        return Err("leads outside the root".into());
    }
    // Checked before opening: opening a FIFO would block the request.
    let is_file = fs::metadata(&real)
        .map_err(|e| format!("cannot read: {e}"))?
        .is_file();
    if !is_file {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    File::open(&real)
        .and_then(|file| file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {} KiB", MAX_FILE_LEN / 1024));
    }
    String::from_utf8(bytes).map_err(|_| "not text".into())
}
