//! Unpacking: a good package, and every kind of member a package may not
//! hold, each refused with the member's name and why, nothing written
//! outside the destination.

use std::path::Path;

use crate::testutil::{good_package, tarball, Member, NEW_BINARY, NEW_PLUGIN, OTHER_PLUGIN};
use crate::unpack::{unpack, Package};

const CAP: u64 = 1024 * 1024;

/// Unpacks `bytes` into a fresh directory inside a fresh temporary directory
/// (so that escapes would land beside it, where the test looks).
fn unpack_bytes(bytes: &[u8], cap: u64) -> (tempfile::TempDir, Result<Package, String>) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("package.tar.gz");
    std::fs::write(&archive, bytes).unwrap();
    let dest = dir.path().join("a/b/unpacked");
    std::fs::create_dir_all(&dest).unwrap();
    let result = unpack(&archive, &dest, cap);
    (dir, result)
}

fn refused(members: &[Member<'_>]) -> String {
    let (dir, result) = unpack_bytes(&tarball(members), CAP);
    let message = result.expect_err("the package should be refused");
    // Nothing landed outside the destination.
    for escaped in ["etc", "a/etc", "a/b/etc", "evil", "a/evil", "a/b/evil"] {
        assert!(
            !dir.path().join(escaped).exists(),
            "{escaped} was created: {message}"
        );
    }
    message
}

fn binary_member() -> Member<'static> {
    Member::File("nova-agent-1.0/bin/nova-agent", b"binary")
}

#[test]
fn a_good_package_unpacks_its_binary_plugins_and_version() {
    let (_dir, result) = unpack_bytes(&good_package(), CAP);
    let package = result.unwrap();
    assert_eq!(package.version, "2.1.0");
    assert_eq!(package.version_file.as_deref(), Some("2.1.0"));
    assert_eq!(std::fs::read(&package.binary).unwrap(), NEW_BINARY);
    let names: Vec<&str> = package.plugins.keys().map(String::as_str).collect();
    assert_eq!(names, ["x.so", "z.so"]);
    assert_eq!(std::fs::read(&package.plugins["x.so"]).unwrap(), NEW_PLUGIN);
    assert_eq!(
        std::fs::read(&package.plugins["z.so"]).unwrap(),
        OTHER_PLUGIN
    );
}

