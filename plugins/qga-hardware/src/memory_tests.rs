use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

use super::{strtol_hex, strtoul, GetMemoryBlockInfo, GetMemoryBlocks, SetMemoryBlocks};

/// A sysfs with block 0 online and removable, block 7 offline and not
/// removable, block 9 from an old kernel (no `state`), and the files that
/// are not blocks.
fn sysfs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let memory = root.path().join("devices/system/memory");
    for (block, state, removable) in [
        ("memory0", "online\n", "1\n"),
        ("memory7", "offline\n", "0\n"),
    ] {
        fs::create_dir_all(memory.join(block)).unwrap();
        fs::write(memory.join(block).join("state"), state).unwrap();
        fs::write(memory.join(block).join("removable"), removable).unwrap();
    }
    fs::create_dir_all(memory.join("memory9")).unwrap();
    fs::create_dir_all(memory.join("power")).unwrap();
    fs::write(memory.join("block_size_bytes"), "8000000\n").unwrap();
    fs::write(memory.join("auto_online_blocks"), "online\n").unwrap();
    root
}

fn base(root: &Path) -> String {
    root.to_str().unwrap().to_owned()
}

fn get(root: &Path) -> Result<Value, CommandError> {
    TestCall::new().run(&GetMemoryBlocks { sys: base(root) }, "{}")
}

fn set(root: &Path, apply: bool, arguments: Value) -> Result<Value, CommandError> {
    let command = SetMemoryBlocks {
        sys: base(root),
        apply,
    };
    TestCall::new().run(&command, &arguments.to_string())
}

fn info(root: &Path) -> Result<Value, CommandError> {
    TestCall::new().run(&GetMemoryBlockInfo { sys: base(root) }, "{}")
}

fn sorted(blocks: Value) -> Vec<Value> {
    let mut blocks = blocks.as_array().unwrap().clone();
    blocks.sort_by_key(|b| b["phys-index"].as_u64().unwrap());
    blocks
}

#[test]
fn get_lists_each_block_with_its_state() {
    let root = sysfs();
    assert_eq!(
        sorted(get(root.path()).unwrap()),
        [
            json!({"phys-index": 0, "online": true, "can-offline": true}),
            json!({"phys-index": 7, "online": false, "can-offline": false}),
            json!({"phys-index": 9, "online": true, "can-offline": false}),
        ]
    );
}

#[test]
fn get_without_the_directory_lists_nothing_and_with_no_block_fails() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(get(root.path()).unwrap(), json!([]));
    fs::create_dir_all(root.path().join("devices/system/memory/power")).unwrap();
    let error = get(root.path()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert_eq!(error.message, "guest reported zero memory blocks!");
}

#[test]
fn get_fails_on_a_state_it_cannot_read() {
    let root = sysfs();
    let state = root.path().join("devices/system/memory/memory7/state");
    fs::write(&state, "").unwrap();
    assert_eq!(
        get(root.path()).unwrap_err().message,
        "pread sysfs file \"state\": unexpected EOF"
    );
    fs::remove_file(&state).unwrap();
    fs::create_dir(&state).unwrap();
    assert_eq!(
        get(root.path()).unwrap_err().message,
        "pread sysfs file \"state\": Is a directory"
    );
}

#[test]
fn set_answers_each_block_as_qemu_ga_does() {
    let root = sysfs();
    let asked = json!({"mem-blks": [
        {"phys-index": 0, "online": true},
        {"phys-index": 3, "online": true},
        {"phys-index": 9, "online": true},
        {"phys-index": 9, "online": false, "can-offline": true},
        {"phys-index": -1, "online": true},
    ]});
    assert_eq!(
        set(root.path(), true, asked).unwrap(),
        json!([
            {"phys-index": 0, "response": "success"},
            {"phys-index": 3, "response": "not-found", "error-code": 2},
            {"phys-index": 9, "response": "success", "error-code": 2},
            {"phys-index": 9, "response": "operation-not-supported", "error-code": 2},
            {"phys-index": 18446744073709551615_u64, "response": "not-found", "error-code": 2},
        ])
    );
    let bare = tempfile::tempdir().unwrap();
    assert_eq!(
        set(
            bare.path(),
            true,
            json!({"mem-blks": [{"phys-index": 0, "online": true}]})
        )
        .unwrap(),
        json!([{"phys-index": 0, "response": "operation-not-supported", "error-code": 2}])
    );
    assert_eq!(
        set(root.path(), true, json!({"mem-blks": []})).unwrap(),
        json!([])
    );
}

#[test]
fn set_writes_state_only_with_apply() {
    let root = sysfs();
    let state = root.path().join("devices/system/memory/memory7/state");
    let online = json!({"mem-blks": [{"phys-index": 7, "online": true}]});
    let log = captured_log(|| {
        assert_eq!(
            set(root.path(), false, online.clone()).unwrap(),
            json!([{"phys-index": 7, "response": "success"}])
        );
    });
    assert_eq!(fs::read_to_string(&state).unwrap(), "offline\n");
    assert!(
        log.contains("guest-set-memory-blocks: not writing (apply = false): online > "),
        "{log}"
    );
    assert_eq!(
        set(root.path(), true, online).unwrap(),
        json!([{"phys-index": 7, "response": "success"}])
    );
    assert!(fs::read_to_string(&state).unwrap().starts_with("online"));
}

