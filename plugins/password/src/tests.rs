//! The two commands together, against a sandbox root: the host's side of
//! the exchange is played here with the same primitives (the end-to-end
//! tests use the real `openssl enc`).

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use md5::Digest as _;
use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{Command, CommandError, ErrorKind};
use nova_agent_shadow::{self as shadow, crypt};
use nova_agent_support::runner::Runner;
use nova_agent_support::testing::captured_log;
use num_bigint::BigUint;
use serde_json::{json, Value};

use crate::cipher::KeyDigest;
use crate::{dh, KeyInit, Keys, Password, State};

const OTHERS: &str =
    "daemon:*:19000:0:99999:7:::\n# a comment: root:x\nuser:$6$abc$def:19000:0:99999:7:::\n";

struct Guest {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    keyinit: KeyInit,
    password: Password,
}

impl Guest {
    fn new(root_entry: &str, writer: shadow::Writer) -> Guest {
        Guest::with(
            root_entry,
            false,
            shadow::Editor {
                writer,
                ..Default::default()
            },
        )
    }

    fn with(root_entry: &str, apply: bool, editor: shadow::Editor) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/shadow"), shadow_text(root_entry)).unwrap();
        let state = Arc::new(State {
            keys: Keys::default(),
            root: root.clone(),
            runner: Runner::new(apply),
            editor,
        });
        Guest {
            _dir: dir,
            root,
            keyinit: KeyInit(Arc::clone(&state)),
            password: Password(state),
        }
    }

    fn shadow(&self) -> String {
        std::fs::read_to_string(self.root.join("etc/shadow")).unwrap()
    }

    fn root_hash(&self) -> String {
        let text = self.shadow();
        let field = shadow::hash_field(text.as_bytes(), "root").unwrap();
        text[field].to_owned()
    }

    fn call(&self, command: &dyn Command, channel: &'static str, arguments: &str) -> Answer {
        TestCall::new()
            .with_channel(channel)
            .run(command, arguments)
    }

    /// keyinit from a host with a fresh key; the shared secret.
    fn keyinit(&self, channel: &'static str) -> String {
        let host = dh::KeyPair::generate().unwrap();
        let answer = self.call(&self.keyinit, channel, &format!("\"{}\"", host.public));
        let guest_public = decimal_key(&answer);
        host.shared_secret(&guest_public).to_string()
    }

    fn password(&self, channel: &'static str, base64: &str) -> Answer {
        self.call(&self.password, channel, &format!("\"{base64}\""))
    }
}

fn shadow_text(root_entry: &str) -> String {
    format!("{root_entry}\n{OTHERS}")
}

/// What `openssl enc -aes-128-cbc -a -A -nosalt -md <digest> -pass pass:<secret>` prints.
fn encrypt(plain: &[u8], secret: &str, digest: KeyDigest) -> String {
    let key_iv: Vec<u8> = match digest {
        KeyDigest::Md5 => {
            let key = md5::Md5::digest(secret.as_bytes());
            let iv = md5::Md5::new()
                .chain_update(key)
                .chain_update(secret)
                .finalize();
            key.iter().chain(iv.iter()).copied().collect()
        }
        KeyDigest::Sha256 => sha2::Sha256::digest(secret.as_bytes()).to_vec(),
    };
    let ciphertext = cbc::Encryptor::<aes::Aes128>::new(key_iv[..16].into(), key_iv[16..].into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain);
    base64::engine::general_purpose::STANDARD.encode(ciphertext)
}

/// What a command answers.
type Answer = Result<Value, CommandError>;

/// Success: the empty string (the Nova parser answers "0" and "").
fn ok() -> Answer {
    Ok(json!(""))
}

/// Failure with `message` (the Nova parser answers "500" and it).
fn failed(message: &str) -> Answer {
    Err(CommandError::failed(message))
}

