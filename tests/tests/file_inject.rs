//! injectfile and file_inject end to end: the agent binary with the
//! file-inject plugin and a sandbox root, requests over the unix socket and,
//! for the largest file Nova can send, over XenStore through Debian's
//! xenstore-write as Nova's dom0 plugin does.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nova_agent_tests::dom0::{self, request_path, Dom0};
use nova_agent_tests::xenstored::FakeXenstored;
use nova_agent_tests::{nova, plugin, running_as_root, Agent, Sandbox};

/// XENSTORE_PAYLOAD_MAX: a WRITE carries the path, a NUL and the value.
const XENSTORE_PAYLOAD_MAX: usize = 4096;

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `injectfile`'s value, `"base64(<path>,<contents>)"`, as JSON text.
fn injectfile_value(path: &str, contents: &[u8]) -> String {
    let mut data = format!("{path},").into_bytes();
    data.extend_from_slice(contents);
    format!("\"{}\"", b64(&data))
}

fn file_inject_value(path: &str, contents: &[u8]) -> String {
    format!(
        "{{\"b64_path\": \"{}\", \"b64_file\": \"{}\"}}",
        b64(path.as_bytes()),
        b64(contents)
    )
}

/// The request as Nova's dom0 plugin writes it.
fn request(name: &str, value_json: &str) -> String {
    dom0::request(name, value_json)
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&plugin("file-inject"));
    sandbox
}

fn host(sandbox: &Sandbox, path: &str) -> PathBuf {
    sandbox.root.join(path.trim_start_matches('/'))
}

fn read(sandbox: &Sandbox, path: &str) -> Vec<u8> {
    std::fs::read(host(sandbox, path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn injectfile(agent: &Agent, path: &str, contents: &[u8]) -> String {
    agent
        .connect()
        .request(&request("injectfile", &injectfile_value(path, contents)))
}

/// Every entry under `dir`: mode, owner, contents or link target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let contents = if metadata.file_type().is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            Vec::new()
        } else {
            std::fs::read(&path).unwrap()
        };
        entries.insert(
            path.strip_prefix(dir).unwrap().to_path_buf(),
            (metadata.mode(), metadata.uid(), metadata.gid(), contents),
        );
    }
    entries
}

#[test]
fn features_lists_injectfile_and_file_inject() {
    let sandbox = sandbox();
    let agent = sandbox.start();
    let response = agent.call("features");
    let json: serde_json::Value = serde_json::from_str(&response).unwrap();
    let names: Vec<&str> = json["message"].as_str().unwrap().split(',').collect();
    assert!(names.contains(&"injectfile"), "{response}");
    assert!(names.contains(&"file_inject"), "{response}");
}

#[test]
fn commas_and_binary_bytes_are_written_and_never_logged() {
    let sandbox = sandbox();
    let agent = sandbox.start();
    let secret = b"ssh-ed25519 AAAAsecret-key-material,with,commas\n";
    assert_eq!(
        injectfile(&agent, "/root/.ssh/authorized_keys", secret),
        nova("0", "")
    );
    assert_eq!(read(&sandbox, "/root/.ssh/authorized_keys"), secret);
    let mode = |path: &str| std::fs::metadata(host(&sandbox, path)).unwrap().mode() & 0o7777;
    assert_eq!(mode("/root/.ssh/authorized_keys"), 0o644);
    assert_eq!(mode("/root/.ssh"), 0o755);

    let binary: Vec<u8> = (0..=255u8).cycle().take(2048).collect();
    assert_eq!(injectfile(&agent, "/var/lib/blob", &binary), nova("0", ""));
    assert_eq!(read(&sandbox, "/var/lib/blob"), binary);

    let response = agent.connect().request(&request(
        "file_inject",
        &file_inject_value("/etc/a,b", b"x,y,\0z"),
    ));
    assert_eq!(response, nova("0", ""));
    assert_eq!(read(&sandbox, "/etc/a,b"), b"x,y,\0z");

    // The agent logs at debug here: the path and the size, not the contents.
    agent.wait_for_logged("/root/.ssh/authorized_keys", 1);
    let log = agent.log();
    assert!(log.contains(&format!("({} bytes", secret.len())), "{log}");
    assert!(!log.contains("secret-key-material"), "{log}");
    let encoded = injectfile_value("/root/.ssh/authorized_keys", secret);
    assert!(!log.contains(encoded.trim_matches('"')), "{log}");
}

#[test]
fn the_largest_file_that_fits_in_a_xenstore_request_is_injected_over_xenstore() {
    let sandbox = Sandbox::with_xenstore("");
    sandbox.add_plugin(&plugin("file-inject"));
    let xenstored = FakeXenstored::start(sandbox.xenstored_socket()).unwrap();
    let dom0 = Dom0::new(xenstored.socket());
    let agent = sandbox.start();
    agent.wait_for_logged("connected to XenStore", 1);

    // What a WRITE of the request to data/host/<uuid> leaves for the value,
    // then the base64 that fits, then the contents beside the path and comma.
    let path = "/root/.ssh/authorized_keys";
    let id = dom0::uuid();
    assert_eq!(id.len(), 36);
    let node = request_path(&id);
    let envelope = request("injectfile", "\"\"").len();
    let room = XENSTORE_PAYLOAD_MAX - (node.len() + 1) - envelope;
    let largest = room / 4 * 3 - (path.len() + 1);
    assert_eq!(largest, 2970);

    let contents: Vec<u8> = (0..largest).map(|i| (i * 7 % 256) as u8).collect();
    let raw = request("injectfile", &injectfile_value(path, &contents));
    assert!(node.len() + 1 + raw.len() <= XENSTORE_PAYLOAD_MAX);
    // One byte more needs four more base64 characters, which do not fit.
    let one_more = request("injectfile", &injectfile_value(path, &[0; 2971]));
    assert!(node.len() + 1 + one_more.len() > XENSTORE_PAYLOAD_MAX);
    let refused = dom0
        .tool("xenstore-write")
        .args([&request_path(&dom0::uuid()), &one_more])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a request over 4096 bytes was written"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("could not write path"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    dom0.write(&[(&node, &raw)]);
    let response = dom0
        .wait_response(&id, Duration::from_secs(30))
        .expect("a response to injectfile");
    assert_eq!(response, nova("0", ""));
    assert_eq!(read(&sandbox, path), contents);
}

