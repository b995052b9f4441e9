//! The os-release file as qemu-ga 7.2 reads it: GLib's key-file parser over
//! `[os-release]` + the file, then qemu-ga's own unquoting of each value
//! (`ga_osrelease_replace_special`), quirks included, so that both agents
//! report the same strings for the same file.

use std::collections::HashMap;
use std::path::Path;

/// `<root>/etc/os-release`, else `<root>/usr/lib/os-release`: the keys of the
/// first one that can be read and parsed, values still quoted. `None` if
/// neither can (qemu-ga then reports uname only).
pub(crate) fn read(root: &Path) -> Option<HashMap<String, String>> {
    ["etc/os-release", "usr/lib/os-release"]
        .into_iter()
        .find_map(|path| read_one(&root.join(path)))
}

fn read_one(path: &Path) -> Option<HashMap<String, String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!("failed to read {}: {e}", path.display());
            return None;
        }
    };
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|_| "it is not UTF-8".to_owned())
        .and_then(parse);
    match parsed {
        Ok(keys) => Some(keys),
        Err(why) => {
            tracing::warn!("ignoring {}: {why}", path.display());
            None
        }
    }
}

/// The name qemu-ga gives the group it puts before the file's content.
const GROUP: &str = "os-release";

/// The keys of the `[os-release]` group, as GLib's `g_key_file_load_from_data`
/// reads `[os-release]\n` + `text`: lines split on `\n` (a `\r` before it
/// dropped), text after a NUL ignored, leading whitespace skipped, `#` lines
/// and blank lines ignored, `[group]` lines switch the group, `key=value`
/// with whitespace around `=` trimmed on the key's side and before the value;
/// the last of a repeated key wins. Any other line fails the whole file.
pub(crate) fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let text = text.split('\0').next().unwrap_or_default();
    let mut keys = HashMap::new();
    let mut in_group = true;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches(is_space);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = group_name(line) {
            if !is_group_name(name) {
                return Err(format!("invalid group name: {name}"));
            }
            in_group = name == GROUP;
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            return Err(format!(
                "line {line:?} is not a key-value pair, group, or comment"
            ));
        };
        let key = key.trim_end_matches(is_space);
        if !is_key_name(key) {
            return Err(format!("invalid key name: {key}"));
        }
        let value = value.trim_start_matches(is_space);
        if key == "Encoding" && in_group && !value.eq_ignore_ascii_case("UTF-8") {
            return Err(format!("unsupported encoding {value:?}"));
        }
        if in_group {
            keys.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(keys)
}

/// GLib's `g_ascii_isspace`, which like Rust's leaves out the vertical tab.
fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// `name` of a `[name]` line (spaces and tabs allowed after the `]`).
fn group_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    rest[end + 1..]
        .trim_start_matches([' ', '\t'])
        .is_empty()
        .then(|| &rest[..end])
}

fn is_group_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['[', ']']) && !name.contains(|c: char| c.is_ascii_control())
}

/// GLib's rule: no `[`, `]` or `=` except one trailing `[locale]`, no
/// whitespace at either end.
fn is_key_name(key: &str) -> bool {
    let (name, locale) = match key.find(['[', ']']) {
        None => (key, None),
        Some(at) => (&key[..at], Some(&key[at..])),
    };
    let edges_ok = !name.starts_with(is_space) && !name.ends_with(is_space);
    let locale_ok = locale.is_none_or(|locale| {
        locale
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .is_some_and(|l| {
                l.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
            })
    });
    !name.is_empty() && edges_ok && locale_ok
}

/// A value as qemu-ga's `ga_osrelease_replace_special` leaves it:
///
/// - not starting with `"` (single quotes included): cut at the first space,
///   then at the first `;`;
/// - starting with `"`: up to the closing `"`, with `\$ \' \" \\` and
///   `` \` `` unescaped and any other backslash kept.
///
/// qemu-ga rewrites the value in place, so a value whose closing quote is
/// missing keeps the last bytes of the original after the unescaped text
/// (`"abc` gives `abcc`); that is reproduced too.
pub(crate) fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.first() != Some(&b'"') {
        let cut = value.split(' ').next().unwrap_or_default();
        return cut.split(';').next().unwrap_or_default().to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 1;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'\\' && matches!(bytes.get(at + 1), Some(b'$' | b'\'' | b'"' | b'\\' | b'`')) {
            out.push(bytes[at + 1]);
            at += 2;
        } else if byte == b'"' {
            return String::from_utf8_lossy(&out).into_owned();
        } else {
            out.push(byte);
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[out.len()..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "os_release_tests.rs"]
mod tests;
