//! The command against temporary roots and the recorded vectors in
//! `testdata/etc/ssh`, compared with what `ssh-keygen -l` prints.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use nova_agent_plugin_api::testing::{TestAgent, TestCall, TestHost};
use nova_agent_plugin_api::{CommandError, ErrorKind, PluginError};
use serde_json::{json, Value};

use crate::hostkeys::MAX_FILE_LEN;
use crate::SshHostKeys;

/// `ssh-keygen -l -f` on each file of `testdata/etc/ssh` (OpenSSH 9.2p1),
/// less the comment, in file name order. The 2047-bit RSA key comes from
/// Python's `cryptography` (ssh-keygen rounds sizes to whole bytes): its
/// modulus has no leading zero byte and a top byte that is not full.
const RECORDED: &[&str] = &[
    "1024 SHA256:IwrKYnV7iUFN3w2CAnOPJ5bQezldMGW0sh9rgKiNFvE (DSA)",
    "384 SHA256:jc83XN4/unFfU1K1E8gp9htNjoSbnpRESr/K2pyW/1U (ECDSA)",
    "521 SHA256:HPzgely6BrD7+xChWrl3cUbUdoWL0SHYaLTwi7G5Gmk (ECDSA)",
    "256 SHA256:hK5eVVtlKdERJhTtYYpoDK+B1uCPVFgGoJ9DO1noXW0 (ECDSA)",
    "256 SHA256:Xc8y7NLN9LdhbgY3rzh2YNNcZNPwlfgCAPPSpo09mh4 (ED25519)",
    "2047 SHA256:MX/dMLPr8xB5/klFRRHW9R7fFZV159Owfw3MGNULWAk (RSA)",
    "3072 SHA256:L1uIPeRsw9CIGpBycS0XCWeWipSaMYJyHHdoQZu/vFw (RSA)",
    "2048 SHA256:dFX58GOMQWlAsJJbHlA7A6Byichod974ISANkkri7mg (RSA)",
];

/// The name the malformed cases are written under.
const BAD: &str = "ssh_host_bad_key.pub";

/// A temporary directory holding the guest's `root` and, beside it,
/// `outside`, which no link may lead the command into.
struct Guest {
    dir: tempfile::TempDir,
}

impl Guest {
    fn new() -> Guest {
        let guest = Guest {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(guest.keys()).unwrap();
        fs::create_dir(guest.outside()).unwrap();
        guest
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn keys(&self) -> PathBuf {
        self.root().join("etc/ssh")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        fs::write(self.keys().join(name), contents).unwrap();
    }

    fn report(&self) -> Result<Value, CommandError> {
        report(&self.root())
    }
}

/// The command's answer for the keys under `root`, run directly.
fn report(root: &Path) -> Result<Value, CommandError> {
    let command = SshHostKeys {
        root: root.to_owned(),
    };
    TestCall::new().run(&command, "\"\"")
}

fn assert_keys(answer: &Result<Value, CommandError>, expected: &str) {
    assert_eq!(answer, &Ok(json!(expected)));
}

fn assert_error(answer: &Result<Value, CommandError>, kind: ErrorKind, message: &str) {
    assert_eq!(answer, &Err(CommandError::new(kind, message)));
}

/// A file that is not a valid public key (or cannot be read).
fn assert_failed(answer: &Result<Value, CommandError>, message: &str) {
    assert_error(answer, ErrorKind::Failed, message);
}

/// The not-found message for a root: the directory actually looked in.
fn no_keys(root: &Path) -> String {
    format!("no SSH host keys in {}/etc/ssh", root.display())
}

/// The SSH wire encoding of `strings`, each length-prefixed.
fn wire(strings: &[&[u8]]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| [&(s.len() as u32).to_be_bytes()[..], s].concat())
        .collect()
}

fn key_line(key_type: &str, blob: &[u8]) -> String {
    format!("{key_type} {} test\n", STANDARD.encode(blob))
}

fn ed25519_blob() -> Vec<u8> {
    wire(&[b"ssh-ed25519", &[7; 32]])
}

fn ed25519_line() -> String {
    key_line("ssh-ed25519", &ed25519_blob())
}

#[test]
fn recorded_vectors_match_ssh_keygen() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    assert_keys(&report(&testdata), &RECORDED.join("; "));
}

fn have_ssh_keygen() -> bool {
    Process::new("ssh-keygen").arg("-?").output().is_ok()
}