#[test]
fn an_existing_files_mode_and_owner_are_kept_and_it_becomes_the_backup() {
    let sandbox = sandbox();
    let file = host(&sandbox, "/etc/ssh/sshd_config");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "old config\n").unwrap();
    let as_root = running_as_root();
    if as_root {
        std::os::unix::fs::chown(&file, Some(0), Some(1)).unwrap();
    } else {
        eprintln!("not root: the ownership half of this test (uid 0, gid 1) is skipped");
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let agent = sandbox.start();

    assert_eq!(
        injectfile(&agent, "/etc/ssh/sshd_config", b"new config\n"),
        nova("0", "")
    );
    assert_eq!(read(&sandbox, "/etc/ssh/sshd_config"), b"new config\n");
    assert_eq!(read(&sandbox, "/etc/ssh/sshd_config.bak"), b"old config\n");
    let metadata = std::fs::metadata(&file).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o640);
    if as_root {
        assert_eq!((metadata.uid(), metadata.gid()), (0, 1));
    }

    // The next injection replaces the one backup.
    assert_eq!(
        injectfile(&agent, "/etc/ssh/sshd_config", b"newer\n"),
        nova("0", "")
    );
    assert_eq!(read(&sandbox, "/etc/ssh/sshd_config.bak"), b"new config\n");
    let mut names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sshd_config", "sshd_config.bak"]);
}

#[test]
fn relative_dotdot_and_symlink_paths_never_write_outside_the_root() {
    let sandbox = sandbox();
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("etc/passwd"), "the host's passwd\n").unwrap();
    std::fs::create_dir_all(host(&sandbox, "/etc")).unwrap();
    std::fs::write(host(&sandbox, "/etc/passwd"), "the guest's passwd\n").unwrap();
    symlink(&outside, host(&sandbox, "/etc/x")).unwrap();
    symlink("../../../../../../../..", host(&sandbox, "/etc/up")).unwrap();
    symlink("loop2", host(&sandbox, "/etc/loop1")).unwrap();
    symlink("loop1", host(&sandbox, "/etc/loop2")).unwrap();
    let outside_before = snapshot(&outside);
    let agent = sandbox.start();

    // Refused: nothing changes under the root, nor outside it.
    let root_before = snapshot(&sandbox.root);
    let outside_text = outside.to_str().unwrap();
    let root_text = sandbox.root.to_str().unwrap();
    let cases = [
        ("etc/passwd", "it is not absolute".to_owned()),
        (
            "/etc/../../outside/etc/passwd",
            "it contains a .. component".to_owned(),
        ),
        ("/etc/loop1", "too many levels of symbolic links".to_owned()),
        (
            "/etc/x/etc/passwd",
            format!("the symbolic link /etc/x leads outside the root, to {outside_text}"),
        ),
        (
            "/etc/up/outside/etc/passwd",
            format!("a symbolic link on the way leads above {root_text}"),
        ),
    ];
    for (path, why) in cases {
        let expected = nova("500", &format!("Refusing path {path}: {why}"));
        assert_eq!(injectfile(&agent, path, b"pwned\n"), expected);
    }
    assert_eq!(snapshot(&sandbox.root), root_before);
    assert_eq!(snapshot(&outside), outside_before);
    assert_eq!(read(&sandbox, "/etc/passwd"), b"the guest's passwd\n");
}

#[test]
fn the_allow_list_is_read_from_the_config_and_unknown_keys_are_refused() {
    let sandbox = sandbox();
    sandbox.write_config("\n[plugins.file-inject]\nallow = [\"/root/.ssh/\", \"/etc/ssh/\"]\n");
    let agent = sandbox.start();
    assert_eq!(
        injectfile(&agent, "/root/.ssh/authorized_keys", b"key\n"),
        nova("0", "")
    );
    let root_before = snapshot(&sandbox.root);
    assert_eq!(
        injectfile(&agent, "/etc/sshd_config", b"no\n"),
        nova(
            "500",
            "Path /etc/sshd_config is not in [plugins.file-inject] allow"
        )
    );
    assert_eq!(snapshot(&sandbox.root), root_before);
    drop(agent);

    sandbox.write_config("\n[plugins.file-inject]\nallowed = [\"/root/.ssh/\"]\n");
    let check = sandbox.cli(&["config", "check"]);
    assert_eq!(check.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("[plugins.file-inject] allowed: unknown field `allowed`, expected `allow`"),
        "{stdout}"
    );
}

#[test]
fn the_tests_base64_matches_known_vectors() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"M"), "TQ==");
    assert_eq!(b64(b"Ma"), "TWE=");
    assert_eq!(b64(b"Man"), "TWFu");
    assert_eq!(b64(&[0xfb, 0xff, 0xbf]), "+/+/");
}