/// keyinit's answer: the guest's public key, a JSON string of decimal digits.
fn decimal_key(answer: &Answer) -> BigUint {
    let Ok(Value::String(digits)) = answer else {
        panic!("keyinit answered {answer:?}");
    };
    BigUint::parse_bytes(digits.as_bytes(), 10).unwrap()
}

#[test]
fn keyinit_answers_d0_with_a_public_key_and_refuses_bad_host_keys() {
    let guest = Guest::new("root:!:19000::::::", shadow::write_all);
    let answer = guest.call(&guest.keyinit, "c", "72934389420761065950890858028106");
    let public = decimal_key(&answer);
    assert!(public > BigUint::from(1u8) && public < dh::prime());
    for bad in [
        "\"abc\"",
        "\"\"",
        "0",
        "\"1\"",
        "162259276829213363391578010288126",
        "1.5",
    ] {
        let answer = guest.call(&guest.keyinit, "c", bad);
        assert_eq!(answer.unwrap_err().kind, ErrorKind::Failed, "{bad}");
    }
    // A megabyte of digits gets the out-of-range answer (refused by its
    // length, see `dh`'s tests).
    let huge = "9".repeat(1 << 20);
    for value in [huge.clone(), format!("\"{huge}\"")] {
        let answer = guest.call(&guest.keyinit, "c", &value);
        assert_eq!(answer, failed(dh::OUT_OF_RANGE));
    }
}

#[test]
fn passwords_from_md5_and_sha256_hosts_land_in_shadow_and_verify() {
    for digest in [KeyDigest::Md5, KeyDigest::Sha256] {
        let guest = Guest::new(
            "root:$6$oldsalt$oldhash:19000:0:99999:7:::",
            shadow::write_all,
        );
        let secret = guest.keyinit("c");
        let answer = guest.password("c", &encrypt(b"N3w-Passw0rd\n", &secret, digest));
        assert_eq!(answer, ok());
        let hash = guest.root_hash();
        assert!(
            hash.starts_with("$6$") && hash != "$6$oldsalt$oldhash",
            "{hash}"
        );
        assert!(crypt::verify("N3w-Passw0rd", &hash));
        let expected = shadow_text(&format!("root:{hash}:19000:0:99999:7:::"));
        assert_eq!(guest.shadow(), expected, "only root's hash changed");
    }
}

#[test]
fn each_kind_of_root_entry_gets_the_right_scheme() {
    for (entry, prefix) in [
        ("root:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7:19000:0:99999:7:::", "$y$j9T$"),
        ("root:$6$rounds=9000$s$h:19000:0:99999:7:::", "$6$rounds=9000$"),
        ("root:$1$abcdefgh$hhhhhhhhhhhhhhhhhhhhhh:1::::::", "$1$"),
        ("root:!:19000::::::", "$6$"),
        ("root:*:19000::::::", "$6$"),
        ("root::19000::::::", "$6$"),
    ] {
        let guest = Guest::new(entry, shadow::write_all);
        let secret = guest.keyinit("c");
        let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
        assert_eq!(answer, ok(), "{entry}");
        let hash = guest.root_hash();
        assert!(hash.starts_with(prefix), "{entry} -> {hash}");
        assert!(crypt::verify("pw", &hash), "{hash}");
        assert!(guest.shadow().ends_with(OTHERS));
    }
}

