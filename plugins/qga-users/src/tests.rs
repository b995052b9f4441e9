//! The four commands through the agent's dispatch, against a sandbox root:
//! `<root>/etc/passwd`, `<root>/etc/shadow` and home directories. The error
//! texts are qemu-ga 7.2's where it has one (taken from the real qemu-ga).

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::geteuid;
use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_shadow::{crypt, hash_field};
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
    alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
    bob:x:1001:1002::/home/bob/:/bin/sh\n\
    carol:x:1003:1003::/home/carol:/bin/sh\n\
    nohash:x:1004:1004::/home/nohash:/bin/sh\n";

const SHADOW: &str = "root:$6$rootsalt$roothash:19000:0:99999:7:::\n\
    alice:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7:19001:0:99999:7:::\n\
    bob:!:19002::::::\n\
    carol:*:19003::::::\n";

struct Guest {
    _dir: tempfile::TempDir,
    root: PathBuf,
    agent: TestAgent,
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("home/alice")).unwrap();
        std::fs::create_dir_all(root.join("srv/carol")).unwrap();
        symlink("/srv/carol", root.join("home/carol")).unwrap();
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.join("etc/shadow"), SHADOW).unwrap();
        let host = TestHost::new(root.display().to_string());
        let agent = TestAgent::new(host)
            .with_plugin(crate::init, json!({}))
            .unwrap();
        Guest {
            _dir: dir,
            root,
            agent,
        }
    }

    fn run(&self, command: &str, arguments: Value) -> Result<Value, CommandError> {
        self.agent.run(command, &arguments.to_string()).into_value()
    }

    fn set_password(&self, user: &str, base64: &str, crypted: bool) -> Result<Value, CommandError> {
        let arguments = json!({"username": user, "password": base64, "crypted": crypted});
        self.run("guest-set-user-password", arguments)
    }

    fn add(&self, user: &str, keys: &[&str], reset: Option<bool>) -> Result<Value, CommandError> {
        let mut arguments = json!({"username": user, "keys": keys});
        if let Some(reset) = reset {
            arguments["reset"] = json!(reset);
        }
        self.run("guest-ssh-add-authorized-keys", arguments)
    }

    fn remove(&self, user: &str, keys: &[&str]) -> Result<Value, CommandError> {
        let arguments = json!({"username": user, "keys": keys});
        self.run("guest-ssh-remove-authorized-keys", arguments)
    }

    fn get(&self, user: &str) -> Result<Value, CommandError> {
        self.run("guest-ssh-get-authorized-keys", json!({"username": user}))
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn text(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap()
    }
}

fn ok() -> Result<Value, CommandError> {
    Ok(json!({}))
}

fn error(message: &str) -> Result<Value, CommandError> {
    Err(CommandError::failed(message))
}

/// The base64 of `text`, as libvirt sends a password.
fn b64(text: &str) -> String {
    nova_agent_support::glib_base64::encode(text.as_bytes())
}

/// `SHADOW` with `user`'s hash field replaced by `hash`.
fn shadow_with(user: &str, hash: &str) -> String {
    let range = hash_field(SHADOW.as_bytes(), user).unwrap();
    format!("{}{hash}{}", &SHADOW[..range.start], &SHADOW[range.end..])
}

fn hash_of(shadow: &str, user: &str) -> String {
    shadow[hash_field(shadow.as_bytes(), user).unwrap()].to_owned()
}

#[test]
fn a_plain_password_is_hashed_with_the_scheme_kept_and_nothing_else_changes() {
    for (user, prefix) in [("alice", "$y$j9T$"), ("bob", "$6$"), ("root", "$6$")] {
        let guest = Guest::new();
        assert_eq!(guest.set_password(user, &b64("N3w pass:word"), false), ok());
        let shadow = guest.text("etc/shadow");
        let hash = hash_of(&shadow, user);
        assert!(hash.starts_with(prefix), "{user}: {hash}");
        assert!(crypt::verify("N3w pass:word", &hash), "{user}: {hash}");
        assert_eq!(
            shadow,
            shadow_with(user, &hash),
            "only {user}'s hash changed"
        );
    }
}