#[test]
fn generated_keys_match_ssh_keygen() {
    if !have_ssh_keygen() {
        eprintln!("ssh-keygen is not installed: only the recorded vectors are checked");
        return;
    }
    let guest = Guest::new();
    let keys = [
        ("ssh_host_ed25519_key", "ed25519", None),
        ("ssh_host_ecdsa_key", "ecdsa", Some("256")),
        ("ssh_host_ecdsa384_key", "ecdsa", Some("384")),
        ("ssh_host_ecdsa521_key", "ecdsa", Some("521")),
        ("ssh_host_rsa_key", "rsa", Some("2048")),
        ("ssh_host_rsa3072_key", "rsa", Some("3072")),
    ];
    for (name, key_type, bits) in keys {
        let mut keygen = Process::new("ssh-keygen");
        keygen.args([
            "-q",
            "-t",
            key_type,
            "-N",
            "",
            "-C",
            "generated host key",
            "-f",
        ]);
        keygen.arg(guest.keys().join(name));
        if let Some(bits) = bits {
            keygen.args(["-b", bits]);
        }
        assert!(
            keygen.status().unwrap().success(),
            "ssh-keygen -t {key_type}"
        );
    }
    let mut names: Vec<_> = keys
        .iter()
        .map(|(name, ..)| format!("{name}.pub"))
        .collect();
    names.sort();
    let expected: Vec<String> = names
        .iter()
        .map(|name| {
            let listed = Process::new("ssh-keygen")
                .arg("-l")
                .arg("-f")
                .arg(guest.keys().join(name))
                .output()
                .unwrap();
            assert!(listed.status.success(), "ssh-keygen -l -f {name}");
            // `<bits> SHA256:<fp> <comment, with spaces> (<TYPE>)`
            let line = String::from_utf8(listed.stdout).unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let label = fields.last().unwrap();
            format!("{} {} {label}", fields[0], fields[1])
        })
        .collect();
    // The private keys lie beside the public ones: they must not be read.
    assert_keys(&guest.report(), &expected.join("; "));
}

#[test]
fn missing_key_directory_is_404() {
    let guest = Guest::new();
    fs::remove_dir(guest.keys()).unwrap();
    assert_error(
        &guest.report(),
        ErrorKind::NotFound,
        &no_keys(&guest.root()),
    );
}

#[test]
fn key_directory_without_key_files_is_404() {
    let guest = Guest::new();
    assert_error(
        &guest.report(),
        ErrorKind::NotFound,
        &no_keys(&guest.root()),
    );
    // Names the glob `ssh_host_*_key.pub` does not match are never read.
    for name in [
        "sshd_config",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key-cert.pub",
        "ssh_host_key.pub",
        "ssh_host_rsa_key.pub.bak",
        "my_ssh_host_rsa_key.pub",
    ] {
        guest.write(name, "not a key");
    }
    assert_error(
        &guest.report(),
        ErrorKind::NotFound,
        &no_keys(&guest.root()),
    );
}

#[test]
fn malformed_files_are_500_naming_the_file() {
    let ed25519 = ed25519_blob();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "no key in the file"),
        (b"# only a comment\n\n".to_vec(), "no key in the file"),
        (
            b"ssh-ed25519\n".to_vec(),
            "no base64 key after the key type",
        ),
        (
            b"ssh-ed25519 AAAA!!!= c\n".to_vec(),
            "the key is not valid base64",
        ),
        (
            b"ssh-foo AAAA\n".to_vec(),
            "unsupported key type \"ssh-foo\"",
        ),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n".to_vec(),
            "unsupported key type \"-----BEGIN\"",
        ),
        (
            "\u{1b}[31m AAAA\n".into(),
            "unsupported key type (not a key type name)",
        ),
        (
            format!("{}{}", ed25519_line(), ed25519_line()).into_bytes(),
            "more than one key in the file",
        ),
        (
            key_line("ssh-ed25519", &ed25519[..ed25519.len() - 1]).into_bytes(),
            "the key is truncated",
        ),
        (
            key_line("ssh-rsa", &ed25519).into_bytes(),
            "the key inside is not of type ssh-rsa",
        ),
        (
            key_line("ssh-ed25519", &[&ed25519[..], &wire(&[b"x"])].concat()).into_bytes(),
            "trailing bytes after the key",
        ),
        (
            key_line("ssh-ed25519", &wire(&[b"ssh-ed25519", &[7; 31]])).into_bytes(),
            "the ed25519 key is not 32 bytes",
        ),
        (
            key_line(
                "ecdsa-sha2-nistp384",
                &wire(&[b"ecdsa-sha2-nistp384", b"nistp256", &[4; 65]]),
            )
            .into_bytes(),
            "the key inside is not of type ecdsa-sha2-nistp384",
        ),
        (
            key_line(
                "ecdsa-sha2-nistp256",
                &wire(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4; 64]]),
            )
            .into_bytes(),
            "the ecdsa point is malformed",
        ),
        (
            key_line(
                "ecdsa-sha2-nistp256",
                &wire(&[b"ecdsa-sha2-nistp256", b"secp256k1", &[4; 65]]),
            )
            .into_bytes(),
            "unsupported ecdsa curve",
        ),
        (
            key_line("ssh-rsa", &wire(&[b"ssh-rsa", &[1, 0, 1], &[0x80; 256]])).into_bytes(),
            "the key holds a negative number",
        ),
        (
            key_line("ssh-rsa", &wire(&[b"ssh-rsa", &[1, 0, 1], &[0, 0]])).into_bytes(),
            "the key is zero",
        ),
        (
            key_line("ssh-dss", &wire(&[b"ssh-dss", &[0x7f; 128], &[1], &[2]])).into_bytes(),
            "the key is truncated",
        ),
    ];
    for (contents, reason) in cases {
        let guest = Guest::new();
        guest.write(BAD, &contents);
        let answer = guest.report();
        let expected = format!("/etc/ssh/{BAD}: not a valid public key: {reason}");
        assert_failed(&answer, &expected);
        // The key itself is never quoted back.
        let text = String::from_utf8_lossy(&contents);
        let blob = text.split_whitespace().nth(1).filter(|b| b.len() >= 8);
        let message = answer.unwrap_err().message;
        assert!(blob.is_none_or(|b| !message.contains(b)));
    }
    let guest = Guest::new();
    guest.write(BAD, [0xff, 0xfe, b'\n']);
    assert_failed(&guest.report(), &format!("/etc/ssh/{BAD}: not text"));
}

