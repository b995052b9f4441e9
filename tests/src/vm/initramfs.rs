//! The guest's initramfs as a newc cpio archive, written here rather than by
//! the `cpio` tool so that every entry records uid 0 and an exact mode (the
//! agent's plugin trust check runs inside the guest, as root), and kernel
//! modules ordered by the `depends=` line of their `.modinfo`.
//!
//! Uncompressed on purpose: under TCG the guest's own gunzip would cost more
//! than loading the larger file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

enum Body {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

struct Entry {
    mode: u32,
    body: Body,
}

/// An archive being assembled: absolute guest paths, each owned by root.
/// Parent directories are added (0755) as needed.
#[derive(Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    pub fn new() -> Initramfs {
        let mut image = Initramfs::default();
        // "." sets the mode of the rootfs itself, an ancestor of the plugin
        // directory as far as the trust check goes.
        image.entries.insert(
            ".".to_owned(),
            Entry {
                mode: 0o755,
                body: Body::Dir,
            },
        );
        image
    }

    pub fn dir(&mut self, path: &str, mode: u32) {
        self.insert(path, mode, Body::Dir);
    }

    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.insert(path, mode, Body::File(bytes));
    }

    /// A file with the content of `source` on this machine.
    pub fn copy(&mut self, path: &str, mode: u32, source: &Path) -> Result<(), String> {
        let bytes =
            std::fs::read(source).map_err(|e| format!("reading {}: {e}", source.display()))?;
        self.file(path, mode, bytes);
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, 0o777, Body::Symlink(target.to_owned()));
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(relative(path))
    }

    fn insert(&mut self, path: &str, mode: u32, body: Body) {
        let name = relative(path);
        assert!(!name.is_empty(), "no path given");
        self.add_parents(name);
        self.entries.insert(name.to_owned(), Entry { mode, body });
    }

    fn add_parents(&mut self, name: &str) {
        for dir in Path::new(name).ancestors().skip(1) {
            let dir = dir.to_str().expect("UTF-8 path");
            if dir.is_empty() {
                break;
            }
            self.entries.entry(dir.to_owned()).or_insert(Entry {
                mode: 0o755,
                body: Body::Dir,
            });
        }
    }

    /// The newc archive. Entries come sorted, so every directory precedes
    /// what it holds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (name, entry)) in self.entries.iter().enumerate() {
            let (kind, data): (u32, &[u8]) = match &entry.body {
                Body::Dir => (0o040000, &[]),
                Body::File(bytes) => (0o100000, bytes),
                Body::Symlink(target) => (0o120000, target.as_bytes()),
            };
            let nlink = if matches!(entry.body, Body::Dir) {
                2
            } else {
                1
            };
            push_record(
                &mut out,
                ino as u32 + 1,
                kind | entry.mode,
                nlink,
                name,
                data,
            );
        }
        push_record(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }
}

fn relative(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// One newc header ("070701", 13 hex fields), the name with its NUL, the
/// data, each padded to 4 bytes. uid, gid and mtime are 0.
fn push_record(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// The `.ko` files that `wanted` need, dependencies first, found by module
/// name (`-` and `_` are the same) under `tree` (a `lib/modules/<release>`).
/// Debian's package ships no modules.dep (depmod runs at install time), so the
/// order comes from each module's own `depends=`.
pub fn modules_in_load_order(tree: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut index = HashMap::new();
    index_modules(tree, &mut index)?;
    let mut order = Vec::new();
    let mut visiting = Vec::new();
    for name in wanted {
        visit(&normalise(name), &index, &mut order, &mut visiting)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    index: &HashMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    visiting: &mut Vec<String>,
) -> Result<(), String> {
    let path = index
        .get(name)
        .ok_or_else(|| format!("module {name} is not in the kernel package"))?;
    if order.contains(path) {
        return Ok(());
    }
    if visiting.iter().any(|v| v == name) {
        return Err(format!("module dependency cycle through {name}"));
    }
    visiting.push(name.to_owned());
    for dep in depends(path)? {
        visit(&dep, index, order, visiting)?;
    }
    visiting.pop();
    order.push(path.clone());
    Ok(())
}

fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            index.insert(normalise(stem), path);
        }
    }
    Ok(())
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The module names in the `depends=` string of a `.ko`'s `.modinfo`
/// section (NUL-separated `key=value` strings).
fn depends(ko: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(ko).map_err(|e| format!("reading {}: {e}", ko.display()))?;
    let key = b"\0depends=";
    let start = bytes
        .windows(key.len())
        .position(|w| w == key)
        .ok_or_else(|| format!("{} has no depends= in its modinfo", ko.display()))?
        + key.len();
    let end = bytes[start..]
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes.len(), |n| start + n);
    let list = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| format!("{}: depends= is not UTF-8", ko.display()))?;
    Ok(list
        .split(',')
        .filter(|d| !d.is_empty())
        .map(normalise)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(record: &[u8], n: usize) -> u32 {
        let at = 6 + 8 * n;
        u32::from_str_radix(std::str::from_utf8(&record[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn records_are_root_owned_padded_and_parents_come_first() {
        let mut image = Initramfs::new();
        image.file("/usr/bin/tool", 0o755, b"abcde".to_vec());
        let bytes = image.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let names: Vec<String> = bytes
            .windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"070701")
            .map(|(at, _)| {
                let record = &bytes[at..];
                let len = field(record, 11) as usize;
                assert_eq!((field(record, 2), field(record, 3)), (0, 0), "uid, gid");
                String::from_utf8(record[110..110 + len - 1].to_vec()).unwrap()
            })
            .collect();
        assert_eq!(names, [".", "usr", "usr/bin", "usr/bin/tool", "TRAILER!!!"]);
        let tool = bytes
            .windows(12)
            .position(|w| w == b"usr/bin/tool")
            .unwrap()
            - 110;
        assert_eq!(field(&bytes[tool..], 1), 0o100755);
        assert_eq!(field(&bytes[tool..], 6), 5);
    }

    #[test]
    fn modules_load_after_their_dependencies() {
        let tree = tempfile::tempdir().unwrap();
        let write = |rel: &str, deps: &str| {
            let path = tree.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let info = format!("\0license=GPL\0depends={deps}\0vermagic=6.1\0");
            std::fs::write(path, info).unwrap();
        };
        write("kernel/a/virtio_console.ko", "virtio,virtio_ring");
        write("kernel/a/virtio.ko", "virtio_ring");
        write("kernel/b/virtio_ring.ko", "");
        write("kernel/b/virtio-rng.ko", "virtio");
        let order = modules_in_load_order(tree.path(), &["virtio_console", "virtio_rng"]).unwrap();
        let names: Vec<_> = order
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "virtio_ring.ko",
                "virtio.ko",
                "virtio_console.ko",
                "virtio-rng.ko"
            ]
        );
        let missing = modules_in_load_order(tree.path(), &["nope"]).unwrap_err();
        assert_eq!(missing, "module nope is not in the kernel package");
    }
}
