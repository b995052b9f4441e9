use std::fs;
use std::path::Path;

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

use super::{logical_id, GetVcpus, SetVcpus};

/// A sysfs with cpu0 (no `online` file, as on x86), cpu1 online, cpu2
/// offline, and the entries that are not processors.
fn sysfs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let cpu = root.path().join("devices/system/cpu");
    for dir in ["cpu0", "cpu1", "cpu2", "cpufreq", "cpuidle", "hotplug"] {
        fs::create_dir_all(cpu.join(dir)).unwrap();
    }
    fs::write(cpu.join("cpu1/online"), "1\n").unwrap();
    fs::write(cpu.join("cpu2/online"), "0\n").unwrap();
    fs::write(cpu.join("online"), "0-1\n").unwrap();
    fs::write(cpu.join("possible"), "0-2\n").unwrap();
    root
}

fn base(root: &Path) -> String {
    root.to_str().unwrap().to_owned()
}

fn get(root: &Path) -> Result<Value, CommandError> {
    TestCall::new().run(&GetVcpus { sys: base(root) }, "{}")
}

fn set(root: &Path, apply: bool, arguments: Value) -> Result<Value, CommandError> {
    let command = SetVcpus {
        sys: base(root),
        apply,
    };
    TestCall::new().run(&command, &arguments.to_string())
}

fn message(result: Result<Value, CommandError>) -> String {
    result.unwrap_err().message
}

