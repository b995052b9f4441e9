//! `guest-set-time` against stub programs and a clock that only records:
//! no test sets the real clock.

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::runner::Runner;
use nova_agent_support::testing::captured_log;
use serde_json::json;

use super::{local_time, SetTime};
use crate::tests::{failure, programs, Sandbox};
use crate::UNSUPPORTED;

/// 2023-11-14T22:13:20.123456789Z.
const TIME: i64 = 1_700_000_000_123_456_789;

fn set_time(sandbox: &Sandbox, apply: bool) -> SetTime {
    SetTime {
        runner: Runner::new(apply),
        system: sandbox.system(),
    }
}

#[test]
fn without_hwclock_nothing_is_supported() {
    let sandbox = Sandbox::new();
    for apply in [false, true] {
        for arguments in [format!(r#"{{"time":{TIME}}}"#), "{}".to_owned()] {
            let answer = TestCall::new().run(&set_time(&sandbox, apply), &arguments);
            assert_eq!(failure(answer, ErrorKind::Failed), UNSUPPORTED);
        }
    }
    assert_eq!(sandbox.clock_calls(), []);
}

#[test]
fn with_apply_false_the_clock_and_hwclock_are_only_logged() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    let command = set_time(&sandbox, false);
    let log = captured_log(|| {
        let arguments = format!(r#"{{"time":{TIME}}}"#);
        assert_eq!(TestCall::new().run(&command, &arguments), Ok(json!({})));
        assert_eq!(TestCall::new().run(&command, "{}"), Ok(json!({})));
    });
    assert_eq!(sandbox.clock_calls(), []);
    assert_eq!(sandbox.args("hwclock"), None, "nothing ran");
    assert!(
        log.contains(
            "not setting the clock (apply = false): it would be set to 1700000000 s 123456789 ns"
        ),
        "{log}"
    );
    let hwclock = sandbox.tool("hwclock");
    assert!(
        log.contains(&format!("not running (apply = false): {hwclock} -w")),
        "{log}"
    );
    assert!(
        log.contains(&format!("not running (apply = false): {hwclock} -s")),
        "{log}"
    );
}

#[test]
fn a_time_sets_the_clock_then_the_hardware_clock_from_it() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    let arguments = format!(r#"{{"time":{TIME}}}"#);
    let answer = TestCall::new().run(&set_time(&sandbox, true), &arguments);
    assert_eq!(answer, Ok(json!({})));
    assert_eq!(sandbox.clock_calls(), [(1_700_000_000, 123_456_789)]);
    assert_eq!(sandbox.args("hwclock").unwrap(), ["-w"]);
}

#[test]
fn no_time_sets_the_clock_from_the_hardware_clock() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    let answer = TestCall::new().run(&set_time(&sandbox, true), "{}");
    assert_eq!(answer, Ok(json!({})));
    assert_eq!(sandbox.clock_calls(), []);
    assert_eq!(sandbox.args("hwclock").unwrap(), ["-s"]);
}

#[test]
fn a_failing_hwclock_is_reported_in_qemus_words() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 1);
    let answer = TestCall::new().run(&set_time(&sandbox, true), "{}");
    assert_eq!(
        failure(answer, ErrorKind::Failed),
        "hwclock failed to set hardware clock to system time"
    );
}

#[test]
fn times_outside_1970_to_2069_are_invalid_and_never_reach_the_clock() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    // Mid-year moments, so that no time zone moves them across a year.
    for time in [
        -1_000_000_000_000_000_000_i64,
        -15_000_000_000_000_000,
        3_171_500_000_000_000_000,
    ] {
        let arguments = format!(r#"{{"time":{time}}}"#);
        let answer = TestCall::new().run(&set_time(&sandbox, true), &arguments);
        assert_eq!(failure(answer, ErrorKind::Failed), "Invalid time", "{time}");
    }
    assert_eq!(sandbox.clock_calls(), []);
    assert_eq!(sandbox.args("hwclock"), None);
}

#[test]
fn the_clock_gets_the_time_to_the_nanosecond() {
    // 1970-07-01T00:00:00.000000001Z.
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    let answer = TestCall::new().run(&set_time(&sandbox, true), r#"{"time":15638400000000001}"#);
    assert_eq!(answer, Ok(json!({})));
    assert_eq!(sandbox.clock_calls(), [(15_638_400, 1)]);
}

#[test]
fn a_clock_the_kernel_refuses_is_reported_with_its_reason() {
    let _programs = programs();
    let sandbox = Sandbox::new();
    sandbox.stub("hwclock", 0);
    let mut system = crate::System::live();
    system.tools = Some(sandbox.tools.clone());
    system.set_clock = std::sync::Arc::new(|_| Err(nix::errno::Errno::EPERM));
    let command = SetTime {
        runner: Runner::new(true),
        system: std::sync::Arc::new(system),
    };
    let answer = TestCall::new().run(&command, &format!(r#"{{"time":{TIME}}}"#));
    assert_eq!(
        failure(answer, ErrorKind::Failed),
        "Failed to set time to guest: Operation not permitted"
    );
    assert_eq!(
        sandbox.args("hwclock"),
        None,
        "no hwclock after a refused clock"
    );
}

#[test]
fn local_time_knows_the_year_and_a_whole_minute_offset() {
    let local = local_time(1_700_000_000).unwrap();
    assert!((2023..=2024).contains(&local.year), "{local:?}");
    assert_eq!(local.offset % 60, 0, "{local:?}");
    assert!(local.zone.is_some_and(|zone| !zone.is_empty()));
    let epoch = local_time(0).unwrap();
    assert!((1969..=1970).contains(&epoch.year), "{epoch:?}");
}
