//! Unpacking a package, streamed from the downloaded file into a fresh
//! directory, trusting nothing in it.
//!
//! Only regular files and directories are accepted; a member that is a link
//! (symbolic or hard), a device or a FIFO, whose name is absolute or has a
//! `..` component, or that lies outside the one top directory
//! `nova-agent-<version>/`, refuses the whole package with the member's name
//! and the reason. Only `bin/nova-agent`, `plugins/*.so` and `VERSION` are
//! extracted, under names this module chooses (never the member's path); other
//! files and directories inside the top directory are skipped. The tar
//! stream, headers and skipped members included, may be at most `cap` bytes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::fcntl::OFlag;
use tar::EntryType;

/// The top directory's name starts with this; the version follows.
pub const TOP_PREFIX: &str = "nova-agent-";

/// At most this many members, skipped ones included.
pub const MAX_MEMBERS: usize = 10_000;

/// The most of a `VERSION` file that is read.
const VERSION_MAX: u64 = 256;

/// An unpacked package: the files to install, in the staging directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// From the top directory's name, `nova-agent-<version>`.
    pub version: String,
    /// The `VERSION` file's first line, when there is one.
    pub version_file: Option<String>,
    /// The unpacked `bin/nova-agent`.
    pub binary: PathBuf,
    /// File name (`libnova_agent_plugin_x.so`) → the unpacked file, by name.
    pub plugins: BTreeMap<String, PathBuf>,
}

/// Unpacks the gzip'd tar `archive` into `dest`, an empty directory only
/// this process uses. The error is the answer's message.
pub fn unpack(archive: &Path, dest: &Path, cap: u64) -> Result<Package, String> {
    let file =
        File::open(archive).map_err(|e| format!("cannot open the downloaded package: {e}"))?;
    let exceeded = Rc::new(Cell::new(false));
    let stream = Capped {
        inner: flate2::read::GzDecoder::new(BufReader::new(file)),
        left: cap,
        exceeded: Rc::clone(&exceeded),
    };
    let over_cap = || format!("invalid package: it unpacks to more than {cap} bytes");
    let unreadable = |e: io::Error| {
        if exceeded.get() {
            over_cap()
        } else {
            let e = one_line(&e.to_string());
            format!("invalid package: it is not a readable gzip'd tar ({e})")
        }
    };

    let plugin_dir = dest.join("plugins");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&plugin_dir)
        .map_err(|e| format!("cannot create {}: {e}", plugin_dir.display()))?;

    let mut archive = tar::Archive::new(stream);
    let mut top: Option<Vec<u8>> = None;
    let mut binary = None;
    let mut version_file = None;
    let mut plugins = BTreeMap::new();
    let mut members = 0;
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        members += 1;
        if members > MAX_MEMBERS {
            return Err(format!(
                "invalid package: it has more than {MAX_MEMBERS} members"
            ));
        }
        let name_bytes = entry.path_bytes().into_owned();
        let name = one_line(&String::from_utf8_lossy(&name_bytes));
        let refuse = |why: &str| format!("refusing package member '{name}': {why}");
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // pax metadata for the whole archive (git archive writes one).
            continue;
        }
        let parts = components(&name_bytes).map_err(refuse)?;
        let is_dir = match kind {
            EntryType::Regular | EntryType::Continuous => false,
            EntryType::Directory => true,
            EntryType::Symlink => return Err(refuse("it is a symbolic link")),
            EntryType::Link => return Err(refuse("it is a hard link")),
            EntryType::Char => return Err(refuse("it is a character device")),
            EntryType::Block => return Err(refuse("it is a block device")),
            EntryType::Fifo => return Err(refuse("it is a FIFO")),
            other => {
                return Err(refuse(&format!(
                    "its type ({:?}) is neither a regular file nor a directory",
                    char::from(other.as_byte())
                )))
            }
        };
        let Some((first, inside)) = parts.split_first() else {
            // "./" or "/"-less equivalents: the archive's own root.
            if is_dir {
                continue;
            }
            return Err(refuse("it has no name"));
        };
        match &top {
            None => {
                if inside.is_empty() && !is_dir {
                    return Err(refuse(
                        "it is outside the top directory nova-agent-<version>/",
                    ));
                }
                let top_name = String::from_utf8_lossy(first);
                if top_name.len() <= TOP_PREFIX.len()
                    || !top_name.starts_with(TOP_PREFIX)
                    || !first.iter().all(u8::is_ascii_graphic)
                {
                    return Err(refuse(
                        "the package's top directory must be named nova-agent-<version>",
                    ));
                }
                top = Some(first.to_vec());
            }
            Some(top) if top != first => {
                return Err(refuse(&format!(
                    "it is outside the top directory {}/ (a package has exactly one)",
                    String::from_utf8_lossy(top)
                )))
            }
            Some(_) => {}
        }
        if inside.is_empty() && !is_dir {
            return Err(refuse("it is outside the top directory"));
        }

        let slot = match inside {
            [b"bin", b"nova-agent"] => Some(Slot::Binary),
            [b"VERSION"] => Some(Slot::Version),
            [b"plugins", file] if is_plugin_name(file) => {
                Some(Slot::Plugin(String::from_utf8_lossy(file).into_owned()))
            }
            _ => None,
        };
        let Some(slot) = slot else {
            if !is_dir {
                tracing::debug!("agentupdate: skipping package member {name:?}");
            }
            continue;
        };
        if is_dir {
            return Err(refuse("it must be a regular file, not a directory"));
        }
        match slot {
            Slot::Binary => {
                if binary.is_some() {
                    return Err(refuse("it appears twice"));
                }
                let path = dest.join("nova-agent");
                extract(&mut entry, &path).map_err(|e| extract_error(&name, e, &exceeded, cap))?;
                binary = Some(path);
            }
            Slot::Plugin(file) => {
                if plugins.contains_key(&file) {
                    return Err(refuse("it appears twice"));
                }
                let path = plugin_dir.join(&file);
                extract(&mut entry, &path).map_err(|e| extract_error(&name, e, &exceeded, cap))?;
                plugins.insert(file, path);
            }
            Slot::Version => {
                if version_file.is_some() {
                    return Err(refuse("it appears twice"));
                }
                let mut text = String::new();
                (&mut entry)
                    .take(VERSION_MAX)
                    .read_to_string(&mut text)
                    .map_err(|e| extract_error(&name, e, &exceeded, cap))?;
                version_file = Some(text.lines().next().unwrap_or("").trim().to_owned());
            }
        }
    }
    let Some(top) = top else {
        return Err("invalid package: it holds no nova-agent-<version>/ directory".to_owned());
    };
    let top = String::from_utf8_lossy(&top).into_owned();
    let Some(binary) = binary else {
        return Err(format!("invalid package: it has no {top}/bin/nova-agent"));
    };
    Ok(Package {
        version: top[TOP_PREFIX.len()..].to_owned(),
        version_file,
        binary,
        plugins,
    })
}