#[test]
fn get_lists_each_processor_in_directory_order() {
    let root = sysfs();
    let listed = get(root.path()).unwrap();
    let order: Vec<i64> = fs::read_dir(root.path().join("devices/system/cpu"))
        .unwrap()
        .filter_map(|e| logical_id(e.unwrap().file_name().to_str().unwrap()))
        .collect();
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["logical-id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, order);
    let by_id = |id: i64| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["logical-id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_id(0),
        json!({"logical-id": 0, "online": true, "can-offline": false})
    );
    assert_eq!(
        by_id(1),
        json!({"logical-id": 1, "online": true, "can-offline": true})
    );
    assert_eq!(
        by_id(2),
        json!({"logical-id": 2, "online": false, "can-offline": true})
    );
}

#[test]
fn get_fails_with_qemu_gas_words() {
    let root = tempfile::tempdir().unwrap();
    let dir = format!("{}/devices/system/cpu", base(root.path()));
    assert_eq!(
        message(get(root.path())),
        format!("failed to list entries: {dir}: No such file or directory")
    );
    fs::create_dir_all(format!("{dir}/cpu4")).unwrap();
    fs::write(format!("{dir}/cpu4/online"), "").unwrap();
    assert_eq!(
        message(get(root.path())),
        format!("pread(\"{dir}/cpu4//online\"): unexpected EOF")
    );
    let bad = TestCall::new().run(&GetVcpus { sys: dir }, r#"{"a":1}"#);
    assert_eq!(bad.unwrap_err().kind, ErrorKind::BadArguments);
}

#[test]
fn processors_without_an_online_file_cannot_go_offline() {
    let root = sysfs();
    let cpu0_offline = json!({"vcpus": [{"logical-id": 0, "online": false}]});
    let error = set(root.path(), true, cpu0_offline).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert_eq!(error.message, "logical processor #0 can't be offlined");
    let cpu0_online = json!({"vcpus": [{"logical-id": 0, "online": true}]});
    assert_eq!(set(root.path(), true, cpu0_online).unwrap(), json!(1));
}

#[test]
fn set_writes_online_only_with_apply_and_only_when_it_changes() {
    let root = sysfs();
    let cpu1 = root.path().join("devices/system/cpu/cpu1/online");
    let offline = json!({"vcpus": [{"logical-id": 1, "online": false, "can-offline": true}]});
    let log = captured_log(|| {
        assert_eq!(set(root.path(), false, offline.clone()).unwrap(), json!(1));
    });
    assert_eq!(fs::read_to_string(&cpu1).unwrap(), "1\n");
    assert!(
        log.contains(&format!(
            "guest-set-vcpus: not writing (apply = false): 0 > {}/devices/system/cpu/cpu1//online",
            base(root.path())
        )),
        "{log}"
    );

    assert_eq!(set(root.path(), true, offline).unwrap(), json!(1));
    assert_eq!(fs::read_to_string(&cpu1).unwrap(), "0\n");

    // Already online: nothing is written, and it still counts.
    let cpu2 = root.path().join("devices/system/cpu/cpu2/online");
    fs::write(&cpu2, "1").unwrap();
    let log = captured_log(|| {
        let online = json!({"vcpus": [{"logical-id": 2, "online": true}]});
        assert_eq!(set(root.path(), true, online).unwrap(), json!(1));
    });
    assert!(!log.contains("writing"), "{log}");
}

#[test]
fn set_counts_what_it_did_before_a_failure_and_fails_only_on_the_first() {
    let root = sysfs();
    let dir = format!("{}/devices/system/cpu", base(root.path()));
    let later = json!({"vcpus": [
        {"logical-id": 1, "online": true},
        {"logical-id": 99, "online": true},
        {"logical-id": 2, "online": true},
    ]});
    assert_eq!(set(root.path(), false, later).unwrap(), json!(1));
    let first = json!({"vcpus": [{"logical-id": 99, "online": true}]});
    assert_eq!(
        message(set(root.path(), false, first)),
        format!("open(\"{dir}/cpu99/\"): No such file or directory")
    );
    assert_eq!(
        set(root.path(), false, json!({"vcpus": []})).unwrap(),
        json!(0)
    );
}

#[test]
fn set_checks_its_arguments_member_by_member() {
    let root = sysfs();
    let cases = [
        (json!({}), "Parameter 'vcpus' is missing"),
        (
            json!({"vcpus": [{"logical-id": "a", "online": false}]}),
            "Invalid parameter type for 'vcpus[0].logical-id', expected: integer",
        ),
        (
            json!({"vcpus": [{"logical-id": 0}]}),
            "Parameter 'vcpus[0].online' is missing",
        ),
        (
            json!({"vcpus": [{"logical-id": 0, "online": true, "can-offline": 1}]}),
            "Invalid parameter type for 'vcpus[0].can-offline', expected: boolean",
        ),
        (
            json!({"vcpus": [{"logical-id": 0, "online": true, "x": 1}]}),
            "Parameter 'vcpus[0].x' is unexpected",
        ),
        (
            json!({"vcpus": [{"logical-id": 0, "online": true}], "x": 1}),
            "Parameter 'x' is unexpected",
        ),
    ];
    for (arguments, expected) in cases {
        let error = set(root.path(), true, arguments.clone()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadArguments, "{arguments}");
        assert_eq!(error.message, expected, "{arguments}");
    }
}

#[test]
fn processor_numbers_are_read_as_sscanf_reads_them() {
    assert_eq!(logical_id("cpu0"), Some(0));
    assert_eq!(logical_id("cpu17"), Some(17));
    assert_eq!(logical_id("cpu3x"), Some(3));
    assert_eq!(logical_id("cpu-1"), Some(-1));
    for name in [
        "cpufreq",
        "cpuidle",
        "cpu",
        "online",
        "cpu-",
        "vulnerabilities",
    ] {
        assert_eq!(logical_id(name), None, "{name}");
    }
}

#[test]
fn the_live_system_lists_every_processor_directory() {
    let live = Path::new("/sys/devices/system/cpu");
    if !live.is_dir() {
        return;
    }
    let listed = TestCall::new()
        .run(&GetVcpus { sys: "/sys".into() }, "{}")
        .unwrap();
    let mut ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["logical-id"].as_i64().unwrap())
        .collect();
    let mut expected: Vec<i64> = fs::read_dir(live)
        .unwrap()
        .filter_map(|e| logical_id(e.unwrap().file_name().to_str().unwrap()))
        .collect();
    ids.sort_unstable();
    expected.sort_unstable();
    assert!(!ids.is_empty());
    assert_eq!(ids, expected);
}
