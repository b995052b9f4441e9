//! Only harmless programs run here: echo, cat, false, sh exiting or killing
//! itself, head reading /dev/zero.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use nova_agent_plugin_api::testing::{TestAgent, TestCall, TestHost};
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

use crate::children::Children;
use crate::pump::MAX_OUTPUT;
use crate::{Exec, ExecStatus};
use nova_agent_support::glib_base64 as base64;

/// The two commands over one table, stopped when dropped.
struct Fixture {
    children: Arc<Children>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            children: Arc::new(Children::new().unwrap()),
        }
    }

    fn exec(&self, arguments: Value) -> Result<i64, CommandError> {
        let exec = Exec {
            children: Arc::clone(&self.children),
        };
        let answer = TestCall::new().run(&exec, &arguments.to_string())?;
        assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
        Ok(answer["pid"].as_i64().unwrap())
    }

    fn status(&self, pid: i64) -> Result<Value, CommandError> {
        let status = ExecStatus {
            children: Arc::clone(&self.children),
        };
        TestCall::new().run(&status, &json!({ "pid": pid }).to_string())
    }

    /// Runs `arguments` to its end; its one exited status.
    fn run(&self, arguments: Value) -> Value {
        let pid = self.exec(arguments).unwrap();
        self.children.wait_finished(pid);
        self.status(pid).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.children.stop();
    }
}

fn decoded(text: &Value) -> Vec<u8> {
    base64::decode(text.as_str().unwrap()).unwrap()
}

/// A FIFO a `cat` can block on until the test writes to it.
fn fifo(dir: &Path) -> PathBuf {
    let path = dir.join("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    path
}

/// Lets whoever reads `fifo` read `text` and its end.
fn release(fifo: &Path, text: &str) {
    let mut writer = fs::OpenOptions::new().write(true).open(fifo).unwrap();
    writer.write_all(text.as_bytes()).unwrap();
}

fn gone(pid: i64) -> bool {
    kill(Pid::from_raw(pid as i32), None) == Err(Errno::ESRCH)
}

#[test]
fn captured_output_is_reported_once_then_forgotten() {
    let fixture = Fixture::new();
    let pid = fixture
        .exec(json!({"path": "/bin/echo", "arg": ["hello", "world"], "capture-output": true}))
        .unwrap();
    fixture.children.wait_finished(pid);
    assert_eq!(
        fixture.status(pid).unwrap(),
        json!({"exited": true, "exitcode": 0, "out-data": "aGVsbG8gd29ybGQK", "out-truncated": false})
    );
    let again = fixture.status(pid).unwrap_err();
    assert_eq!(again.kind, ErrorKind::BadArguments);
    assert_eq!(again.message, "Invalid parameter 'pid'");
}

#[test]
fn a_pid_guest_exec_did_not_start_is_an_invalid_parameter() {
    let fixture = Fixture::new();
    let error = fixture.status(1).unwrap_err();
    assert_eq!(error.message, "Invalid parameter 'pid'");
}

#[test]
fn input_data_is_the_programs_stdin() {
    let fixture = Fixture::new();
    let input = "two\nlines\n\u{0}and a NUL";
    let status = fixture.run(json!({
        "path": "/bin/cat",
        "input-data": base64::encode(input.as_bytes()),
        "capture-output": true,
    }));
    assert_eq!(decoded(&status["out-data"]), input.as_bytes());
    assert_eq!(status["exitcode"], 0);
    let empty = fixture.run(json!({"path": "/bin/cat", "input-data": "", "capture-output": true}));
    assert_eq!(empty, json!({"exited": true, "exitcode": 0}));
}

#[test]
fn exit_codes_and_signals_are_reported_apart() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.run(json!({"path": "/bin/false"})),
        json!({"exited": true, "exitcode": 1})
    );
    assert_eq!(
        fixture.run(json!({"path": "/bin/sh", "arg": ["-c", "exit 3"]})),
        json!({"exited": true, "exitcode": 3})
    );
    assert_eq!(
        fixture.run(json!({"path": "/bin/sh", "arg": ["-c", "kill -9 $$"]})),
        json!({"exited": true, "signal": 9})
    );
}