#[test]
fn the_seed_s_errors_and_a_key_used_once() {
    let guest = Guest::new("root:!:19000::::::", shadow::write_all);
    let before = guest.shadow();
    let refuse = |answer: Answer, message: &str| {
        assert_eq!(answer, failed(message));
    };
    let valid_looking = encrypt(b"pw\n", "123456789", KeyDigest::Md5);
    refuse(
        guest.password("c", &valid_looking),
        "Password without key exchange",
    );
    refuse(
        guest.password("c", "kjadfkjaf"),
        "Couldn't decode base64 data",
    );
    refuse(
        guest.call(&guest.password, "c", "42"),
        "Couldn't decode base64 data",
    );

    let secret = guest.keyinit("c");
    let good = encrypt(b"pw\n", &secret, KeyDigest::Md5);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&good)
        .unwrap();
    let short = base64::engine::general_purpose::STANDARD.encode(&raw[..raw.len() - 3]);
    refuse(
        guest.password("c", &short),
        "Invalid password data received",
    );
    refuse(
        guest.password("c", &valid_looking),
        "Invalid password data received",
    );
    // One full block whose padding block is then dropped: its last byte, 2,
    // would pass a last-byte-only check ("abcdefghijklmn"); the byte before
    // is 1, so strict PKCS#7 refuses it.
    let bad_padding = encrypt(b"abcdefghijklmn\x01\x02", &secret, KeyDigest::Md5);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&bad_padding)
        .unwrap();
    assert_eq!(raw.len(), 32);
    let truncated = base64::engine::general_purpose::STANDARD.encode(&raw[..16]);
    refuse(
        guest.password("c", &truncated),
        "Invalid password data received",
    );
    assert_eq!(guest.shadow(), before, "nothing written on errors");

    // Errors keep the key; a success uses it up.
    let wrapped = good
        .as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\\n");
    assert_eq!(guest.password("c", &wrapped), ok());
    refuse(guest.password("c", &good), "Password without key exchange");
}

#[test]
fn two_channels_exchange_keys_independently() {
    let guest = Guest::new("root:!:19000::::::", shadow::write_all);
    let xen = guest.keyinit("xenstore+json");
    let local = guest.keyinit("unix-socket+json");
    let xen_again = guest.keyinit("xenstore+json");
    assert_ne!(xen, xen_again);
    let answer = guest.password(
        "unix-socket+json",
        &encrypt(b"local\n", &local, KeyDigest::Sha256),
    );
    assert_eq!(answer, ok());
    assert!(crypt::verify("local", &guest.root_hash()));
    let answer = guest.password(
        "xenstore+json",
        &encrypt(b"xen\n", &xen_again, KeyDigest::Md5),
    );
    assert_eq!(answer, ok());
    assert!(crypt::verify("xen", &guest.root_hash()));
}

fn half_then_fail(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(&bytes[..bytes.len() / 2])?;
    Err(io::Error::other("injected fault"))
}

#[test]
fn an_interrupted_write_leaves_the_shadow_file_intact() {
    let guest = Guest::new("root:$6$old$hash:19000:0:99999:7:::", half_then_fail);
    let before = std::fs::read(guest.root.join("etc/shadow")).unwrap();
    let secret = guest.keyinit("c");
    let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
    let error = answer.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert!(
        error.message.contains("cannot write /etc/shadow"),
        "{}",
        error.message
    );
    assert_eq!(
        std::fs::read(guest.root.join("etc/shadow")).unwrap(),
        before
    );
    let names: Vec<_> = std::fs::read_dir(guest.root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "shadow and .pwd.lock only: {names:?}");
}

#[test]
fn missing_files_and_entries_are_reported() {
    let guest = Guest::new("nobody:x:1::::::", shadow::write_all);
    let secret = guest.keyinit("c");
    let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
    assert_eq!(answer, failed("/etc/shadow has no entry for root"));

    std::fs::remove_file(guest.root.join("etc/shadow")).unwrap();
    let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
    assert_eq!(answer, failed("Unknown password file format"));
}

