//! Tests of the allow list, the config and the writing: backups, modes,
//! directories.

use super::*;

// The allow list.

#[test]
fn the_allow_list_is_matched_by_whole_components() {
    let guest = Guest::with_config(r#"{"allow": ["/root/.ssh/", "/etc", "/srv//keys/./"]}"#);
    guest.mkdir("/etc");
    for path in [
        "/root/.ssh/authorized_keys",
        "/etc/x",
        "/etc/ssh/sshd_config",
        "/srv/keys/k",
        "//root/./.ssh/new",
    ] {
        assert_eq!(guest.injectfile(path, b"ok"), ok(), "{path}");
    }
    for path in ["/etcetera/x", "/root/.sshx", "/root/x", "/srv/k", "/x"] {
        refused(
            &guest,
            |g| g.file_inject(path, b"no"),
            &format!("Path {path} is not in [plugins.file-inject] allow"),
        );
    }
    refused(
        &guest,
        |g| g.injectfile("/tmp/./x", b"no"),
        "Path /tmp/x is not in [plugins.file-inject] allow",
    );
}

#[test]
fn the_allow_list_applies_to_where_symlinks_lead() {
    let guest = Guest::with_config(r#"{"allow": ["/root/.ssh"]}"#);
    guest.mkdir("/etc");
    guest.mkdir("/root/keys");
    guest.symlink("/root/.ssh", "../etc");
    refused(
        &guest,
        |g| g.injectfile("/root/.ssh/passwd", b"no"),
        "Path /root/.ssh/passwd leads to /etc/passwd, which is not in [plugins.file-inject] allow",
    );
}

#[test]
fn an_empty_allow_list_refuses_everything() {
    let guest = Guest::with_config(r#"{"allow": []}"#);
    refused(
        &guest,
        |g| g.injectfile("/root/.ssh/authorized_keys", b"no"),
        "Path /root/.ssh/authorized_keys is not in [plugins.file-inject] allow",
    );
    let guest = Guest::with_config(r#"{"allow": ["/"]}"#);
    assert_eq!(guest.injectfile("/anything", b"yes"), ok());
}

#[test]
fn the_config_refuses_unknown_keys_and_bad_prefixes() {
    assert!(Config::parse(json!({})).is_ok());
    assert!(Config::parse(json!({"allow": null})).is_ok());
    let error = |json: &str| {
        let table = serde_json::from_str(json).unwrap();
        Config::parse(table).unwrap_err().message().to_owned()
    };
    assert_eq!(
        error(r#"{"alow": ["/etc"]}"#),
        "[plugins.file-inject] alow: unknown field `alow`, expected `allow`"
    );
    assert_eq!(
        error(r#"{"allow": "/etc"}"#),
        "[plugins.file-inject] allow: invalid type: string \"/etc\", expected a sequence"
    );
    assert_eq!(
        error(r#"{"allow": ["etc/"]}"#),
        "[plugins.file-inject] allow: \"etc/\" is not an absolute path"
    );
    assert_eq!(
        error(r#"{"allow": ["/etc/../root"]}"#),
        "[plugins.file-inject] allow: \"/etc/../root\" has a `..` component"
    );
}

// Writing: backups, modes, directories.

#[test]
fn one_backup_is_kept_and_replaced_by_the_next_injection() {
    let guest = Guest::new();
    assert_eq!(guest.injectfile("/etc/motd", b"first"), ok());
    assert!(
        !guest.host("/etc/motd.bak").exists(),
        "a new file has no backup"
    );
    assert_eq!(guest.injectfile("/etc/motd", b"second"), ok());
    assert_eq!(guest.read("/etc/motd.bak"), b"first");
    assert_eq!(guest.injectfile("/etc/motd", b"third"), ok());
    assert_eq!(guest.read("/etc/motd"), b"third");
    assert_eq!(guest.read("/etc/motd.bak"), b"second");
    let names: Vec<String> = fs::read_dir(guest.host("/etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["motd", "motd.bak"], "no temporary file is left");
}

#[test]
fn the_backup_is_the_old_file_with_its_mode() {
    let guest = Guest::new();
    guest.write("/root/.ssh/authorized_keys", b"old key", 0o600);
    guest.write("/root/.ssh/authorized_keys.bak", b"older key", 0o644);
    assert_eq!(
        guest.injectfile("/root/.ssh/authorized_keys", b"new key"),
        ok()
    );
    assert_eq!(guest.read("/root/.ssh/authorized_keys.bak"), b"old key");
    assert_eq!(mode(&guest.host("/root/.ssh/authorized_keys.bak")), 0o600);
    assert_eq!(mode(&guest.host("/root/.ssh/authorized_keys")), 0o600);
    let (old, new) = (
        fs::metadata(guest.host("/root/.ssh/authorized_keys.bak")).unwrap(),
        fs::metadata(guest.host("/root/.ssh/authorized_keys")).unwrap(),
    );
    assert_ne!(old.ino(), new.ino());
    assert_eq!((old.nlink(), new.nlink()), (1, 1));
}

#[test]
fn a_backup_that_cannot_be_made_leaves_the_file_alone() {
    let guest = Guest::new();
    guest.write("/etc/motd", b"old", 0o644);
    guest.mkdir("/etc/motd.bak/full");
    let before = guest.snapshot();
    let error = guest.injectfile("/etc/motd", b"new").unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert!(
        error
            .message
            .starts_with("Could not keep /etc/motd as /etc/motd.bak, nothing written: "),
        "{}",
        error.message
    );
    assert_eq!(guest.snapshot(), before);
}

#[test]
fn a_new_file_is_0644_and_missing_parents_are_created_0755() {
    let guest = Guest::new();
    assert_eq!(guest.injectfile("/root/.ssh/authorized_keys", b"k"), ok());
    assert_eq!(mode(&guest.host("/root/.ssh/authorized_keys")), 0o644);
    assert_eq!(mode(&guest.host("/root")), 0o755);
    assert_eq!(mode(&guest.host("/root/.ssh")), 0o755);
    let metadata = fs::metadata(guest.host("/root/.ssh/authorized_keys")).unwrap();
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    assert_eq!(
        (metadata.uid(), metadata.gid()),
        (uid.as_raw(), gid.as_raw())
    );

    // An existing directory's mode is left as it is.
    guest.mkdir("/srv");
    fs::set_permissions(guest.host("/srv"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(guest.injectfile("/srv/a/b", b"k"), ok());
    assert_eq!(mode(&guest.host("/srv")), 0o700);
    assert_eq!(mode(&guest.host("/srv/a")), 0o755);
}

#[test]
fn an_existing_files_special_bits_and_owner_are_kept() {
    let guest = Guest::new();
    guest.write("/usr/bin/tool", b"old", 0o644);
    let host = guest.host("/usr/bin/tool");
    if running_as_root() {
        std::os::unix::fs::chown(&host, Some(2), Some(3)).unwrap();
    } else {
        eprintln!("not root: the ownership half of this test is skipped");
    }
    // After chown, which clears the setuid bit.
    fs::set_permissions(&host, fs::Permissions::from_mode(0o4750)).unwrap();
    assert_eq!(guest.injectfile("/usr/bin/tool", b"new"), ok());
    assert_eq!(mode(&host), 0o4750);
    if running_as_root() {
        let metadata = fs::metadata(&host).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (2, 3));
    }
}

#[test]
fn the_plugin_checks_its_table_at_init_and_writes_under_the_hosts_root() {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};

    let guest = Guest::new();
    let host = || TestHost::new(guest.root.display().to_string());
    let refused = TestAgent::new(host())
        .with_plugin(crate::init, json!({"allow": ["etc"]}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.file-inject] allow: \"etc\" is not an absolute path"
    );
    let agent = TestAgent::new(host())
        .with_plugin(crate::init, json!({"allow": ["/etc/ssh"]}))
        .unwrap();
    let outcome = agent.run("injectfile", &injectfile_value(b"/etc/ssh/key", b"k"));
    assert_eq!(outcome.result, Ok(r#""""#.to_owned()));
    assert_eq!(guest.read("/etc/ssh/key"), b"k");
    let outcome = agent.run("injectfile", &injectfile_value(b"/etc/motd", b"m"));
    assert_eq!(
        outcome.result,
        Err(CommandError::failed(
            "Path /etc/motd is not in [plugins.file-inject] allow"
        ))
    );
}