#[test]
fn a_state_that_cannot_be_written_is_an_operation_failure() {
    if nix::unistd::geteuid().is_root() {
        return; // root writes whatever the mode says
    }
    let root = sysfs();
    let state = root.path().join("devices/system/memory/memory7/state");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(
        set(
            root.path(),
            true,
            json!({"mem-blks": [{"phys-index": 7, "online": true}]})
        )
        .unwrap(),
        json!([{"phys-index": 7, "response": "operation-failed", "error-code": 13}])
    );
}

#[test]
fn set_checks_its_arguments_member_by_member() {
    let root = sysfs();
    let cases = [
        (json!({}), "Parameter 'mem-blks' is missing"),
        (
            json!({"mem-blks": [{"phys-index": "x", "online": true}]}),
            "Parameter 'mem-blks[0].phys-index' expects uint64",
        ),
        (
            json!({"mem-blks": [{"phys-index": 1.5, "online": true}]}),
            "Parameter 'mem-blks[0].phys-index' expects uint64",
        ),
        (
            json!({"mem-blks": [{"phys-index": 0, "online": true}, {"online": true}]}),
            "Parameter 'mem-blks[1].phys-index' is missing",
        ),
        (
            json!({"mem-blks": [{"phys-index": 1, "online": "x"}]}),
            "Invalid parameter type for 'mem-blks[0].online', expected: boolean",
        ),
        (
            json!({"mem-blks": [{"phys-index": 1, "online": true, "can-offline": 1}]}),
            "Invalid parameter type for 'mem-blks[0].can-offline', expected: boolean",
        ),
        (
            json!({"mem-blks": [{"phys-index": 1, "online": true, "zz": 1}]}),
            "Parameter 'mem-blks[0].zz' is unexpected",
        ),
    ];
    for (arguments, expected) in cases {
        let error = set(root.path(), true, arguments.clone()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadArguments, "{arguments}");
        assert_eq!(error.message, expected, "{arguments}");
    }
    let too_big = r#"{"mem-blks":[{"phys-index":18446744073709551616,"online":true}]}"#;
    let command = SetMemoryBlocks {
        sys: base(root.path()),
        apply: false,
    };
    assert_eq!(
        TestCall::new().run(&command, too_big).unwrap_err().message,
        "Parameter 'mem-blks[0].phys-index' expects uint64"
    );
}

#[test]
fn info_reads_the_block_size_in_hexadecimal() {
    let root = sysfs();
    assert_eq!(info(root.path()).unwrap(), json!({"size": 134217728}));
    let bare = tempfile::tempdir().unwrap();
    assert_eq!(
        info(bare.path()).unwrap_err().message,
        format!(
            "open(\"{}/devices/system/memory/\"): No such file or directory",
            base(bare.path())
        )
    );
    fs::create_dir_all(bare.path().join("devices/system/memory")).unwrap();
    assert_eq!(
        info(bare.path()).unwrap_err().message,
        "open sysfs file \"block_size_bytes\": No such file or directory"
    );
}

#[test]
fn numbers_are_read_as_the_c_library_reads_them() {
    assert_eq!(strtoul("12"), 12);
    assert_eq!(strtoul("12abc"), 12);
    assert_eq!(strtoul(""), 0);
    assert_eq!(strtoul("-1"), u64::MAX);
    assert_eq!(strtoul("99999999999999999999999"), u64::MAX);
    assert_eq!(strtol_hex(b"8000000\n"), 0x800_0000);
    assert_eq!(strtol_hex(b"0x10"), 16);
    assert_eq!(strtol_hex(b"0xg"), 0);
    assert_eq!(strtol_hex(b"  -a"), -10);
    assert_eq!(strtol_hex(b"ffffffffffffffffff"), i64::MAX);
    assert_eq!(strtol_hex(b"zz"), 0);
}

#[test]
fn the_live_system_answers_like_its_sysfs() {
    let live = Path::new("/sys/devices/system/memory");
    if !live.join("block_size_bytes").is_file() {
        return;
    }
    let size = fs::read_to_string(live.join("block_size_bytes")).unwrap();
    let expected = u64::from_str_radix(size.trim(), 16).unwrap();
    let answer = TestCall::new()
        .run(&GetMemoryBlockInfo { sys: "/sys".into() }, "{}")
        .unwrap();
    assert_eq!(answer, json!({"size": expected}));
    let blocks = TestCall::new()
        .run(&GetMemoryBlocks { sys: "/sys".into() }, "{}")
        .unwrap();
    let count = fs::read_dir(live)
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.file_name().to_str().unwrap().starts_with("memory") && e.file_type().unwrap().is_dir()
        })
        .count();
    assert_eq!(blocks.as_array().unwrap().len(), count);
}
