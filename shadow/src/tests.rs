//! The writer against sandbox roots: which bytes change, which hash lands,
//! and what is refused. (The `password` plugin's tests drive it through
//! Nova's commands; these call it directly, for any user.)

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nova_agent_support::runner::Runner;
use nova_agent_support::testing::captured_log;

use crate::{crypt, hash_field, set_password, Editor, NewPassword};

const SHADOW: &str = "root:$6$rootsalt$roothash:19000:0:99999:7:::\n\
    # alice:commented:out\n\
    al:$1$abcdefgh$hhhhhhhhhhhhhhhhhhhhhh:19001::::::\n\
    alice:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7:19002:0:99999:7:::\n\
    bob:!:19003::::::\n\
    daemon:*:19000:0:99999:7:::";

struct Root {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Root {
    fn with_shadow(text: &str) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        std::fs::create_dir(path.join("etc")).unwrap();
        std::fs::write(path.join("etc/shadow"), text).unwrap();
        Root { _dir: dir, path }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join("etc").join(name)
    }

    fn shadow(&self) -> String {
        std::fs::read_to_string(self.file("shadow")).unwrap()
    }

    fn set(&self, user: &str, password: NewPassword<'_>) -> Result<(), String> {
        set_password(
            &self.path,
            user,
            password,
            &Runner::new(false),
            &Editor::default(),
        )
    }
}

/// `before` with `user`'s hash field replaced by `hash`, built by hand.
fn with_hash(before: &str, user: &str, hash: &str) -> String {
    before
        .split('\n')
        .map(|line| match line.strip_prefix(&format!("{user}:")) {
            Some(rest) => format!("{user}:{hash}:{}", rest.split_once(':').unwrap().1),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn field_of(text: &str, user: &str) -> String {
    text[hash_field(text.as_bytes(), user).unwrap()].to_owned()
}

#[test]
fn a_plain_password_changes_only_that_users_hash_and_keeps_its_scheme() {
    for (user, prefix) in [
        ("alice", "$y$j9T$"),
        ("al", "$1$"),
        ("bob", "$6$"),
        ("root", "$6$"),
    ] {
        let root = Root::with_shadow(SHADOW);
        root.set(user, NewPassword::Plain(b"S3cret pass")).unwrap();
        let after = root.shadow();
        let hash = field_of(&after, user);
        assert!(hash.starts_with(prefix), "{user}: {hash}");
        assert!(crypt::verify("S3cret pass", &hash), "{user}: {hash}");
        assert!(!crypt::verify("S3cret pas", &hash));
        assert_eq!(after, with_hash(SHADOW, user, &hash), "{user}: one field");
    }
}

#[test]
fn a_crypted_hash_is_installed_as_given() {
    let root = Root::with_shadow(SHADOW);
    let given = "$6$fromhost$Zm9vYmFyYmF6cXV4";
    root.set("alice", NewPassword::Crypted(given.as_bytes()))
        .unwrap();
    assert_eq!(root.shadow(), with_hash(SHADOW, "alice", given));
    root.set("bob", NewPassword::Crypted(b"")).unwrap();
    assert_eq!(
        root.shadow(),
        with_hash(&with_hash(SHADOW, "alice", given), "bob", "")
    );
}

#[test]
fn a_crypted_hash_that_would_break_the_file_is_refused() {
    let root = Root::with_shadow(SHADOW);
    for bad in [&b"$6$a:b"[..], b"$6$a\nroot::0::::::", b"$6$a\0b"] {
        assert_eq!(
            root.set("alice", NewPassword::Crypted(bad)),
            Err("forbidden characters in crypted password".to_owned())
        );
    }
    assert_eq!(root.shadow(), SHADOW);
}

#[test]
fn unknown_users_and_impossible_names_are_reported() {
    let root = Root::with_shadow(SHADOW);
    for (user, error) in [
        ("carol", "/etc/shadow has no entry for carol"),
        ("ali", "/etc/shadow has no entry for ali"),
        ("#", "/etc/shadow has no entry for #"),
        ("", "invalid user name \"\""),
        ("a:b", "invalid user name \"a:b\""),
        ("a\nb", "invalid user name \"a\\nb\""),
    ] {
        assert_eq!(
            root.set(user, NewPassword::Plain(b"pw")),
            Err(error.to_owned())
        );
    }
    assert_eq!(
        root.set("alice", NewPassword::Plain(b"a\0b")),
        Err("the password contains a NUL byte".to_owned())
    );
    assert_eq!(root.shadow(), SHADOW);
}

#[test]
fn the_file_keeps_its_mode_and_the_lock_file_is_left_beside_it() {
    let root = Root::with_shadow(SHADOW);
    let shadow = root.file("shadow");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).unwrap();
    root.set("bob", NewPassword::Plain(b"pw")).unwrap();
    let mode = std::fs::metadata(&shadow).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640);
    let mut names: Vec<_> = std::fs::read_dir(root.path.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".pwd.lock", "shadow"]);
}

