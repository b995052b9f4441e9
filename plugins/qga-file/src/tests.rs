//! The six commands through the agent's dispatch, against a sandbox root,
//! with qemu-ga 7.2's answers (taken from the real qemu-ga) as the
//! expectations.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{CommandError, ErrorKind};
use serde_json::{json, Value};

struct Guest {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    agent: TestAgent,
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "hello world\n").unwrap();
        let agent = agent(&root, &state);
        Guest {
            _dir: dir,
            root,
            state,
            agent,
        }
    }

    fn run(&self, command: &str, arguments: Value) -> Result<Value, CommandError> {
        self.agent.run(command, &arguments.to_string()).into_value()
    }

    fn ok(&self, command: &str, arguments: Value) -> Value {
        self.run(command, arguments)
            .unwrap_or_else(|e| panic!("{command}: {e:?}"))
    }

    fn open(&self, path: &str, mode: &str) -> i64 {
        self.ok("guest-file-open", json!({"path": path, "mode": mode}))
            .as_i64()
            .unwrap()
    }

    fn read(&self, handle: i64, count: i64) -> Value {
        self.ok("guest-file-read", json!({"handle": handle, "count": count}))
    }

    fn write(&self, handle: i64, base64: &str) -> Value {
        self.ok(
            "guest-file-write",
            json!({"handle": handle, "buf-b64": base64}),
        )
    }

    fn seek(&self, handle: i64, offset: i64, whence: Value) -> Value {
        let arguments = json!({"handle": handle, "offset": offset, "whence": whence});
        self.ok("guest-file-seek", arguments)
    }

    fn close(&self, handle: i64) {
        assert_eq!(
            self.ok("guest-file-close", json!({"handle": handle})),
            json!({})
        );
    }

    fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path)).unwrap()
    }
}

fn agent(root: &Path, state: &Path) -> TestAgent {
    let host =
        TestHost::new(root.display().to_string()).with_state_dir(state.display().to_string());
    TestAgent::new(host)
        .with_plugin(crate::init, json!({}))
        .unwrap()
}

fn error(message: &str) -> Result<Value, CommandError> {
    Err(CommandError::failed(message))
}

fn bad(message: &str) -> Result<Value, CommandError> {
    Err(CommandError::bad_arguments(message))
}

#[test]
fn reading_in_pieces_reports_the_end_as_qemu_ga_does() {
    let guest = Guest::new();
    let handle = guest.open("/etc/hostname", "r");
    assert_eq!(handle, 1000);
    assert_eq!(
        guest.read(handle, 5),
        json!({"count": 5, "buf-b64": "aGVsbG8=", "eof": false})
    );
    assert_eq!(
        guest.read(handle, 7),
        json!({"count": 7, "buf-b64": "IHdvcmxkCg==", "eof": false})
    );
    let end = json!({"count": 0, "buf-b64": "", "eof": true});
    assert_eq!(guest.ok("guest-file-read", json!({"handle": handle})), end);
    assert_eq!(
        guest.read(handle, 0),
        json!({"count": 0, "buf-b64": "", "eof": false})
    );
    assert_eq!(guest.read(handle, 48 << 20), end);
    guest.close(handle);
}

#[test]
fn seeking_by_number_or_name_then_reading() {
    let guest = Guest::new();
    let handle = guest.open("etc/hostname", "rb");
    let at = |position: i64| json!({"position": position, "eof": false});
    assert_eq!(guest.seek(handle, 3, json!(0)), at(3));
    assert_eq!(guest.seek(handle, -2, json!("end")), at(10));
    assert_eq!(
        guest.read(handle, 4096),
        json!({"count": 2, "buf-b64": "ZAo=", "eof": true})
    );
    assert_eq!(guest.seek(handle, -4, json!(1)), at(8));
    assert_eq!(guest.seek(handle, 1, json!("cur")), at(9));
    assert_eq!(guest.seek(handle, 100, json!(2)), at(112));
    assert_eq!(
        guest.read(handle, 10),
        json!({"count": 0, "buf-b64": "", "eof": true})
    );
    assert_eq!(guest.seek(handle, 0, json!("set")), at(0));
    assert_eq!(
        guest.run(
            "guest-file-seek",
            json!({"handle": handle, "offset": -100, "whence": "set"})
        ),
        error("failed to seek file: Invalid argument")
    );
}

