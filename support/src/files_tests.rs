//! Tests of `files`: paths under the root, and atomic replacement keeping the
//! old file's mode, owner and SELinux label.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::files::{replace_file, under_root, write_file};

const LABEL: &[u8] = b"system_u:object_r:shadow_t:s0\0";

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn under_root_joins_absolute_paths() {
    let root = Path::new("/srv/root");
    let cases = [
        ("/etc/shadow", "/srv/root/etc/shadow"),
        ("/", "/srv/root"),
        ("//etc///shadow", "/srv/root/etc/shadow"),
        ("/./etc/./shadow/.", "/srv/root/etc/shadow"),
        ("/etc/sysconfig/", "/srv/root/etc/sysconfig"),
        ("/etc/.hidden..name", "/srv/root/etc/.hidden..name"),
    ];
    for (path, expected) in cases {
        assert_eq!(
            under_root(root, path).unwrap(),
            PathBuf::from(expected),
            "{path}"
        );
    }
    assert_eq!(
        under_root(Path::new("/"), "/etc/shadow").unwrap(),
        PathBuf::from("/etc/shadow")
    );
}

#[test]
fn under_root_refuses_escapes_and_odd_paths() {
    let root = Path::new("/srv/root");
    for path in [
        "/etc/../../shadow",
        "/..",
        "/etc/..",
        "etc/shadow",
        "./etc",
        "",
        "/etc/sha\0dow",
    ] {
        let error = under_root(root, path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{path:?}");
        assert!(error.to_string().contains(&format!("{path:?}")), "{error}");
    }
}

#[test]
fn replace_file_replaces_the_content_and_keeps_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("shadow");
    fs::write(&target, "old\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();

    write_file(&target, 0o600, b"new content\n").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new content\n");
    assert_eq!(mode(&target), 0o640);
    assert_eq!(names_in(dir.path()), ["shadow"]);
}

#[test]
fn replace_file_keeps_setuid_bits_and_owner() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("helper");
    fs::write(&target, "#!/bin/sh\n").unwrap();
    let (uid, gid) = if is_root() {
        std::os::unix::fs::chown(&target, Some(1), Some(42)).unwrap();
        (1, 42)
    } else {
        eprintln!("not root: only checking that the owner stays ours");
        let metadata = fs::metadata(&target).unwrap();
        (metadata.uid(), metadata.gid())
    };
    // After the chown, which would have cleared them.
    fs::set_permissions(&target, fs::Permissions::from_mode(0o4755)).unwrap();

    write_file(&target, 0o600, b"#!/bin/sh\nexit 0\n").unwrap();
    let metadata = fs::metadata(&target).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o4755);
    assert_eq!((metadata.uid(), metadata.gid()), (uid, gid));
}

#[test]
fn a_new_file_gets_mode_if_new_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new");
    write_file(&target, 0o644, b"x").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"x");
    assert_eq!(mode(&target), 0o644);

    let other = dir.path().join("group-writable");
    write_file(&other, 0o2775, b"y").unwrap();
    assert_eq!(mode(&other), 0o2775);
}

#[test]
fn a_failing_fill_leaves_the_target_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("passwd");
    fs::write(&target, "root:x:0:0::/root:/bin/sh\n").unwrap();
    let before = fs::read(&target).unwrap();

    let error = replace_file(&target, 0o644, |file: &mut File| {
        file.write_all(b"root:x:0:0::/ro")?;
        Err(io::Error::other("disk on fire"))
    })
    .unwrap_err();
    assert!(error.to_string().contains("disk on fire"), "{error}");
    assert!(error.to_string().contains(".passwd.nova-agent."), "{error}");
    assert_eq!(fs::read(&target).unwrap(), before);
    assert_eq!(names_in(dir.path()), ["passwd"]);
}

#[test]
fn a_symlink_target_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::write(&real, "real\n").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).unwrap();

    for target in [&link, &dangling] {
        let error = write_file(target, 0o600, b"replaced\n").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(fs::symlink_metadata(target).unwrap().is_symlink());
    }
    assert_eq!(fs::read(&real).unwrap(), b"real\n");
    assert_eq!(names_in(dir.path()), ["dangling", "link", "real"]);
}

#[test]
fn a_directory_or_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = write_file(dir.path(), 0o600, b"x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

    let error = write_file(&dir.path().join("missing/file"), 0o600, b"x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().contains("creating"), "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
}

#[test]
fn the_selinux_label_is_kept_where_the_filesystem_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("shadow");
    fs::write(&target, "old\n").unwrap();

    // An unlabeled target (no SELinux here, or not yet labeled) is fine.
    write_file(&target, 0o600, b"unlabeled\n").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"unlabeled\n");

    let labeled = crate::label::set(&File::open(&target).unwrap(), LABEL);
    if let Err(e) = labeled {
        eprintln!("this filesystem takes no security.selinux label ({e}); skipping");
        return;
    }
    write_file(&target, 0o600, b"labeled\n").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"labeled\n");
    let label = crate::label::get(&File::open(&target).unwrap()).unwrap();
    assert_eq!(label.as_deref(), Some(LABEL));
}

#[test]
fn a_long_label_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("f");
    fs::write(&target, "").unwrap();
    let file = File::open(&target).unwrap();
    let mut long = b"system_u:object_r:".repeat(40);
    long.extend_from_slice(b"etc_t:s0\0");
    if crate::label::set(&file, &long).is_err() {
        eprintln!("this filesystem takes no security.selinux label; skipping");
        return;
    }
    assert_eq!(crate::label::get(&file).unwrap(), Some(long));
}