enum Slot {
    Binary,
    Plugin(String),
    Version,
}

/// The name's components, without empty and `.` ones; refuses an absolute
/// name and a `..` component.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.starts_with(b"/") {
        return Err("it is an absolute path");
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("it has a '..' component"),
            part => parts.push(part),
        }
    }
    Ok(parts)
}

/// Text from the package (a member's name, the tar reader's error quoting a
/// header) on one line for the answer and the log: control characters escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// `*.so`, not hidden, valid UTF-8.
fn is_plugin_name(file: &[u8]) -> bool {
    std::str::from_utf8(file)
        .is_ok_and(|name| name.len() > 3 && name.ends_with(".so") && !name.starts_with('.'))
}

/// The member's data into `path` (created, mode 0600, not following links).
fn extract(entry: &mut impl Read, path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    io::copy(entry, &mut file)?;
    Ok(())
}

fn extract_error(name: &str, e: io::Error, exceeded: &Cell<bool>, cap: u64) -> String {
    if exceeded.get() {
        format!("invalid package: it unpacks to more than {cap} bytes")
    } else {
        format!("unpacking package member '{name}' failed: {e}")
    }
}

/// The decompressed stream, failing once it goes over `left` bytes.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.exceeded.get() {
            return Err(io::Error::other("over the unpacked size cap"));
        }
        // Ask for one byte more than allowed, to see whether there is more.
        let wanted = buffer
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buffer[..wanted])?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(io::Error::other("over the unpacked size cap"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