fn half_then_fail(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    io::Write::write_all(file, &bytes[..bytes.len() / 2])?;
    Err(io::Error::other("injected fault"))
}

#[test]
fn an_interrupted_write_changes_nothing() {
    let root = Root::with_shadow(SHADOW);
    let editor = Editor {
        writer: half_then_fail,
        ..Editor::default()
    };
    let error = set_password(
        &root.path,
        "alice",
        NewPassword::Crypted(b"$6$x$y"),
        &Runner::new(false),
        &editor,
    )
    .unwrap_err();
    assert!(error.starts_with("cannot write /etc/shadow: "), "{error}");
    assert_eq!(root.shadow(), SHADOW);
}

fn freebsd_root(master: &str) -> Root {
    let root = Root::with_shadow("");
    std::fs::remove_file(root.file("shadow")).unwrap();
    std::fs::write(root.file("master.passwd"), master).unwrap();
    root
}

#[test]
fn freebsd_master_passwd_takes_any_users_password() {
    let before = "root:$6$a$b:0:0::0:0:Charlie &:/root:/bin/csh\n\
        alice:*:1001:1001::0:0:Alice:/home/alice:/bin/sh\n";
    let root = freebsd_root(before);
    root.set("alice", NewPassword::Plain(b"pw")).unwrap();
    let after = std::fs::read_to_string(root.file("master.passwd")).unwrap();
    let hash = field_of(&after, "alice");
    assert!(crypt::verify("pw", &hash), "{hash}");
    assert_eq!(after, with_hash(before, "alice", &hash));

    let root = Root::with_shadow("");
    std::fs::remove_file(root.file("shadow")).unwrap();
    assert_eq!(
        root.set("alice", NewPassword::Plain(b"pw")),
        Err("Unknown password file format".to_owned())
    );
}

#[test]
fn neither_the_password_nor_the_hash_reaches_the_log() {
    let root = Root::with_shadow(SHADOW);
    let crypted = "$6$LogSalt$Q29ycmVjdEhvcnNlQmF0dGVyeQ";
    let log = captured_log(|| {
        root.set("alice", NewPassword::Plain(b"Tr4ce-Secret"))
            .unwrap();
        root.set("bob", NewPassword::Crypted(crypted.as_bytes()))
            .unwrap();
    });
    assert!(
        log.contains("alice's password set in /etc/shadow (yescrypt hash)"),
        "{log}"
    );
    assert!(
        log.contains("bob's password set in /etc/shadow (SHA-512 hash, crypted by the host)"),
        "{log}"
    );
    let alice_hash = field_of(&root.shadow(), "alice");
    for secret in ["Tr4ce-Secret", crypted, "LogSalt", alice_hash.as_str()] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}

#[test]
fn hash_field_finds_the_named_user_only() {
    let text = SHADOW.as_bytes();
    assert_eq!(field_of(SHADOW, "al"), "$1$abcdefgh$hhhhhhhhhhhhhhhhhhhhhh");
    assert_eq!(field_of(SHADOW, "bob"), "!");
    assert_eq!(hash_field(text, "alic"), None);
    assert_eq!(hash_field(b"root", "root"), None, "no colon: no field");
    assert_eq!(hash_field(b"root:", "root"), None, "no second colon");
    assert_eq!(hash_field(b"root::", "root"), Some(5..5));
}