#[test]
fn dot_slash_names_and_members_outside_the_format_are_accepted_and_skipped() {
    let bytes = tarball(&[
        Member::Dir("./"),
        Member::Dir("./nova-agent-1.0/"),
        Member::File("./nova-agent-1.0/bin/nova-agent", b"binary"),
        Member::File("nova-agent-1.0/README", b"skipped"),
        Member::Dir("nova-agent-1.0/share/"),
        Member::File("nova-agent-1.0/share/doc.txt", b"skipped"),
        Member::File("nova-agent-1.0/plugins/notes.txt", b"skipped"),
        Member::File("nova-agent-1.0/plugins/.hidden.so", b"skipped"),
        Member::File("nova-agent-1.0/plugins/sub/deep.so", b"skipped"),
    ]);
    let (dir, result) = unpack_bytes(&bytes, CAP);
    let package = result.unwrap();
    assert_eq!(package.version, "1.0");
    assert_eq!(package.version_file, None);
    assert!(package.plugins.is_empty());
    let dest = dir.path().join("a/b/unpacked");
    let mut files: Vec<String> = walk(&dest);
    files.sort();
    assert_eq!(files, ["nova-agent"]);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn an_absolute_name_is_refused() {
    assert_eq!(
        refused(&[binary_member(), Member::File("/etc/cron.d/evil", b"x")]),
        "refusing package member '/etc/cron.d/evil': it is an absolute path"
    );
}

#[test]
fn a_dot_dot_component_is_refused() {
    assert_eq!(
        refused(&[
            binary_member(),
            Member::File("nova-agent-1.0/../../../evil", b"x")
        ]),
        "refusing package member 'nova-agent-1.0/../../../evil': it has a '..' component"
    );
    assert_eq!(
        refused(&[Member::File("../evil", b"x"), binary_member()]),
        "refusing package member '../evil': it has a '..' component"
    );
}

#[test]
fn a_symlink_is_refused_even_where_a_file_would_be_installed() {
    assert_eq!(
        refused(&[
            binary_member(),
            Member::Symlink("nova-agent-1.0/plugins/evil.so", "/etc/shadow")
        ]),
        "refusing package member 'nova-agent-1.0/plugins/evil.so': it is a symbolic link"
    );
    // A link out, then a file through it.
    assert_eq!(
        refused(&[
            Member::Symlink("nova-agent-1.0/plugins", "../../.."),
            Member::File("nova-agent-1.0/plugins/evil", b"x"),
            binary_member(),
        ]),
        "refusing package member 'nova-agent-1.0/plugins': it is a symbolic link"
    );
}

#[test]
fn a_hard_link_is_refused() {
    assert_eq!(
        refused(&[
            binary_member(),
            Member::HardLink("nova-agent-1.0/plugins/x.so", "/etc/shadow")
        ]),
        "refusing package member 'nova-agent-1.0/plugins/x.so': it is a hard link"
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    assert_eq!(
        refused(&[binary_member(), Member::Char("nova-agent-1.0/null")]),
        "refusing package member 'nova-agent-1.0/null': it is a character device"
    );
    assert_eq!(
        refused(&[binary_member(), Member::Block("nova-agent-1.0/sda")]),
        "refusing package member 'nova-agent-1.0/sda': it is a block device"
    );
    assert_eq!(
        refused(&[binary_member(), Member::Fifo("nova-agent-1.0/fifo")]),
        "refusing package member 'nova-agent-1.0/fifo': it is a FIFO"
    );
}

#[test]
fn a_second_top_directory_is_refused() {
    assert_eq!(
        refused(&[
            binary_member(),
            Member::File("nova-agent-2.0/bin/nova-agent", b"other")
        ]),
        "refusing package member 'nova-agent-2.0/bin/nova-agent': \
         it is outside the top directory nova-agent-1.0/ (a package has exactly one)"
    );
}

#[test]
fn a_file_beside_the_top_directory_is_refused() {
    assert_eq!(
        refused(&[Member::File("README", b"x"), binary_member()]),
        "refusing package member 'README': it is outside the top directory nova-agent-<version>/"
    );
    assert_eq!(
        refused(&[binary_member(), Member::File("./nova-agent-1.0", b"x")]),
        "refusing package member './nova-agent-1.0': it is outside the top directory"
    );
}

#[test]
fn the_top_directory_must_be_named_for_the_agent() {
    assert_eq!(
        refused(&[Member::File("agent/bin/nova-agent", b"x")]),
        "refusing package member 'agent/bin/nova-agent': \
         the package's top directory must be named nova-agent-<version>"
    );
}

#[test]
fn a_package_without_the_binary_is_refused() {
    assert_eq!(
        refused(&[Member::File("nova-agent-1.0/plugins/x.so", b"x")]),
        "invalid package: it has no nova-agent-1.0/bin/nova-agent"
    );
    assert_eq!(
        refused(&[
            Member::Dir("nova-agent-1.0/bin/nova-agent/"),
            Member::File("nova-agent-1.0/plugins/x.so", b"x")
        ]),
        "refusing package member 'nova-agent-1.0/bin/nova-agent/': \
         it must be a regular file, not a directory"
    );
    assert_eq!(
        refused(&[]),
        "invalid package: it holds no nova-agent-<version>/ directory"
    );
}

#[test]
fn a_member_twice_is_refused() {
    assert_eq!(
        refused(&[binary_member(), binary_member()]),
        "refusing package member 'nova-agent-1.0/bin/nova-agent': it appears twice"
    );
}

#[test]
fn more_than_the_cap_unpacked_is_refused() {
    let big = vec![0u8; 64 * 1024];
    let bytes = tarball(&[
        Member::File("nova-agent-1.0/bin/nova-agent", &big),
        Member::File("nova-agent-1.0/skipped", &big),
    ]);
    // Compresses to far less than the cap: the cap is on what it unpacks to.
    assert!((bytes.len() as u64) < 16 * 1024);
    let (_dir, result) = unpack_bytes(&bytes, 100 * 1024);
    assert_eq!(
        result.unwrap_err(),
        "invalid package: it unpacks to more than 102400 bytes"
    );
}

#[test]
fn something_that_is_not_a_gzipped_tar_is_refused() {
    let (_dir, result) = unpack_bytes(b"<html>not found</html>", CAP);
    let message = result.unwrap_err();
    assert!(
        message.starts_with("invalid package: it is not a readable gzip'd tar"),
        "{message}"
    );
    let (_dir, result) = unpack_bytes(&crate::testutil::gzip(&[7u8; 2048]), CAP);
    let message = result.unwrap_err();
    assert!(
        message.starts_with("invalid package: it is not a readable gzip'd tar"),
        "{message}"
    );
}