#[test]
fn a_crypted_password_is_installed_as_given() {
    let guest = Guest::new();
    let hash = crypt::hash(b"from the host", "$5$hostsalt").unwrap();
    assert_eq!(guest.set_password("carol", &b64(&hash), true), ok());
    assert_eq!(guest.text("etc/shadow"), shadow_with("carol", &hash));
    assert!(crypt::verify(
        "from the host",
        &hash_of(&guest.text("etc/shadow"), "carol")
    ));
    assert_eq!(
        guest.set_password("carol", &b64("$6$a:b"), true),
        error("forbidden characters in crypted password")
    );
    assert_eq!(guest.text("etc/shadow"), shadow_with("carol", &hash));
}

#[test]
fn password_checks_come_in_qemu_gas_order_with_its_texts() {
    let guest = Guest::new();
    for (user, base64, crypted, message) in [
        (
            "no:such",
            "!!",
            false,
            "Base64 data contains invalid characters",
        ),
        (
            "alice",
            "YW Jj",
            true,
            "Base64 data contains invalid characters",
        ),
        (
            "no:such",
            "YQpi",
            false,
            "forbidden characters in raw password",
        ),
        (
            "alice",
            "YQ==Cg==",
            true,
            "forbidden characters in raw password",
        ),
        ("no:such", "YWJj", false, "forbidden characters in username"),
        ("no\nsuch", "YWJj", true, "forbidden characters in username"),
        (
            "nosuch",
            "YWJj",
            false,
            "failed to lookup user 'nosuch': no such user in /etc/passwd",
        ),
        (
            "",
            "YWJj",
            false,
            "failed to lookup user '': no such user in /etc/passwd",
        ),
        (
            "nohash",
            "YWJj",
            false,
            "/etc/shadow has no entry for nohash",
        ),
        (
            "alice",
            &b64("a\0b"),
            false,
            "the password contains a NUL byte",
        ),
    ] {
        assert_eq!(
            guest.set_password(user, base64, crypted),
            error(message),
            "{user:?} {base64}"
        );
    }
    for (arguments, message) in [
        (
            json!({"username": "alice", "password": "YWJj"}),
            "Parameter 'crypted' is missing",
        ),
        (
            json!({"username": "alice", "crypted": true}),
            "Parameter 'password' is missing",
        ),
        (
            json!({"password": "YWJj", "crypted": true}),
            "Parameter 'username' is missing",
        ),
        (
            json!({"username": "alice", "password": "YWJj", "crypted": "no"}),
            "Invalid parameter type for 'crypted', expected: boolean",
        ),
        (
            json!({"username": "alice", "password": "YWJj", "crypted": true, "x": 1}),
            "Parameter 'x' is unexpected",
        ),
    ] {
        let answer = guest.run("guest-set-user-password", arguments);
        assert_eq!(answer, Err(CommandError::bad_arguments(message)));
    }
    assert_eq!(
        guest.text("etc/shadow"),
        SHADOW,
        "nothing written on errors"
    );
}

