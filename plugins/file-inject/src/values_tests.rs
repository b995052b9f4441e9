//! Tests of what is asked: the seed vectors, the two value forms, the path
//! checks, the contents limit and symbolic links.

use super::*;

// The seed's vectors.

#[test]
fn seed_vector_comma_data_splits_at_the_first_comma() {
    let guest = Guest::new();
    let (input, path, contents) = vector_case("injectfile-comma-data");
    assert_eq!(contents, b"test123,456,789\ntest456,789\n");
    assert_eq!(guest.injectfile_raw(&format!("\"{input}\"")), ok());
    assert_eq!(guest.read(&path), contents);
}

#[test]
fn seed_vector_binary_data_is_written_byte_for_byte() {
    let guest = Guest::new();
    let (input, path, contents) = vector_case("injectfile-binary-data");
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(contents.len() % 256, 0);
    assert!(contents.chunks(256).all(|chunk| chunk == all));
    assert_eq!(guest.injectfile_raw(&format!("\"{input}\"")), ok());
    assert_eq!(guest.read(&path), contents);
}

#[test]
fn seed_vector_preserve_permissions_keeps_mode_owner_and_group() {
    let guest = Guest::new();
    let (input, path, contents) = vector_case("injectfile-preserve-permissions");
    let before = &vector("injectfile-preserve-permissions")["input_decoded"]["pre_existing_file"];
    assert_eq!(before["mode"], "0666");
    guest.write(&path, before["data"].as_str().unwrap().as_bytes(), 0o666);
    let host = guest.host(&path);
    let as_root = running_as_root();
    if as_root {
        std::os::unix::fs::chown(&host, Some(0), Some(1)).unwrap();
    } else {
        eprintln!("not root: the ownership half (uid 0, gid 1) of this test is skipped");
    }

    assert_eq!(guest.injectfile_raw(&format!("\"{input}\"")), ok());
    assert_eq!(guest.read(&path), contents);
    let metadata = fs::metadata(&host).unwrap();
    assert_eq!(metadata.mode(), 0o100666);
    if as_root {
        assert_eq!((metadata.uid(), metadata.gid()), (0, 1));
    }
    assert_eq!(
        fs::read(guest.host(&format!("{path}.bak"))).unwrap(),
        b"this will be old file"
    );
}

// The object form.

#[test]
fn file_inject_takes_the_object_form_and_its_path_may_hold_a_comma() {
    let guest = Guest::new();
    assert_eq!(
        guest.file_inject("/root/.ssh/authorized_keys", b"ssh-rsa AAAA,b c\n\0\xff"),
        ok()
    );
    assert_eq!(
        guest.read("/root/.ssh/authorized_keys"),
        b"ssh-rsa AAAA,b c\n\0\xff"
    );
    assert_eq!(guest.file_inject("/etc/a,b", b"x,y"), ok());
    assert_eq!(guest.read("/etc/a,b"), b"x,y");
    // Other keys are ignored; padding may be missing, whitespace is skipped.
    let value = serde_json::json!({
        "b64_path": "L2V0Yy9t\nb3Rk",
        "b64_file": "aGk",
        "extra": 1,
    });
    assert_eq!(guest.file_inject_raw(&value.to_string()), ok());
    assert_eq!(guest.read("/etc/motd"), b"hi");
}

#[test]
fn empty_contents_make_an_empty_file() {
    let guest = Guest::new();
    assert_eq!(guest.injectfile("/etc/empty", b""), ok());
    assert_eq!(guest.read("/etc/empty"), b"");
}

// Refusals: each answers 500 and changes nothing anywhere (`refused` is in
// `tests.rs`).

#[test]
fn bad_values_are_refused_with_the_seeds_message_or_a_clear_one() {
    let guest = Guest::new();
    guest.write("/etc/motd", b"old", 0o644);
    for bad in [
        "\"!!\"",
        "\"L2V0Yy9tb3RkLHg=!\"",
        "\"a\"",
        "42",
        "null",
        "{}",
        "",
    ] {
        refused(&guest, |g| g.injectfile_raw(bad), BAD_BASE64);
    }
    refused(
        &guest,
        |g| g.injectfile_raw(&format!("\"{}\"", b64(b"/etc/motd"))),
        NO_COMMA,
    );
    for bad in [
        "\"x\"",
        "[]",
        "{\"b64_path\": \"L2V0Yy9tb3Rk\"}",
        "{\"b64_file\": \"eA==\"}",
        "{\"b64_path\": 1, \"b64_file\": \"eA==\"}",
        "",
    ] {
        refused(&guest, |g| g.file_inject_raw(bad), BAD_OBJECT);
    }
    refused(
        &guest,
        |g| g.file_inject_raw("{\"b64_path\": \"L2V0Yy9tb3Rk\", \"b64_file\": \"%%\"}"),
        BAD_BASE64,
    );
    refused(
        &guest,
        |g| g.injectfile_raw(&injectfile_value(b"/etc/\xff", b"x")),
        PATH_NOT_UTF8,
    );
}