#[test]
fn freebsd_master_passwd_is_edited_without_running_pwd_mkdb_when_apply_is_false() {
    let guest = Guest::new("x", shadow::write_all);
    std::fs::remove_file(guest.root.join("etc/shadow")).unwrap();
    let master = guest.root.join("etc/master.passwd");
    std::fs::write(&master, "root:$6$a$b:0:0::0:0:Charlie &:/root:/bin/csh\ntoor:*:0:0::0:0:Bourne-again Superuser:/root:\n").unwrap();
    let secret = guest.keyinit("c");
    let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
    assert_eq!(answer, ok());
    let text = std::fs::read_to_string(&master).unwrap();
    let field = shadow::hash_field(text.as_bytes(), "root").unwrap();
    assert!(crypt::verify("pw", &text[field]));
    assert!(text.ends_with(
        ":0:0::0:0:Charlie &:/root:/bin/csh\ntoor:*:0:0::0:0:Bourne-again Superuser:/root:\n"
    ));
}

#[test]
fn no_secret_reaches_the_log_even_at_trace_level() {
    let guest = Guest::new("root:$6$old$hash:19000:0:99999:7:::", shadow::write_all);
    let mut secrets = Vec::new();
    let log = captured_log(|| {
        let secret = guest.keyinit("c");
        let ciphertext = encrypt(b"Tr4ce-Secret\n", &secret, KeyDigest::Sha256);
        assert_eq!(guest.password("c", &ciphertext), ok());
        let bad = encrypt(b"other\n", "999", KeyDigest::Md5);
        let _ = guest.password("c", &bad);
        secrets.extend([secret, ciphertext, bad, "Tr4ce-Secret".to_owned()]);
    });
    assert!(log.contains("password"), "the capture works: {log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret} in {log}");
    }
}

#[test]
fn freebsd_master_passwd_is_installed_by_pwd_mkdb() {
    for (exit, expected) in [
        (0, ok()),
        (1, failed("Rebuilding the passwd database failed")),
    ] {
        let tools = tempfile::tempdir().unwrap();
        let stub = tools.path().join("pwd_mkdb");
        // pwd_mkdb -p -d ETC FILE: installs FILE as ETC/master.passwd.
        std::fs::write(
            &stub,
            format!("#!/bin/sh\n[ {exit} = 0 ] || exit {exit}\nmv \"$4\" \"$3/master.passwd\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let editor = shadow::Editor {
            writer: shadow::write_all,
            pwd_mkdb: stub.display().to_string(),
        };
        let guest = Guest::with("x", true, editor);
        std::fs::remove_file(guest.root.join("etc/shadow")).unwrap();
        let master = guest.root.join("etc/master.passwd");
        let before = "root:$6$a$b:0:0::0:0:Charlie &:/root:/bin/csh\n";
        std::fs::write(&master, before).unwrap();

        let secret = guest.keyinit("c");
        let answer = guest.password("c", &encrypt(b"pw\n", &secret, KeyDigest::Md5));
        assert_eq!(answer, expected);
        let text = std::fs::read_to_string(&master).unwrap();
        if exit == 0 {
            let field = shadow::hash_field(text.as_bytes(), "root").unwrap();
            assert!(crypt::verify("pw", &text[field]));
        } else {
            assert_eq!(text, before);
        }
        let leftovers: Vec<_> = std::fs::read_dir(guest.root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["master.passwd"], "no staged copy left");
    }
}

#[test]
fn the_plugin_takes_no_config_keys_and_answers_keyinit_with_a_decimal_string() {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};

    let refused = TestAgent::new(TestHost::new("/nonexistent"))
        .with_plugin(crate::init, json!({"scheme": "sha512"}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.password] takes no keys; found 'scheme'"
    );

    let agent = TestAgent::new(TestHost::new("/nonexistent"))
        .with_plugin(crate::init, json!({}))
        .unwrap();
    let outcome = agent.run("keyinit", "72934389420761065950890858028106");
    let key = decimal_key(&Ok(outcome.parsed_value().unwrap()));
    assert!(key > BigUint::from(1u8) && key < dh::prime());
    let outcome = agent.run("password", "\"kjadfkjaf\"");
    assert_eq!(
        outcome.result,
        Err(CommandError::failed("Couldn't decode base64 data"))
    );
}