#[test]
fn stderr_is_captured_apart_and_nothing_without_capture() {
    let fixture = Fixture::new();
    let script = "echo oops >&2";
    let captured =
        fixture.run(json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}));
    assert_eq!(
        captured,
        json!({"exited": true, "exitcode": 0, "err-data": "b29wcwo=", "err-truncated": false})
    );
    let quiet = fixture.run(json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": false}));
    assert_eq!(quiet, json!({"exited": true, "exitcode": 0}));
}

#[test]
fn output_is_capped_at_16_mib_and_marked_truncated() {
    let fixture = Fixture::new();
    let status = fixture.run(json!({
        "path": "/bin/sh",
        "arg": ["-c", format!("head -c {} /dev/zero", MAX_OUTPUT + 1)],
        "capture-output": true,
    }));
    assert_eq!(status["out-truncated"], true);
    assert_eq!(decoded(&status["out-data"]).len(), MAX_OUTPUT);
}

#[test]
fn a_running_program_is_not_exited_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let fixture = Fixture::new();
    let pid = fixture
        .exec(json!({"path": "/bin/cat", "arg": [fifo], "capture-output": true}))
        .unwrap();
    assert_eq!(fixture.status(pid).unwrap(), json!({"exited": false}));
    release(&fifo, "data");
    fixture.children.wait_finished(pid);
    let status = fixture.status(pid).unwrap();
    assert_eq!(decoded(&status["out-data"]), b"data");
}

#[test]
fn captured_output_held_open_by_a_grandchild_keeps_it_running() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let fixture = Fixture::new();
    let script = format!("cat '{}' &", fifo.display());
    let pid = fixture
        .exec(json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}))
        .unwrap();
    fixture.children.wait_reaped(pid);
    assert_eq!(fixture.status(pid).unwrap(), json!({"exited": false}));
    release(&fifo, "late\n");
    fixture.children.wait_finished(pid);
    let status = fixture.status(pid).unwrap();
    assert_eq!(decoded(&status["out-data"]), b"late\n");
    assert_eq!(status["exitcode"], 0);
}

#[test]
fn stopping_kills_and_reaps_running_programs_and_ends_every_thread() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let fixture = Fixture::new();
    let blocked = fixture
        .exec(json!({"path": "/bin/cat", "arg": [fifo]}))
        .unwrap();
    // A grandchild holding the output: its pump must end all the same.
    let script = format!("cat '{}' &", fifo.display());
    let parent = fixture
        .exec(json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}))
        .unwrap();
    fixture.children.wait_reaped(parent);
    let log = captured_log(|| fixture.children.stop());
    assert!(gone(blocked), "pid {blocked} was left running or a zombie");
    assert!(gone(parent));
    assert!(
        log.contains(&format!("guest-exec: killing pid {blocked}, still running")),
        "{log}"
    );
    let refused = fixture.exec(json!({"path": "/bin/echo"})).unwrap_err();
    assert_eq!(refused.message, "guest-exec: the agent is stopping");
    // The grandchild is not ours to kill: let it end.
    release(&fifo, "");
}

#[test]
fn programs_that_cannot_start_fail_with_glibs_words() {
    let fixture = Fixture::new();
    let failure = |reason: &str| {
        format!("Guest agent command failed, error was 'Failed to execute child process {reason}'")
    };
    let cases = [
        (
            json!({"path": "/nonexistent/qga-exec-test"}),
            "\u{201c}/nonexistent/qga-exec-test\u{201d} (No such file or directory)",
        ),
        (
            json!({"path": ""}),
            "\u{201c}\u{201d} (No such file or directory)",
        ),
        (
            json!({"path": "/tmp"}),
            "\u{201c}/tmp\u{201d} (Permission denied)",
        ),
        (
            json!({"path": "no-such-program-qga-exec-test", "env": ["PATH=/nonexistent"]}),
            "\u{201c}no-such-program-qga-exec-test\u{201d} (No such file or directory)",
        ),
    ];
    for (arguments, reason) in cases {
        let error = fixture.exec(arguments.clone()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Failed, "{arguments}");
        assert_eq!(error.message, failure(reason), "{arguments}");
    }
}

