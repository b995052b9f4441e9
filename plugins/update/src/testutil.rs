//! Test fixtures: tarballs built member by member, malicious ones included
//! (names are written into the header as raw bytes, past the `tar` crate's
//! own checks), and temporary roots.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tar::{EntryType, Header};

/// One tar member.
pub enum Member<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Char(&'a str),
    Block(&'a str),
    Fifo(&'a str),
}

/// The members as a gzip'd tar.
pub fn tarball(members: &[Member<'_>]) -> Vec<u8> {
    gzip(&tar(members))
}

/// The members as a plain tar.
pub fn tar(members: &[Member<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let (name, kind, data, link): (&str, EntryType, &[u8], &str) = match member {
            Member::File(name, data) => (name, EntryType::Regular, data, ""),
            Member::Dir(name) => (name, EntryType::Directory, b"", ""),
            Member::Symlink(name, to) => (name, EntryType::Symlink, b"", to),
            Member::HardLink(name, to) => (name, EntryType::Link, b"", to),
            Member::Char(name) => (name, EntryType::Char, b"", ""),
            Member::Block(name) => (name, EntryType::Block, b"", ""),
            Member::Fifo(name) => (name, EntryType::Fifo, b"", ""),
        };
        let mut header = Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub const NEW_BINARY: &[u8] = b"#!/bin/sh\necho nova-agent 2.1.0\n";
pub const NEW_PLUGIN: &[u8] = b"\x7fELF new plugin x";
pub const OTHER_PLUGIN: &[u8] = b"\x7fELF new plugin z";

/// A good package: nova-agent-2.1.0 with the binary, x.so and z.so.
pub fn good_package() -> Vec<u8> {
    tarball(&[
        Member::Dir("nova-agent-2.1.0/"),
        Member::Dir("nova-agent-2.1.0/bin/"),
        Member::File("nova-agent-2.1.0/bin/nova-agent", NEW_BINARY),
        Member::Dir("nova-agent-2.1.0/plugins/"),
        Member::File("nova-agent-2.1.0/plugins/x.so", NEW_PLUGIN),
        Member::File("nova-agent-2.1.0/plugins/z.so", OTHER_PLUGIN),
        Member::File("nova-agent-2.1.0/VERSION", b"2.1.0\n"),
    ])
}

pub const OLD_BINARY: &[u8] = b"old binary\n";
pub const OLD_PLUGIN: &[u8] = b"old plugin x\n";
pub const KEPT_PLUGIN: &[u8] = b"old plugin y, not in the package\n";

/// A root holding an old install: `/usr/sbin/nova-agent` (mode 0700) and
/// `/usr/lib/nova-agent/plugins/{x,y}.so` (mode 0600).
pub fn root_with_old_install() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "usr/sbin/nova-agent", OLD_BINARY, 0o700);
    write(
        root.path(),
        "usr/lib/nova-agent/plugins/x.so",
        OLD_PLUGIN,
        0o600,
    );
    write(
        root.path(),
        "usr/lib/nova-agent/plugins/y.so",
        KEPT_PLUGIN,
        0o600,
    );
    root
}

pub fn write(root: &Path, path: &str, bytes: &[u8], mode: u32) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir` (recursively) with its content, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                let content = std::fs::read(entry.path()).unwrap_or_default();
                files.push((relative, content, meta.permissions().mode() & 0o7777));
            }
        }
    }
    files.sort();
    files
}
