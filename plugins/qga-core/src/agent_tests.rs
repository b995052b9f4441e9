//! Through the agent's dispatch rules (`TestAgent`), as a QGA request would
//! reach each command.

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::ErrorKind;
use serde_json::json;

use super::{agent_on, error, value, Sandbox};

const COMMANDS: [&str; 15] = [
    "guest-get-host-name",
    "guest-get-load",
    "guest-get-osinfo",
    "guest-get-time",
    "guest-get-timezone",
    "guest-get-users",
    "guest-info",
    "guest-ping",
    "guest-set-time",
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-hybrid",
    "guest-suspend-ram",
    "guest-sync",
    "guest-sync-delimited",
];

/// The commands whose success qemu-ga does not answer.
const NO_SUCCESS_RESPONSE: [&str; 4] = [
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-hybrid",
    "guest-suspend-ram",
];

fn sorted_commands() -> Vec<&'static str> {
    let mut names = COMMANDS.to_vec();
    names.sort_unstable();
    names
}

#[test]
fn the_plugin_registers_its_commands_with_qemus_names_and_reply_flags() {
    let agent = Sandbox::new().agent(false);
    let commands = agent.host().commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, sorted_commands());
    for command in &commands {
        let expected = !NO_SUCCESS_RESPONSE.contains(&command.name.as_str());
        assert_eq!(command.success_response, expected, "{}", command.name);
        assert!(command.enabled, "{}", command.name);
    }
}

#[test]
fn guest_info_lists_every_registered_command_vendors_and_denied_ones_included() {
    let host = TestHost::new("/")
        .with_agent_version("2.0.0")
        .with_commands(["password", "vendor-thing"])
        .with_deny(["guest-get-time"]);
    let agent = agent_on(host);
    let info = value(&agent, "guest-info", "{}");
    assert_eq!(info["version"], "2.0.0");
    let listed = info["supported_commands"].as_array().unwrap();
    let mut expected = sorted_commands();
    expected.extend(["password", "vendor-thing"]);
    expected.sort_unstable();
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, expected);
    for entry in listed {
        let name = entry["name"].as_str().unwrap();
        let keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["enabled", "name", "success-response"]);
        assert_eq!(entry["enabled"], json!(name != "guest-get-time"), "{name}");
        let answered = !NO_SUCCESS_RESPONSE.contains(&name);
        assert_eq!(entry["success-response"], json!(answered), "{name}");
    }
}

