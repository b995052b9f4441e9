//! Shutdown and suspend against stub programs and a stand-in for
//! /sys/power/state: nothing here can power off, suspend or write to /sys.

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{Command, ErrorKind};
use nova_agent_support::runner::Runner;
use nova_agent_support::testing::captured_log;
use serde_json::json;

use super::{Mode, Shutdown, Suspend, NOT_SUPPORTED};
use crate::tests::{failure, programs, Sandbox};

/// A `systemctl` that reports its units as `status_exit` (3: exists, not
/// running; 4: no such unit) and exits `exit` for anything else.
fn stub_systemctl(sandbox: &Sandbox, status_exit: i32, exit: i32) {
    let script = format!("case \"$1\" in status) exit {status_exit};; *) exit {exit};; esac");
    sandbox.stub_script("systemctl", &script);
}

fn suspend(sandbox: &Sandbox, mode: Mode, apply: bool) -> Suspend {
    Suspend {
        mode,
        runner: Runner::new(apply),
        probe: Runner::new(true),
        system: sandbox.system(),
    }
}

fn shutdown(sandbox: &Sandbox, apply: bool) -> Shutdown {
    Shutdown {
        runner: Runner::new(apply),
        system: sandbox.system(),
    }
}

#[test]
fn neither_command_answers_its_success() {
    let sandbox = Sandbox::new();
    assert!(!shutdown(&sandbox, false).success_response());
    assert!(!suspend(&sandbox, Mode::Ram, false).success_response());
}

#[test]
fn shutdown_runs_qemus_exact_command() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("shutdown", 0);
    let answer = TestCall::new().run(&shutdown(&sandbox, true), r#"{"mode":"reboot"}"#);
    assert_eq!(answer, Ok(json!({})));
    let args = sandbox.args("shutdown").unwrap();
    assert_eq!(args, ["-h", "-r", "+0", "hypervisor initiated shutdown"]);
}

#[test]
fn a_failed_or_missing_shutdown_is_reported_in_qemus_words() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    let command = shutdown(&sandbox, true);
    let missing = TestCall::new().run(&command, "{}");
    assert_eq!(
        failure(missing, ErrorKind::Failed),
        "child process has failed to shutdown"
    );
    sandbox.stub("shutdown", 1);
    let refused = TestCall::new().run(&command, "{}");
    assert_eq!(
        failure(refused, ErrorKind::Failed),
        "child process has failed to shutdown"
    );
    sandbox.stub_script("shutdown", "kill -9 $$");
    let killed = TestCall::new().run(&command, "{}");
    assert_eq!(
        failure(killed, ErrorKind::Failed),
        "child process has terminated abnormally"
    );
}

#[test]
fn systemd_suspends_when_it_knows_the_unit() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    stub_systemctl(&sandbox, 3, 0);
    for (mode, unit, verb) in [
        (Mode::Disk, "systemd-hibernate", "hibernate"),
        (Mode::Ram, "systemd-suspend", "suspend"),
        (Mode::Hybrid, "systemd-hybrid-sleep", "hybrid-sleep"),
    ] {
        std::fs::remove_file(sandbox.tools.join("systemctl.args")).ok();
        let answer = TestCall::new().run(&suspend(&sandbox, mode, true), "{}");
        assert_eq!(answer, Ok(json!({})), "{mode:?}");
        assert_eq!(sandbox.args("systemctl").unwrap(), ["status", unit, verb]);
    }
}

#[test]
fn with_apply_false_only_the_question_runs_and_the_suspend_is_logged() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    stub_systemctl(&sandbox, 3, 0);
    let log = captured_log(|| {
        let answer = TestCall::new().run(&suspend(&sandbox, Mode::Ram, false), "{}");
        assert_eq!(answer, Ok(json!({})));
    });
    assert_eq!(
        sandbox.args("systemctl").unwrap(),
        ["status", "systemd-suspend"]
    );
    let line = format!(
        "not running (apply = false): {} suspend",
        sandbox.tool("systemctl")
    );
    assert!(log.contains(&line), "{log}");
}

#[test]
fn pm_utils_is_next_when_systemd_lacks_the_unit_or_fails() {
    let _programs = programs();
    for (status, exit) in [(4, 0), (3, 1)] {
        let sandbox = Sandbox::new();
        stub_systemctl(&sandbox, status, exit);
        sandbox.stub("pm-is-supported", 0);
        sandbox.stub("pm-hibernate", 0);
        let answer = TestCall::new().run(&suspend(&sandbox, Mode::Disk, true), "{}");
        assert_eq!(answer, Ok(json!({})), "systemctl {status} {exit}");
        assert_eq!(sandbox.args("pm-is-supported").unwrap(), ["--hibernate"]);
        // One run without arguments: the stub's printf writes one empty line.
        assert_eq!(sandbox.args("pm-hibernate").unwrap(), [""]);
    }
}

#[test]
fn the_last_failure_is_reported_when_no_later_way_is_supported() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    stub_systemctl(&sandbox, 3, 5);
    let answer = TestCall::new().run(&suspend(&sandbox, Mode::Ram, true), "{}");
    assert_eq!(
        failure(answer, ErrorKind::Failed),
        "the helper program 'systemctl suspend' returned an unexpected exit status code (5)"
    );

    let sandbox = Sandbox::new();
    sandbox.stub("pm-is-supported", 0);
    let answer = TestCall::new().run(&suspend(&sandbox, Mode::Hybrid, true), "{}");
    assert_eq!(
        failure(answer, ErrorKind::Failed),
        "the helper program 'pm-suspend-hybrid' was not found"
    );
    assert_eq!(
        sandbox.args("pm-is-supported").unwrap(),
        ["--suspend-hybrid"]
    );
}

#[test]
fn the_kernel_state_file_is_the_last_way() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("pm-is-supported", 1);
    std::fs::write(&sandbox.power_state, "freeze mem disk\n").unwrap();

    let log = captured_log(|| {
        let answer = TestCall::new().run(&suspend(&sandbox, Mode::Ram, false), "{}");
        assert_eq!(answer, Ok(json!({})));
    });
    let line = format!(
        "not writing (apply = false): mem to {}",
        sandbox.power_state.display()
    );
    assert!(log.contains(&line), "{log}");
    let offered = std::fs::read_to_string(&sandbox.power_state).unwrap();
    assert_eq!(offered, "freeze mem disk\n", "untouched with apply = false");

    let answer = TestCall::new().run(&suspend(&sandbox, Mode::Disk, true), "{}");
    assert_eq!(answer, Ok(json!({})));
    assert_eq!(
        std::fs::read_to_string(&sandbox.power_state).unwrap(),
        "disk"
    );
}

#[test]
fn a_mode_no_way_supports_is_refused() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    // The kernel has no hybrid state; "standby" is not "mem".
    std::fs::write(&sandbox.power_state, "freeze mem disk\n").unwrap();
    let answer = TestCall::new().run(&suspend(&sandbox, Mode::Hybrid, true), "{}");
    assert_eq!(failure(answer, ErrorKind::Failed), NOT_SUPPORTED);

    std::fs::write(&sandbox.power_state, "freeze standby\n").unwrap();
    stub_systemctl(&sandbox, 4, 0);
    let answer = TestCall::new().run(&suspend(&sandbox, Mode::Ram, true), "{}");
    assert_eq!(failure(answer, ErrorKind::Failed), NOT_SUPPORTED);
    assert_eq!(
        sandbox.args("systemctl").unwrap(),
        ["status", "systemd-suspend"],
        "only asked"
    );
}