#[test]
fn a_bare_name_is_looked_up_on_the_path_of_its_environment() {
    let fixture = Fixture::new();
    let status = fixture.run(json!({
        "path": "sh",
        "arg": ["-c", "echo \"$0|$PATH|$FOO|${EMPTY-unset}\""],
        "env": ["PATH=/usr/bin:/bin", "FOO=first", "FOO=second", "EMPTY"],
        "capture-output": true,
    }));
    assert_eq!(
        String::from_utf8(decoded(&status["out-data"])).unwrap(),
        "sh|/usr/bin:/bin|first|unset\n"
    );
}

#[test]
fn a_file_the_kernel_cannot_execute_runs_through_sh() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("no-shebang");
    fs::write(&script, "echo script ran \"$1\"\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let fixture = Fixture::new();
    let status = fixture.run(json!({"path": script, "arg": ["x"], "capture-output": true}));
    assert_eq!(decoded(&status["out-data"]), b"script ran x\n");
}

#[test]
fn arguments_are_checked_strictly_before_anything_runs() {
    let fixture = Fixture::new();
    let cases = [
        (json!({}), "Parameter 'path' is missing"),
        (
            json!({"path": 1}),
            "Invalid parameter type for 'path', expected: string",
        ),
        (
            json!({"path": "/bin/echo", "arg": "x"}),
            "Invalid parameter type for 'arg', expected: array",
        ),
        (
            json!({"path": "/bin/echo", "arg": [1]}),
            "Invalid parameter type for 'arg[0]', expected: string",
        ),
        (
            json!({"path": "/bin/echo", "env": [true]}),
            "Invalid parameter type for 'env[0]', expected: string",
        ),
        (
            json!({"path": "/bin/echo", "capture-output": "all"}),
            "Invalid parameter type for 'capture-output', expected: boolean",
        ),
        (
            json!({"path": "/bin/echo", "capture-output": null}),
            "Invalid parameter type for 'capture-output', expected: boolean",
        ),
        (
            json!({"path": "/bin/echo", "zz": 1}),
            "Parameter 'zz' is unexpected",
        ),
    ];
    for (arguments, expected) in cases {
        let error = fixture.exec(arguments.clone()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadArguments, "{arguments}");
        assert_eq!(error.message, expected, "{arguments}");
    }
    let bad_input = fixture
        .exec(json!({"path": "/bin/echo", "input-data": "@@@"}))
        .unwrap_err();
    assert_eq!(bad_input.message, "Base64 data contains invalid characters");
    let status = ExecStatus {
        children: Arc::clone(&fixture.children),
    };
    let missing = TestCall::new().run(&status, "{}").unwrap_err();
    assert_eq!(missing.message, "Parameter 'pid' is missing");
}

#[test]
fn the_log_names_the_program_and_never_its_arguments_environment_or_input() {
    let fixture = Fixture::new();
    let log = captured_log(|| {
        let pid = fixture
            .exec(json!({
                "path": "/bin/echo",
                "arg": ["s3cret-arg"],
                "env": ["TOKEN=s3cret-env"],
                "input-data": base64::encode(b"s3cret-input"),
                "capture-output": true,
            }))
            .unwrap();
        fixture.children.wait_finished(pid);
        fixture.status(pid).unwrap();
    });
    assert!(
        log.contains("guest-exec: running \"/bin/echo\" (1 arguments)"),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
}

#[test]
fn it_runs_with_apply_false_and_the_plugin_stop_kills_what_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let agent = TestAgent::new(TestHost::new("/").with_apply(false))
        .with_plugin(super::init, json!({}))
        .unwrap();
    let arguments = json!({"path": "/bin/cat", "arg": [fifo]}).to_string();
    let started = agent.run("guest-exec", &arguments).parsed_value().unwrap();
    let pid = started["pid"].as_i64().unwrap();
    let running = agent.run("guest-exec-status", &json!({ "pid": pid }).to_string());
    assert_eq!(running.parsed_value(), Some(json!({"exited": false})));
    drop(agent);
    assert!(gone(pid), "pid {pid} outlived the plugin");
    let refused = TestAgent::new(TestHost::new("/"))
        .with_plugin(super::init, json!({"shell": "/bin/sh"}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.qga-exec] takes no keys; found 'shell'"
    );
}
