//! The mutating QGA commands end to end, against nova-agent only (they never
//! go to qemu-ga), each test in a sandbox root of its own with
//! `apply = false`: guest-set-user-password through the shadow writer,
//! guest-ssh-*-authorized-keys with their modes and owners, the
//! fsfreeze state machine with its gate, its persistence and `thaw_after`,
//! and guest-shutdown's silence.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use nova_agent_tests::password_host::crypt_verifies;
use nova_agent_tests::qga::{qga_sandbox, Ours, Peer, QgaClient, Reply};
use nova_agent_tests::{plugin, running_as_root};
use serde_json::{json, Value};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
    alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
    bob:x:1001:1001::/home/bob:/bin/sh\n";

const SHADOW: &str = "root:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7:19000:0:99999:7:::\n\
    daemon:*:19000:0:99999:7:::\n\
    alice:$6$rounds=8000$oldsalt$oldhash:19001:0:99999:7:::\n\
    bob:!:19002:0:99999:7:::\n";

/// A sandbox root with passwd, shadow and the users' homes (owned by them
/// when the test runs as root), `extra` appended to the config, `plugins`
/// added to the QGA ones.
fn guest_with(extra: &str, plugins: &[&str]) -> Ours {
    let sandbox = qga_sandbox(&[], extra);
    for name in plugins {
        sandbox.add_plugin(&plugin(name));
    }
    let root = &sandbox.root;
    for dir in ["etc", "root", "home/alice", "home/bob"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("etc/shadow"), SHADOW).unwrap();
    std::fs::set_permissions(
        root.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    if running_as_root() {
        for (home, id) in [("home/alice", 1000), ("home/bob", 1001)] {
            std::os::unix::fs::chown(root.join(home), Some(id), Some(id)).unwrap();
        }
    }
    Ours::serve(sandbox)
}

fn guest() -> Ours {
    guest_with("", &[])
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn call(client: &mut QgaClient, name: &str, arguments: Value) -> Reply {
    client.execute(name, Some(arguments))
}

fn generic(desc: &str) -> Value {
    json!({"error": {"class": "GenericError", "desc": desc}})
}

fn shadow(guest: &Ours) -> String {
    std::fs::read_to_string(guest.sandbox.root.join("etc/shadow")).unwrap()
}

/// The shadow text with `user`'s line replaced by `line`.
fn shadow_with(user: &str, line: &str) -> String {
    SHADOW
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{user}:")) {
                line
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn hash_of(shadow: &str, user: &str) -> String {
    let line = shadow
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap();
    line.split(':').nth(1).unwrap().to_owned()
}

#[test]
fn a_plain_password_is_hashed_in_the_users_scheme_and_nothing_else_changes() {
    let guest = guest();
    let mut client = guest.connect();
    let password = "Qga pässword: with spaces & 'quotes'";
    let reply = call(
        &mut client,
        "guest-set-user-password",
        json!({"username": "alice", "password": b64(password.as_bytes()), "crypted": false}),
    );
    assert_eq!(reply.json, json!({"return": {}}), "{}", guest.agent.log());
    let text = shadow(&guest);
    let hash = hash_of(&text, "alice");
    assert!(hash.starts_with("$6$rounds=8000$"), "scheme kept: {hash}");
    assert!(crypt_verifies(password, &hash), "{hash}");
    assert!(!crypt_verifies("wrong", &hash));
    assert_eq!(
        text,
        shadow_with("alice", &format!("alice:{hash}:19001:0:99999:7:::"))
    );
    assert!(
        !guest.agent.log().contains(password),
        "the password reached the log"
    );
    assert!(!guest.agent.log().contains(&b64(password.as_bytes())));

    // A locked account without a hash gets the default scheme.
    let reply = call(
        &mut client,
        "guest-set-user-password",
        json!({"username": "bob", "password": b64(b"bob's"), "crypted": false}),
    );
    assert!(reply.is_return(), "{}", reply.text());
    let bob = hash_of(&shadow(&guest), "bob");
    assert!(crypt_verifies("bob's", &bob), "{bob}");
}

#[test]
fn a_crypted_password_is_set_as_given() {
    let guest = guest();
    let mut client = guest.connect();
    // `openssl passwd -6 -salt saltsalt 'crypted secret'`
    let hash = "$6$saltsalt$b.gSL77R3mmfy9SHHhTDd9jqopnIlyyt0ihRQBxwG.0vaVjbhvlmLQxnYy/vFciUFh2NNMkwjluPa/zG8K2mD0";
    assert!(crypt_verifies("crypted secret", hash));
    let reply = call(
        &mut client,
        "guest-set-user-password",
        json!({"username": "root", "password": b64(hash.as_bytes()), "crypted": true}),
    );
    assert_eq!(reply.json, json!({"return": {}}));
    assert_eq!(
        shadow(&guest),
        shadow_with("root", &format!("root:{hash}:19000:0:99999:7:::"))
    );
}

#[test]
fn refused_passwords_leave_the_shadow_file_alone() {
    let guest = guest();
    let mut client = guest.connect();
    for (username, password, desc) in [
        (
            "alice",
            "!!not base64".to_owned(),
            Some("Base64 data contains invalid characters"),
        ),
        (
            "alice",
            b64(b"two\nlines"),
            Some("forbidden characters in raw password"),
        ),
        (
            "al:ice",
            b64(b"fine"),
            Some("forbidden characters in username"),
        ),
        (
            "al\nice",
            b64(b"fine"),
            Some("forbidden characters in username"),
        ),
        ("nosuchuser", b64(b"fine"), None),
    ] {
        let reply = call(
            &mut client,
            "guest-set-user-password",
            json!({"username": username, "password": password, "crypted": false}),
        );
        match desc {
            Some(desc) => assert_eq!(reply.json, generic(desc), "{username:?}"),
            None => assert_eq!(
                reply.error_class(),
                Some("GenericError"),
                "{}",
                reply.text()
            ),
        }
        assert_eq!(shadow(&guest), SHADOW, "{username:?}");
    }
}

fn ssh(client: &mut QgaClient, command: &str, arguments: Value) -> Value {
    let reply = call(client, command, arguments);
    reply.ret().clone()
}

fn keys_of(client: &mut QgaClient, user: &str) -> Value {
    ssh(
        client,
        "guest-ssh-get-authorized-keys",
        json!({"username": user}),
    )["keys"]
        .clone()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn authorized_keys_are_added_once_removed_and_reset_with_the_right_modes_and_owner() {
    let guest = guest();
    let mut client = guest.connect();
    let (k1, k2, k3) = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne alice@one",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQTwo alice@two",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhThree alice@three",
    );
    let add = "guest-ssh-add-authorized-keys";
    assert_eq!(
        ssh(
            &mut client,
            add,
            json!({"username": "alice", "keys": [k1, k2]})
        ),
        json!({})
    );
    // Keys already present are not added twice.
    ssh(
        &mut client,
        add,
        json!({"username": "alice", "keys": [k2, k3], "reset": false}),
    );
    let dir = guest.sandbox.root.join("home/alice/.ssh");
    let file = dir.join("authorized_keys");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{k1}\n{k2}\n{k3}\n")
    );
    // qemu-ga lists the file's keys last line first (QAPI_LIST_PREPEND).
    assert_eq!(keys_of(&mut client, "alice"), json!([k3, k2, k1]));
    assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
    if running_as_root() {
        for path in [&dir, &file] {
            let meta = std::fs::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{}", path.display());
        }
    } else {
        eprintln!("not root: the agent cannot chown, owners not checked");
    }

    let remove = "guest-ssh-remove-authorized-keys";
    assert_eq!(
        ssh(
            &mut client,
            remove,
            json!({"username": "alice", "keys": [k1, k3]})
        ),
        json!({})
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{k2}\n"));

    ssh(
        &mut client,
        add,
        json!({"username": "alice", "keys": [k3], "reset": true}),
    );
    assert_eq!(keys_of(&mut client, "alice"), json!([k3]));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{k3}\n"));
    assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));

    // Refused: nothing changes.
    for keys in [json!(["#comment"]), json!(["ssh-rsa AAAA\nssh-rsa BBBB"])] {
        let reply = call(&mut client, add, json!({"username": "alice", "keys": keys}));
        assert_eq!(
            reply.error_class(),
            Some("GenericError"),
            "{}",
            reply.text()
        );
    }
    let reply = call(
        &mut client,
        add,
        json!({"username": "alice", "keys": ["#x"]}),
    );
    assert_eq!(reply.json, generic("invalid OpenSSH public key: '#x'"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{k3}\n"));
}

#[test]
fn get_authorized_keys_skips_comments_and_blank_lines_and_roots_home_is_under_the_root() {
    let guest = guest();
    let ssh_dir = guest.sandbox.root.join("root/.ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(
        ssh_dir.join("authorized_keys"),
        "# managed by hand\n\nssh-rsa AAAAB3root root@host\n   \n  ssh-ed25519 AAAAC3x  \n",
    )
    .unwrap();
    let mut client = guest.connect();
    assert_eq!(
        keys_of(&mut client, "root"),
        json!(["ssh-ed25519 AAAAC3x", "ssh-rsa AAAAB3root root@host"])
    );
    let reply = call(
        &mut client,
        "guest-ssh-get-authorized-keys",
        json!({"username": "nosuchuser"}),
    );
    assert_eq!(reply.error_class(), Some("GenericError"));
}

fn status(client: &mut QgaClient) -> Value {
    client.execute("guest-fsfreeze-status", None).ret().clone()
}

fn frozen_refusal(command: &str) -> Value {
    json!({"error": {"class": "CommandNotFound",
        "desc": format!("Command {command} has been disabled: the agent is in frozen state")}})
}

/// The six commands rule 12 allows while frozen, and what they answer.
fn assert_only_the_six_are_served(client: &mut QgaClient) {
    assert_eq!(
        client.execute("guest-ping", None).json,
        json!({"return": {}})
    );
    assert!(client.execute("guest-info", None).ret()["supported_commands"].is_array());
    assert_eq!(
        client.execute("guest-sync", Some(json!({"id": 5}))).json,
        json!({"return": 5})
    );
    let delimited = client.execute("guest-sync-delimited", Some(json!({"id": 6})));
    assert!(
        delimited.delimited && delimited.json == json!({"return": 6}),
        "{}",
        delimited.text()
    );
    assert_eq!(status(client), "frozen");
    for (command, arguments) in [
        ("guest-get-osinfo", None),
        ("guest-get-time", None),
        ("guest-fsfreeze-freeze", None),
        (
            "guest-ssh-get-authorized-keys",
            Some(json!({"username": "alice"})),
        ),
        ("guest-shutdown", Some(json!({"mode": "halt"}))),
        ("guest-nonexistent-but-gated", None),
    ] {
        let reply = client.execute(command, arguments);
        if command == "guest-nonexistent-but-gated" {
            assert_eq!(
                reply.error_class(),
                Some("CommandNotFound"),
                "{}",
                reply.text()
            );
        } else {
            assert_eq!(reply.json, frozen_refusal(command));
        }
    }
}

#[test]
fn freeze_gates_every_command_but_six_and_writes_nothing_until_thawed() {
    let guest = guest_with("", &["file-inject"]);
    let mut client = guest.connect();
    assert_eq!(status(&mut client), "thawed");
    let frozen = client.execute("guest-fsfreeze-freeze", None);
    assert!(frozen.ret().is_i64(), "{}", frozen.text());
    assert_only_the_six_are_served(&mut client);

    // No file is written while frozen: not a shadow through QGA ...
    let password = json!({"username": "alice", "password": b64(b"x"), "crypted": false});
    let reply = client.execute("guest-set-user-password", Some(password.clone()));
    assert_eq!(reply.json, frozen_refusal("guest-set-user-password"));
    assert_eq!(shadow(&guest), SHADOW);
    // ... nor a file through a Nova command on the unix socket.
    let contents = base64::engine::general_purpose::STANDARD.encode("/etc/frozen-test,hello");
    let nova = guest.agent.request(&format!(
        r#"{{"name": "injectfile", "value": "{contents}"}}"#
    ));
    assert_eq!(
        nova,
        nova_agent_tests::nova(
            "404",
            "Command 'injectfile' is disabled: the agent is in frozen state"
        )
    );
    assert!(
        !guest.sandbox.root.join("etc/frozen-test").exists(),
        "written while frozen"
    );

    let thawed = client.execute("guest-fsfreeze-thaw", None);
    assert!(thawed.ret().is_i64(), "{}", thawed.text());
    assert_eq!(status(&mut client), "thawed");
    // §5.1: with apply = false each ioctl is logged instead of issued.
    let log = guest.agent.log();
    for ioctl in ["FIFREEZE", "FITHAW"] {
        assert!(
            log.contains(&format!("not issuing {ioctl} on ")),
            "no {ioctl} logged (apply = false); log:\n{log}"
        );
    }
    assert!(client.execute("guest-get-osinfo", None).is_return());
    assert!(client
        .execute("guest-set-user-password", Some(password))
        .is_return());
    assert_ne!(shadow(&guest), SHADOW);
    // Thawing a thawed guest is not an error.
    assert!(client.execute("guest-fsfreeze-thaw", None).ret().is_i64());
}

#[test]
fn the_frozen_state_survives_an_agent_restart() {
    let guest = guest();
    let mut client = guest.connect();
    assert!(client.execute("guest-fsfreeze-freeze", None).is_return());
    drop(client);
    let state = list(&guest.sandbox.path().join("state"));
    assert!(!state.is_empty(), "the frozen flag is kept in state_dir");
    let guest = guest.restart();
    let mut client = guest.connect();
    assert_only_the_six_are_served(&mut client);
    assert!(client.execute("guest-fsfreeze-thaw", None).is_return());
    assert_eq!(status(&mut client), "thawed");
    drop(client);
    let guest = guest.restart();
    assert_eq!(status(&mut guest.connect()), "thawed", "{state:?}");
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(list(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn thaw_after_thaws_a_guest_whose_host_never_came_back() {
    let guest = guest_with("\n[plugins.qga-fs]\nthaw_after = \"2s\"\n", &[]);
    let mut client = guest.connect();
    assert!(client.execute("guest-fsfreeze-freeze", None).is_return());
    assert_eq!(status(&mut client), "frozen");
    drop(client);
    guest.agent.wait_for_log("without a thaw from the host");
    let log = guest.agent.log();
    let warning = log
        .lines()
        .find(|l| l.contains("without a thaw from the host"))
        .unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    let mut client = guest.connect();
    assert_eq!(status(&mut client), "thawed", "{log}");
    assert!(client.execute("guest-get-osinfo", None).is_return());
}

#[test]
fn guest_shutdown_writes_no_reply_in_any_mode_and_logs_what_it_would_run() {
    let guest = guest();
    let mut client = guest.connect();
    for (mode, flag) in [
        (Some("powerdown"), "-P"),
        (Some("reboot"), "-r"),
        (Some("halt"), "-H"),
        (None, "-P"),
    ] {
        let arguments = mode.map(|m| json!({"mode": m}));
        let before = guest
            .agent
            .log()
            .matches("not running (apply = false)")
            .count();
        client.send(
            nova_agent_tests::qga::execute_line("guest-shutdown", arguments, Some(json!(mode)))
                .as_bytes(),
        );
        client.assert_nothing_pending();
        guest
            .agent
            .wait_for_logged("not running (apply = false)", before + 1);
        let log = guest.agent.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("not running (apply = false)"))
            .unwrap();
        assert!(
            line.contains("shutdown") && line.contains(flag),
            "{mode:?}: {line}"
        );
    }
    // An error is still a reply.
    let reply = call(&mut client, "guest-shutdown", json!({"mode": "sideways"}));
    assert_eq!(
        reply.json,
        generic("mode is invalid (valid values are: halt|powerdown|reboot")
    );
}