#[test]
fn paths_that_are_relative_empty_or_climb_are_refused() {
    let guest = Guest::new();
    guest.write("/etc/motd", b"old", 0o644);
    for (path, message) in [
        ("etc/motd", "Refusing path etc/motd: it is not absolute"),
        ("motd", "Refusing path motd: it is not absolute"),
        ("./etc/motd", "Refusing path ./etc/motd: it is not absolute"),
        ("", "Refusing the path: it is empty"),
        (
            "/etc/../etc/motd",
            "Refusing path /etc/../etc/motd: it contains a .. component",
        ),
        ("/..", "Refusing path /..: it contains a .. component"),
        (
            "/../../etc/motd",
            "Refusing path /../../etc/motd: it contains a .. component",
        ),
        (
            "/etc/motd/..",
            "Refusing path /etc/motd/..: it contains a .. component",
        ),
        ("/", "Refusing path /: it names a directory, not a file"),
        (
            "/etc/",
            "Refusing path /etc/: it names a directory, not a file",
        ),
        (
            "/etc/.",
            "Refusing path /etc/.: it names a directory, not a file",
        ),
        ("/etc/\0x", "Refusing path /etc/\0x: it contains a NUL byte"),
    ] {
        refused(&guest, |g| g.injectfile(path, b"new"), message);
        refused(&guest, |g| g.file_inject(path, b"new"), message);
    }
}

#[test]
fn paths_are_normalised() {
    let guest = Guest::new();
    assert_eq!(guest.injectfile("//etc/./ssh//sshd_config", b"x"), ok());
    assert_eq!(guest.read("/etc/ssh/sshd_config"), b"x");
}