#[test]
fn one_bad_file_fails_the_whole_answer() {
    let guest = Guest::new();
    guest.write("ssh_host_ed25519_key.pub", ed25519_line());
    guest.write(BAD, "ssh-rsa AAAA\n");
    let error = guest.report().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert!(error.message.starts_with("/etc/ssh/ssh_host_bad_key.pub: "));
    // Without the bad file, the good one is reported.
    fs::remove_file(guest.keys().join(BAD)).unwrap();
    assert!(guest.report().is_ok());
}

#[test]
fn files_are_read_up_to_64_kib() {
    let guest = Guest::new();
    let line = ed25519_line();
    let fill = MAX_FILE_LEN as usize - line.len() - 1;
    guest.write(BAD, format!("{line}#{}", "x".repeat(fill)));
    assert!(guest.report().is_ok());
    guest.write(BAD, format!("{line}#{}", "x".repeat(fill + 1)));
    assert_failed(
        &guest.report(),
        &format!("/etc/ssh/{BAD}: larger than 64 KiB"),
    );
}

#[test]
fn links_are_followed_only_under_the_root() {
    let guest = Guest::new();
    fs::create_dir(guest.root().join("keys")).unwrap();
    fs::write(guest.root().join("keys/ed25519.pub"), ed25519_line()).unwrap();
    symlink(
        "../../keys/ed25519.pub",
        guest.keys().join("ssh_host_ed25519_key.pub"),
    )
    .unwrap();
    assert!(guest.report().is_ok());

    fs::write(guest.outside().join("ed25519.pub"), ed25519_line()).unwrap();
    symlink(
        guest.outside().join("ed25519.pub"),
        guest.keys().join("ssh_host_out_key.pub"),
    )
    .unwrap();
    assert_failed(
        &guest.report(),
        "/etc/ssh/ssh_host_out_key.pub: leads outside the root",
    );

    let outside_keys = guest.outside().join("ssh");
    fs::create_dir(&outside_keys).unwrap();
    fs::write(
        outside_keys.join("ssh_host_ed25519_key.pub"),
        ed25519_line(),
    )
    .unwrap();
    fs::remove_dir_all(guest.keys()).unwrap();
    symlink(&outside_keys, guest.keys()).unwrap();
    assert_failed(&guest.report(), "/etc/ssh leads outside the root");
}

#[test]
fn only_regular_files_are_read() {
    let guest = Guest::new();
    fs::create_dir(guest.keys().join(BAD)).unwrap();
    let expected = format!("/etc/ssh/{BAD}: not a regular file");
    assert_failed(&guest.report(), &expected);
    // A FIFO would block the request if it were opened.
    fs::remove_dir(guest.keys().join(BAD)).unwrap();
    let made = Process::new("mkfifo").arg(guest.keys().join(BAD)).status();
    if made.is_ok_and(|status| status.success()) {
        assert_failed(&guest.report(), &expected);
    }
}

/// What the agent does: `init` with the plugin's table and the host's
/// root, behind the panic guard, then the command by name.
#[test]
fn the_command_as_the_agent_loads_it() {
    let guest = Guest::new();
    let host = || TestHost::new(guest.root().to_str().unwrap());
    let refused = TestAgent::new(host()).with_plugin(crate::init, json!({"verbose": true}));
    assert_eq!(
        refused.err(),
        Some(PluginError::failed("[plugins.ssh-hostkeys] takes no keys"))
    );
    let agent = TestAgent::new(host())
        .with_plugin(crate::init, json!({}))
        .unwrap();
    assert_eq!(agent.host().enabled_commands(), ["ssh-hostkeys"]);
    let outcome = agent.run("ssh-hostkeys", "\"\"");
    assert_eq!(
        outcome.result,
        Err(CommandError::not_found(no_keys(&guest.root()))),
        "no key file yet"
    );

    guest.write("ssh_host_ed25519_key.pub", ed25519_line());
    let expected = guest.report().unwrap().to_string();
    // The arguments are ignored.
    for arguments in ["\"\"", "\"anything\"", "{\"x\": 1}"] {
        let outcome = agent.run("ssh-hostkeys", arguments);
        assert_eq!(outcome.result, Ok(expected.clone()), "{arguments}");
        assert!(outcome.success_response);
    }
}