#[test]
fn sync_echoes_any_int64_and_refuses_anything_else_in_qemus_words() {
    let agent = Sandbox::new().agent(false);
    for command in ["guest-sync", "guest-sync-delimited"] {
        for id in ["123456789", "-5", "9223372036854775807", "1700000000000"] {
            let arguments = format!(r#"{{"id":{id}}}"#);
            assert_eq!(value(&agent, command, &arguments).to_string(), id);
        }
        let bad = |arguments: &str| error(&agent, command, arguments, ErrorKind::BadArguments);
        let not_int = "Invalid parameter type for 'id', expected: integer";
        assert_eq!(bad(r#"{"id":18446744073709551615}"#), not_int);
        assert_eq!(bad(r#"{"id":1.5}"#), not_int);
        assert_eq!(bad(r#"{"id":"x"}"#), not_int);
        assert_eq!(bad("{}"), "Parameter 'id' is missing");
        assert_eq!(bad(r#"{"id":1,"x":2}"#), "Parameter 'x' is unexpected");
    }
}

#[test]
fn commands_without_arguments_refuse_any_as_qemu_does() {
    let agent = Sandbox::new().agent(false);
    for command in sorted_commands() {
        if matches!(command, "guest-sync" | "guest-sync-delimited") {
            continue;
        }
        let message = error(
            &agent,
            command,
            r#"{"bogus":true}"#,
            ErrorKind::BadArguments,
        );
        assert_eq!(message, "Parameter 'bogus' is unexpected", "{command}");
    }
}

#[test]
fn ping_answers_an_empty_object() {
    let agent = Sandbox::new().agent(false);
    assert_eq!(value(&agent, "guest-ping", "{}"), json!({}));
}

#[test]
fn osinfo_has_the_live_uname_and_the_roots_os_release() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.root.join("etc")).unwrap();
    std::fs::write(
        sandbox.root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
         VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\nHOME_URL=\"x\"\n",
    )
    .unwrap();
    let info = value(&sandbox.agent(false), "guest-get-osinfo", "{}");
    let uname = nix::sys::utsname::uname().unwrap();
    let expected = json!({
        "kernel-release": uname.release().to_str().unwrap(),
        "kernel-version": uname.version().to_str().unwrap(),
        "machine": uname.machine().to_str().unwrap(),
        "id": "debian",
        "name": "Debian GNU/Linux",
        "pretty-name": "Debian GNU/Linux 12 (bookworm)",
        "version": "12 (bookworm)",
        "version-id": "12",
    });
    assert_eq!(info, expected);
}

#[test]
fn osinfo_without_an_os_release_file_has_the_kernel_only() {
    let info = value(&Sandbox::new().agent(false), "guest-get-osinfo", "{}");
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["kernel-release", "kernel-version", "machine"]);
}

#[test]
fn host_name_is_the_kernels() {
    let name = value(&Sandbox::new().agent(false), "guest-get-host-name", "{}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(name, json!({ "host-name": kernel.trim_end() }));
}

#[test]
fn time_is_an_int64_of_nanoseconds_with_microsecond_precision() {
    let agent = Sandbox::new().agent(false);
    let before = nanos_now();
    let time = value(&agent, "guest-get-time", "{}").as_i64().unwrap();
    let after = nanos_now();
    assert_eq!(time % 1_000, 0, "{time}");
    assert!(
        before - 1_000 <= time && time <= after,
        "{before} {time} {after}"
    );
}

fn nanos_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_nanos()).unwrap()
}

#[test]
fn timezone_is_the_current_abbreviation_and_offset_east_of_utc() {
    let zone = value(&Sandbox::new().agent(false), "guest-get-timezone", "{}");
    let offset = zone["offset"].as_i64().unwrap();
    assert!(offset.abs() <= 15 * 3600, "{zone}");
    let abbreviation = zone["zone"].as_str().unwrap();
    assert!(!abbreviation.is_empty(), "{zone}");
    let keys: Vec<&str> = zone
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["offset", "zone"]);
}

#[test]
fn load_is_three_doubles() {
    let load = value(&Sandbox::new().agent(false), "guest-get-load", "{}");
    for key in ["load1m", "load5m", "load15m"] {
        assert!(load[key].as_f64().is_some_and(|v| v >= 0.0), "{load}");
    }
    assert_eq!(load.as_object().unwrap().len(), 3, "{load}");
}

#[test]
fn users_come_from_the_roots_utmp_and_none_without_one() {
    let sandbox = Sandbox::new();
    let agent = sandbox.agent(false);
    assert_eq!(value(&agent, "guest-get-users", "{}"), json!([]));

    let record = |user: &[u8], seconds: i32, micros: i32| {
        let mut record = vec![0u8; 384];
        record[0..2].copy_from_slice(&7i16.to_le_bytes());
        record[44..44 + user.len()].copy_from_slice(user);
        record[340..344].copy_from_slice(&seconds.to_le_bytes());
        record[344..348].copy_from_slice(&micros.to_le_bytes());
        record
    };
    let utmp = [
        record(b"alice", 1_700_000_000, 250_000),
        record(b"bob", 1_700_000_100, 0),
    ]
    .concat();
    std::fs::create_dir_all(sandbox.root.join("var/run")).unwrap();
    std::fs::write(sandbox.root.join("var/run/utmp"), utmp).unwrap();
    let users = value(&agent, "guest-get-users", "{}");
    assert_eq!(
        users.to_string(),
        r#"[{"login-time":1700000000.25,"user":"alice"},{"login-time":1700000100,"user":"bob"}]"#
    );
}

#[test]
fn shutdown_with_apply_false_logs_qemus_command_and_answers_nothing_on_success() {
    let agent = Sandbox::new().agent(false);
    for (arguments, flag) in [
        ("{}", "-P"),
        (r#"{"mode":"powerdown"}"#, "-P"),
        (r#"{"mode":"halt"}"#, "-H"),
        (r#"{"mode":"reboot"}"#, "-r"),
    ] {
        let log = nova_agent_support::testing::captured_log(|| {
            let outcome = agent.run("guest-shutdown", arguments);
            assert_eq!(outcome.result, Ok("{}".to_owned()));
            assert!(!outcome.success_response);
        });
        let line = format!(
            "not running (apply = false): /sbin/shutdown -h {flag} +0 'hypervisor initiated shutdown'"
        );
        assert!(log.contains(&line), "{log}");
    }
}

#[test]
fn shutdown_refuses_a_bad_mode_with_qemus_text_and_answers_it() {
    let agent: TestAgent = Sandbox::new().agent(false);
    let outcome = agent.run("guest-shutdown", r#"{"mode":"bogus"}"#);
    let error = outcome.result.unwrap_err();
    assert_eq!(
        error.message,
        "mode is invalid (valid values are: halt|powerdown|reboot"
    );
    assert!(!outcome.success_response, "the parser still answers errors");
    let bad = |arguments: &str| error_text(&agent, arguments);
    assert_eq!(
        bad(r#"{"mode":1}"#),
        "Invalid parameter type for 'mode', expected: string"
    );
    assert_eq!(
        bad(r#"{"mode":null}"#),
        "Invalid parameter type for 'mode', expected: string"
    );
    assert_eq!(
        bad(r#"{"mode":"reboot","x":1}"#),
        "Parameter 'x' is unexpected"
    );
}

fn error_text(agent: &TestAgent, arguments: &str) -> String {
    error(agent, "guest-shutdown", arguments, ErrorKind::BadArguments)
}

#[test]
fn set_time_checks_its_argument_strictly() {
    let agent = Sandbox::new().agent(false);
    let bad = |arguments: &str| error(&agent, "guest-set-time", arguments, ErrorKind::BadArguments);
    let not_int = "Invalid parameter type for 'time', expected: integer";
    assert_eq!(bad(r#"{"time":"x"}"#), not_int);
    assert_eq!(bad(r#"{"time":null}"#), not_int);
    assert_eq!(bad(r#"{"time":1.5}"#), not_int);
    assert_eq!(bad(r#"{"tim":1}"#), "Parameter 'tim' is unexpected");
}

#[test]
fn any_config_key_is_refused() {
    let refused = TestAgent::new(TestHost::new("/"))
        .with_plugin(crate::init, json!({"verbose": true}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.qga-core] takes no keys; found 'verbose'"
    );
}