#[test]
fn what_is_not_a_directory_on_the_way_or_not_a_regular_file_at_the_end_is_refused() {
    let guest = Guest::new();
    guest.write("/etc/motd", b"old", 0o644);
    guest.mkdir("/etc/ssh");
    guest.symlink("/etc/link-to-ssh", "ssh");
    refused(
        &guest,
        |g| g.injectfile("/etc/motd/x", b"new"),
        "Refusing path /etc/motd/x: /etc/motd is not a directory",
    );
    refused(
        &guest,
        |g| g.injectfile("/etc/ssh", b"new"),
        "Refusing path /etc/ssh: it is a directory",
    );
    refused(
        &guest,
        |g| g.injectfile("/etc/link-to-ssh", b"new"),
        "Refusing path /etc/link-to-ssh: it leads to /etc/ssh, a directory",
    );
    nix::unistd::mkfifo(
        &guest.host("/etc/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    refused(
        &guest,
        |g| g.injectfile("/etc/fifo", b"new"),
        "Refusing path /etc/fifo: it is not a regular file",
    );
}

#[test]
fn contents_over_one_mib_are_refused_and_one_mib_is_written() {
    let guest = Guest::new();
    let message = format!(
        "Refusing the file: its contents are {} bytes, over the limit of 1048576 bytes (1 MiB)",
        MAX_CONTENTS + 1
    );
    refused(
        &guest,
        |g| g.injectfile("/var/big", &vec![b'a'; MAX_CONTENTS + 1]),
        &message,
    );
    refused(
        &guest,
        |g| g.file_inject("/var/big", &vec![b'a'; MAX_CONTENTS + 1]),
        &message,
    );
    assert_eq!(
        guest.injectfile("/var/big", &vec![b'a'; MAX_CONTENTS]),
        ok()
    );
    assert_eq!(guest.read("/var/big").len(), MAX_CONTENTS);
}

// Symbolic links: followed while they stay under the root, refused otherwise.

#[test]
fn a_symlink_inside_the_root_is_followed() {
    let guest = Guest::new();
    guest.write("/srv/keys/authorized_keys", b"old", 0o600);
    // A relative directory link, an absolute one (under the root's path, as
    // every absolute path is when the root is `/`), and a last component
    // that is a link.
    guest.symlink("/root/.ssh", "../srv/keys");
    assert_eq!(guest.injectfile("/root/.ssh/authorized_keys", b"one"), ok());
    assert_eq!(guest.read("/srv/keys/authorized_keys"), b"one");
    assert!(fs::symlink_metadata(guest.host("/root/.ssh"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&guest.host("/srv/keys/authorized_keys")), 0o600);

    guest.symlink("/home/user/.ssh", guest.host("/srv/keys"));
    assert_eq!(
        guest.injectfile("/home/user/.ssh/authorized_keys", b"two"),
        ok()
    );
    assert_eq!(guest.read("/srv/keys/authorized_keys"), b"two");

    guest.symlink("/etc/motd", guest.host("/srv/motd.real"));
    assert_eq!(
        guest.injectfile("/etc/motd", b"new file at the target"),
        ok()
    );
    assert_eq!(guest.read("/srv/motd.real"), b"new file at the target");
    assert!(fs::symlink_metadata(guest.host("/etc/motd"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A dangling link: its target and the target's directories are created.
    guest.symlink("/etc/dangling", "../opt/new/dir/file");
    assert_eq!(guest.injectfile("/etc/dangling", b"x"), ok());
    assert_eq!(guest.read("/opt/new/dir/file"), b"x");
    assert_eq!(mode(&guest.host("/opt/new/dir")), 0o755);
}

#[test]
fn a_symlink_leading_outside_the_root_is_refused_and_nothing_written() {
    let guest = Guest::new();
    let outside = guest.outside();
    let outside_before = snapshot(&outside);
    guest.mkdir("/etc");

    // An absolute link to a directory outside the root.
    guest.symlink("/etc/x", &outside);
    // A guest-absolute target: in a sandbox root, /etc is this machine's.
    guest.symlink("/etc/y", "/etc");
    // Relative chains that climb above the root, directly, as the last
    // component, and through another link.
    guest.symlink("/a/b/up", "../../../../../../..");
    guest.symlink("/a/last", "../../outside/secret");
    guest.symlink("/c/one", "../c/two/../../..");
    guest.symlink("/c/two", "../..");
    let above = format!(
        "a symbolic link on the way leads above {}",
        guest.root.display()
    );
    for (path, why) in [
        (
            "/etc/x/secret",
            format!(
                "the symbolic link /etc/x leads outside the root, to {}",
                outside.display()
            ),
        ),
        (
            "/etc/y/passwd",
            "the symbolic link /etc/y leads outside the root, to /etc".to_owned(),
        ),
        ("/a/b/up/outside/etc/passwd", above.clone()),
        ("/a/last", above.clone()),
        ("/c/one/outside/new", above.clone()),
    ] {
        let message = format!("Refusing path {path}: {why}");
        refused(&guest, |g| g.injectfile(path, b"escaped"), &message);
    }
    assert_eq!(snapshot(&outside), outside_before);
    assert!(!guest.dir.path().join("new").exists());
}

#[test]
fn symlink_loops_are_refused() {
    let guest = Guest::new();
    guest.symlink("/etc/a", "b");
    guest.symlink("/etc/b", "a");
    guest.symlink("/etc/self", "self/x");
    let message = "too many levels of symbolic links";
    refused(
        &guest,
        |g| g.injectfile("/etc/a", b"x"),
        &format!("Refusing path /etc/a: {message}"),
    );
    refused(
        &guest,
        |g| g.injectfile("/etc/self/y", b"x"),
        &format!("Refusing path /etc/self/y: {message}"),
    );
    // 40 links are followed, 41 are not: /d/l1 -> l2 -> ... -> l40 -> file.
    guest.mkdir("/d");
    for i in 0..MAX_LINKS {
        guest.symlink(&format!("/d/l{i}"), format!("l{}", i + 1));
    }
    guest.symlink(&format!("/d/l{MAX_LINKS}"), "file");
    assert_eq!(guest.injectfile("/d/l2", b"39 links"), ok());
    assert_eq!(guest.injectfile("/d/l1", b"40 links"), ok());
    assert_eq!(guest.read("/d/file"), b"40 links");
    refused(
        &guest,
        |g| g.injectfile("/d/l0", b"41 links"),
        &format!("Refusing path /d/l0: {message}"),
    );
}