#[test]
fn whence_is_checked_as_qemus_visitor_checks_it() {
    let guest = Guest::new();
    let handle = guest.open("/etc/hostname", "r");
    let seek = |whence: Value| {
        guest.run(
            "guest-file-seek",
            json!({"handle": handle, "offset": 0, "whence": whence}),
        )
    };
    for code in [3, -1, i64::MAX, 4294967296] {
        assert_eq!(
            seek(json!(code)),
            error(&format!("invalid whence code {code}"))
        );
    }
    for name in ["foo", "SET", "1"] {
        assert_eq!(
            seek(json!(name)),
            bad(&format!(
                "Parameter 'whence' does not accept value '{name}'"
            ))
        );
    }
    for number in [json!(1.5), json!(1e2), json!(18446744073709551615u64)] {
        assert_eq!(
            seek(number),
            bad("Invalid parameter type for 'whence', expected: integer")
        );
    }
    for other in [json!(true), json!(null), json!([]), json!({})] {
        assert_eq!(
            seek(other),
            bad("Invalid parameter type for 'whence', expected: GuestFileWhence")
        );
    }
    let unknown = json!({"handle": 999, "offset": 0, "whence": 3});
    assert_eq!(
        guest.run("guest-file-seek", unknown),
        error("handle '999' has not been found"),
        "the handle is looked up before the code"
    );
    let both = json!({"handle": 999, "offset": 0, "whence": "foo", "x": 1});
    assert_eq!(
        guest.run("guest-file-seek", both),
        bad("Parameter 'whence' does not accept value 'foo'"),
        "arguments are checked before the handle"
    );
    assert_eq!(
        guest.run("guest-file-seek", json!({"handle": handle, "offset": 0})),
        bad("Parameter 'whence' is missing")
    );
}