#[test]
fn neither_the_password_nor_its_base64_nor_the_hash_is_logged() {
    let guest = Guest::new();
    let crypted = "$6$LoggedSalt$SGFzaEJvZHlTaG91bGROb3RBcHBlYXI";
    let log = captured_log(|| {
        assert_eq!(
            guest.set_password("alice", &b64("Tr4ce-Secret"), false),
            ok()
        );
        assert_eq!(guest.set_password("bob", &b64(crypted), true), ok());
        let _ = guest.set_password("nosuch", &b64("Other-Secret"), false);
    });
    assert!(log.contains("alice's password set in /etc/shadow"), "{log}");
    let alice = hash_of(&guest.text("etc/shadow"), "alice");
    for secret in [
        "Tr4ce-Secret".to_owned(),
        b64("Tr4ce-Secret"),
        "Other-Secret".to_owned(),
        b64("Other-Secret"),
        crypted.to_owned(),
        b64(crypted),
        alice,
    ] {
        assert!(!log.contains(&secret), "{secret} in {log}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let metadata = std::fs::metadata(path).unwrap();
    (metadata.uid(), metadata.gid())
}

#[test]
fn add_creates_ssh_and_the_file_for_the_user_and_appends_only_new_keys() {
    let guest = Guest::new();
    assert_eq!(
        guest.add("alice", &["ssh-ed25519 AAAA k1", "ssh-rsa BBBB k2"], None),
        ok()
    );
    let ssh = guest.path("/home/alice/.ssh");
    let file = ssh.join("authorized_keys");
    assert_eq!(
        guest.text("/home/alice/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA k1\nssh-rsa BBBB k2\n"
    );
    assert_eq!((mode(&ssh), mode(&file)), (0o700, 0o600));
    if geteuid().is_root() {
        assert_eq!(owner(&ssh), (1000, 1000));
        assert_eq!(owner(&file), (1000, 1000));
    }
    let again = ["ssh-rsa BBBB k2", "ssh-dss CCCC k3", "ssh-dss CCCC k3", ""];
    assert_eq!(guest.add("alice", &again, Some(false)), ok());
    assert_eq!(
        guest.text("/home/alice/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA k1\nssh-rsa BBBB k2\nssh-dss CCCC k3\n"
    );
    assert_eq!(
        guest.get("alice"),
        Ok(json!({"keys": ["ssh-dss CCCC k3", "ssh-rsa BBBB k2", "ssh-ed25519 AAAA k1"]}))
    );
}

#[test]
fn reset_replaces_the_file_and_an_empty_reset_empties_it() {
    let guest = Guest::new();
    guest.add("bob", &[], None).unwrap_err(); // bob has no home directory
    std::fs::create_dir_all(guest.path("/home/bob/.ssh")).unwrap();
    std::fs::set_permissions(
        guest.path("/home/bob/.ssh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(
        guest.path("/home/bob/.ssh/authorized_keys"),
        "# mine\nold key\n",
    )
    .unwrap();
    assert_eq!(guest.add("bob", &["k1", "k2"], Some(true)), ok());
    assert_eq!(guest.text("/home/bob/.ssh/authorized_keys"), "k1\nk2\n");
    assert_eq!(
        mode(&guest.path("/home/bob/.ssh")),
        0o750,
        "an existing ~/.ssh is left as it is"
    );
    if geteuid().is_root() {
        assert_eq!(
            owner(&guest.path("/home/bob/.ssh/authorized_keys")),
            (1001, 1002)
        );
    }
    assert_eq!(guest.add("bob", &[], Some(true)), ok());
    assert_eq!(guest.text("/home/bob/.ssh/authorized_keys"), "");
    assert_eq!(guest.get("bob"), Ok(json!({"keys": []})));
}

#[test]
fn remove_drops_those_lines_only_and_a_missing_file_is_no_error() {
    let guest = Guest::new();
    assert_eq!(guest.remove("alice", &["k1"]), ok());
    assert!(!guest.path("/home/alice/.ssh").exists(), "nothing made");
    std::fs::create_dir(guest.path("/home/alice/.ssh")).unwrap();
    let before = "k1\nk1\n# a comment\n  k2  \nk3\n";
    std::fs::write(guest.path("/home/alice/.ssh/authorized_keys"), before).unwrap();
    assert_eq!(guest.remove("alice", &["k2"]), ok());
    assert_eq!(
        guest.text("/home/alice/.ssh/authorized_keys"),
        before,
        "lines match exactly"
    );
    assert_eq!(guest.remove("alice", &["k1", "k3"]), ok());
    assert_eq!(
        guest.text("/home/alice/.ssh/authorized_keys"),
        "# a comment\n  k2  \n"
    );
    assert_eq!(mode(&guest.path("/home/alice/.ssh/authorized_keys")), 0o600);
    assert_eq!(guest.get("alice"), Ok(json!({"keys": ["k2"]})));
}

#[test]
fn key_and_user_errors_read_as_qemu_gas() {
    let guest = Guest::new();
    for keys in [&["#x"][..], &["ok", "a\nb"]] {
        let bad = keys.last().unwrap();
        let message = format!("invalid OpenSSH public key: '{bad}'");
        assert_eq!(
            guest.add("nosuch", keys, None),
            error(&message),
            "keys first"
        );
        assert_eq!(guest.remove("nosuch", keys), error(&message));
    }
    let unknown = "failed to lookup user 'nosuch': no such user in /etc/passwd";
    assert_eq!(guest.add("nosuch", &[], None), error(unknown));
    assert_eq!(guest.remove("nosuch", &["k"]), error(unknown));
    assert_eq!(guest.get("nosuch"), error(unknown));
    assert_eq!(
        guest.get("alice"),
        error(
            "failed to read '/home/alice/.ssh/authorized_keys': Failed to open file \
             \u{201c}/home/alice/.ssh/authorized_keys\u{201d}: No such file or directory"
        )
    );
    assert_eq!(
        guest.add("nohash", &["k"], None),
        error("failed to create directory '/home/nohash/.ssh': No such file or directory")
    );
    for (arguments, message) in [
        (json!({"keys": ["a"]}), "Parameter 'username' is missing"),
        (json!({"username": "alice"}), "Parameter 'keys' is missing"),
        (
            json!({"username": "alice", "keys": ["a"], "reset": 1}),
            "Invalid parameter type for 'reset', expected: boolean",
        ),
        (
            json!({"username": "alice", "keys": [1]}),
            "Invalid parameter type for 'keys[0]', expected: string",
        ),
    ] {
        let answer = guest.run("guest-ssh-add-authorized-keys", arguments);
        assert_eq!(answer, Err(CommandError::bad_arguments(message)));
    }
    let kind = guest
        .run("guest-ssh-get-authorized-keys", json!({}))
        .unwrap_err()
        .kind;
    assert_eq!(kind, ErrorKind::BadArguments);
}

#[test]
fn homes_and_ssh_directories_that_are_links_stay_inside_the_root() {
    let guest = Guest::new();
    // carol's home is a link inside the root: followed.
    assert_eq!(guest.add("carol", &["k1"], None), ok());
    assert_eq!(guest.text("/srv/carol/.ssh/authorized_keys"), "k1\n");
    assert_eq!(guest.get("carol"), Ok(json!({"keys": ["k1"]})));

    // A ~/.ssh that climbs out of the root is refused; one that names a
    // host directory by an absolute path is taken under the root.
    let outside = guest.root.parent().unwrap().join("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink("../../../outside", guest.path("/home/alice/.ssh")).unwrap();
    assert_eq!(
        guest.add("alice", &["k1"], None),
        error(
            "failed to create directory '/home/alice/.ssh': the path leads out of the agent's root"
        )
    );
    std::fs::remove_file(guest.path("/home/alice/.ssh")).unwrap();
    symlink(&outside, guest.path("/home/alice/.ssh")).unwrap();
    let answer = guest.add("alice", &["k1"], None).unwrap_err().message;
    assert!(
        answer.starts_with("failed to create directory '/home/alice/.ssh': "),
        "{answer}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );

    // authorized_keys itself is never written through a link.
    std::fs::remove_file(guest.path("/home/alice/.ssh")).unwrap();
    std::fs::create_dir(guest.path("/home/alice/.ssh")).unwrap();
    symlink(
        outside.join("keys"),
        guest.path("/home/alice/.ssh/authorized_keys"),
    )
    .unwrap();
    let answer = guest.add("alice", &["k1"], None).unwrap_err().message;
    assert!(
        answer.ends_with("Too many levels of symbolic links"),
        "{answer}"
    );
    assert!(!outside.join("keys").exists());
}

#[test]
fn the_plugin_takes_no_config_keys() {
    let refused = TestAgent::new(TestHost::new("/nonexistent"))
        .with_plugin(crate::init, json!({"users": []}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.qga-users] takes no keys; found 'users'"
    );
}