#[test]
fn a_written_file_is_new_with_mode_0666_and_holds_the_bytes() {
    let guest = Guest::new();
    let handle = guest.open("/etc/motd", "w");
    assert_eq!(
        guest.write(handle, "QUJD"),
        json!({"count": 3, "eof": false})
    );
    let partial = json!({"handle": handle, "buf-b64": "REVG", "count": 2});
    assert_eq!(
        guest.ok("guest-file-write", partial),
        json!({"count": 2, "eof": false})
    );
    assert_eq!(
        guest.write(handle, "Q\nU\nJ\nD"),
        json!({"count": 3, "eof": false})
    );
    assert_eq!(
        guest.ok("guest-file-flush", json!({"handle": handle})),
        json!({})
    );
    assert_eq!(
        guest.file("etc/motd"),
        "ABCDEABC",
        "written before the close"
    );
    guest.close(handle);
    let mode = std::fs::metadata(guest.root.join("etc/motd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o666, "not reduced by the umask");

    // An existing file keeps its mode; `w` truncates, `a` appends.
    std::fs::set_permissions(
        guest.root.join("etc/motd"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let handle = guest.open("/etc/motd", "a");
    guest.write(handle, "WFla");
    guest.close(handle);
    assert_eq!(guest.file("etc/motd"), "ABCDEABCXYZ");
    let handle = guest.open("/etc/motd", "w+b");
    guest.write(handle, "MTIz");
    guest.seek(handle, 0, json!("set"));
    assert_eq!(
        guest.read(handle, 10),
        json!({"count": 3, "buf-b64": "MTIz", "eof": true})
    );
    guest.close(handle);
    let mode = std::fs::metadata(guest.root.join("etc/motd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
}

#[test]
fn read_write_mode_and_append_mode_share_one_handle() {
    let guest = Guest::new();
    let handle = guest.open("/etc/hostname", "r+");
    guest.seek(handle, 6, json!("set"));
    guest.write(handle, "V09STEQ="); // "WORLD"
    guest.seek(handle, 0, json!("set"));
    assert_eq!(guest.read(handle, 100)["buf-b64"], "aGVsbG8gV09STEQK");
    guest.close(handle);

    let handle = guest.open("/etc/hostname", "a+");
    guest.seek(handle, 0, json!("set"));
    guest.write(handle, "IQ==");
    guest.close(handle);
    assert_eq!(guest.file("etc/hostname"), "hello WORLD\n!");
}

#[test]
fn counts_and_base64_are_checked_with_qemu_gas_texts() {
    let guest = Guest::new();
    let reading = guest.open("/etc/hostname", "r");
    for count in [-1, (48 << 20) + 1] {
        assert_eq!(
            guest.run(
                "guest-file-read",
                json!({"handle": reading, "count": count})
            ),
            error(&format!("value '{count}' is invalid for argument count"))
        );
    }
    for count in [4, -1] {
        let arguments = json!({"handle": reading, "buf-b64": "QUJD", "count": count});
        assert_eq!(
            guest.run("guest-file-write", arguments),
            error(&format!("value '{count}' is invalid for argument count"))
        );
    }
    assert_eq!(
        guest.run(
            "guest-file-write",
            json!({"handle": reading, "buf-b64": "!!"})
        ),
        error("Base64 data contains invalid characters")
    );
    assert_eq!(
        guest.run(
            "guest-file-write",
            json!({"handle": reading, "buf-b64": ""})
        ),
        Ok(json!({"count": 0, "eof": false})),
        "nothing to write on a read-only handle"
    );
    assert_eq!(
        guest.run(
            "guest-file-write",
            json!({"handle": reading, "buf-b64": "QUJD"})
        ),
        error("failed to write to file: Bad file descriptor")
    );
    let directory = guest.open("/etc", "r");
    assert_eq!(
        guest.run("guest-file-read", json!({"handle": directory})),
        error("failed to read file: Is a directory")
    );
}

#[test]
fn unknown_and_closed_handles_are_not_found() {
    let guest = Guest::new();
    let handle = guest.open("/etc/hostname", "r");
    guest.close(handle);
    for unknown in [handle, 5, -1] {
        let message = format!("handle '{unknown}' has not been found");
        for (command, arguments) in [
            ("guest-file-close", json!({"handle": unknown})),
            ("guest-file-flush", json!({"handle": unknown})),
            ("guest-file-read", json!({"handle": unknown, "count": -1})),
            (
                "guest-file-write",
                json!({"handle": unknown, "buf-b64": "!!"}),
            ),
        ] {
            assert_eq!(guest.run(command, arguments), error(&message), "{command}");
        }
    }
}

#[test]
fn open_errors_read_as_qemu_gas() {
    let guest = Guest::new();
    for (path, mode, reason) in [
        ("/etc/nonexist", "r", "No such file or directory"),
        ("relative-nonexist", "r", "No such file or directory"),
        ("", "r", "No such file or directory"),
        ("/etc/hostname/x", "r", "Not a directory"),
        ("/etc", "w", "Is a directory"),
        ("/etc/hostname/", "r", "Not a directory"),
        ("/etc/new/", "w", "Is a directory"),
        ("/etc/", "a+", "Is a directory"),
    ] {
        assert_eq!(
            guest.run("guest-file-open", json!({"path": path, "mode": mode})),
            error(&format!(
                "failed to open file '{path}' (mode: '{mode}'): {reason}"
            ))
        );
    }
    for mode in ["x", "rw", "R", ""] {
        assert_eq!(
            guest.run(
                "guest-file-open",
                json!({"path": "/etc/hostname", "mode": mode})
            ),
            error(&format!("invalid file open mode '{mode}'"))
        );
    }
    for (arguments, message) in [
        (json!({}), "Parameter 'path' is missing"),
        (
            json!({"path": "/etc/hostname", "mode": null}),
            "Invalid parameter type for 'mode', expected: string",
        ),
        (
            json!({"path": "/etc/hostname", "x": 1}),
            "Parameter 'x' is unexpected",
        ),
    ] {
        assert_eq!(guest.run("guest-file-open", arguments), bad(message));
    }
    assert!(!guest.root.join("etc/new").exists());
    let directory = guest.open("/etc/", "r");
    guest.close(directory);
}

#[test]
fn a_fifo_never_blocks_a_read() {
    let guest = Guest::new();
    let fifo = guest.root.join("etc/fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let handle = guest.open("/etc/fifo", "r");
    assert_eq!(
        guest.read(handle, 10),
        json!({"count": 0, "buf-b64": "", "eof": true}),
        "no writer: the end"
    );
    // The agent holds the reading end, so this open does not wait.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    std::io::Write::write_all(&mut writer, b"abc").unwrap();
    assert_eq!(
        guest.read(handle, 10),
        json!({"count": 3, "buf-b64": "YWJj", "eof": false}),
        "what was there, without waiting for more"
    );
    assert_eq!(
        guest.run("guest-file-read", json!({"handle": handle})),
        error("failed to read file: Resource temporarily unavailable")
    );
    drop(writer);
    guest.close(handle);
}

#[test]
fn nothing_outside_the_root_is_opened_or_created() {
    let guest = Guest::new();
    let outside = guest.root.parent().unwrap().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host").unwrap();
    symlink(&outside, guest.root.join("etc/abs")).unwrap();
    symlink("../../outside/secret", guest.root.join("etc/climb")).unwrap();
    symlink(outside.join("new"), guest.root.join("etc/dangling")).unwrap();
    let refused = |path: &str, mode: &str| {
        error(&format!(
            "failed to open file '{path}' (mode: '{mode}'): the path leads out of the agent's root"
        ))
    };
    for (path, mode) in [
        ("../outside/secret", "r"),
        ("/../outside/secret", "r"),
        ("/etc/../../outside/new", "w"),
        ("/etc/climb", "r"),
        ("/etc/climb", "a"),
    ] {
        let answer = guest.run("guest-file-open", json!({"path": path, "mode": mode}));
        assert_eq!(answer, refused(path, mode), "{path}");
    }
    // An absolute link names a path under the root, which is not there.
    for (path, mode) in [("/etc/abs/secret", "r"), ("/etc/dangling", "w")] {
        let answer = guest.run("guest-file-open", json!({"path": path, "mode": mode}));
        let message = answer.unwrap_err().message;
        assert!(message.ends_with("No such file or directory"), "{message}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "host"
    );
    assert!(!outside.join("new").exists());

    // Links that stay inside are followed, as the guest would.
    symlink("hostname", guest.root.join("etc/alias")).unwrap();
    let handle = guest.open("/etc/alias", "r");
    assert_eq!(guest.read(handle, 5)["buf-b64"], "aGVsbG8=");
}

#[test]
fn handles_count_on_across_restarts_and_close_with_the_plugin() {
    let guest = Guest::new();
    assert_eq!(guest.open("/etc/hostname", "r"), 1000);
    assert_eq!(guest.open("/etc/hostname", "r"), 1001);
    let probe = guest.root.join("etc/probe");
    std::fs::write(&probe, "").unwrap();
    guest.open("/etc/probe", "r");
    assert!(open_here(&probe), "the probe is open");
    let Guest {
        _dir,
        root,
        state,
        agent: first,
    } = guest;
    drop(first);
    assert!(!open_here(&probe), "on_shutdown closed it");
    let again = agent(&root, &state);
    let handle = again.run("guest-file-open", r#"{"path":"/etc/hostname"}"#);
    assert_eq!(handle.result, Ok("1003".to_owned()));
    assert_eq!(
        std::fs::read_to_string(state.join("qga-file/next-handle")).unwrap(),
        "1004\n"
    );
}

/// Whether this process holds `path` open.
fn open_here(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|target| target == path)
}

#[test]
fn the_plugin_takes_no_config_keys() {
    let refused = TestAgent::new(TestHost::new("/nonexistent"))
        .with_plugin(crate::init, json!({"root": "/"}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.qga-file] takes no keys; found 'root'"
    );
    let kind = Guest::new()
        .run("guest-file-open", json!({"path": 1}))
        .unwrap_err()
        .kind;
    assert_eq!(kind, ErrorKind::BadArguments);
}
