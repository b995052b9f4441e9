use std::fs;

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

use super::{atoi, clock_ticks, cpustats, GetCpuStats};

/// A /proc/stat as Linux 6 writes it, two processors, USER_HZ 100.
const STAT: &str = "\
cpu  483111 51026 150137 1138015 5571 0 805 277 1 0
cpu0 261919 23753 66278 560386 1879 0 118 146 0 0
cpu1 221192 27272 83859 577629 3691 0 686 131 1 0
intr 6508395 0 0 0 0
ctxt 30310179
btime 1700000000
processes 12345
procs_running 2
procs_blocked 0
softirq 2000 0 1 2 3 4 5 6 7 8 9
";

fn parse(text: &str, clk_tck: u64) -> Value {
    cpustats(text.as_bytes(), clk_tck, "/proc/stat")
}

fn linux(cpu: i64, members: Value) -> Value {
    let mut entry = json!({"type": "linux", "cpu": cpu});
    entry
        .as_object_mut()
        .unwrap()
        .extend(members.as_object().unwrap().clone());
    entry
}

#[test]
fn each_cpu_line_in_milliseconds_without_the_total() {
    assert_eq!(
        parse(STAT, 100),
        json!([
            linux(
                0,
                json!({"user": 2619190, "nice": 237530, "system": 662780, "idle": 5603860,
                       "iowait": 18790, "irq": 0, "softirq": 1180, "steal": 1460,
                       "guest": 0, "guestnice": 0})
            ),
            linux(
                1,
                json!({"user": 2211920, "nice": 272720, "system": 838590, "idle": 5776290,
                       "iowait": 36910, "irq": 0, "softirq": 6860, "steal": 1310,
                       "guest": 10, "guestnice": 0})
            ),
        ])
    );
    // 1000 / clk_tck in integer arithmetic, the multiplication first.
    let at_250 = parse("cpu3 7 1 0 3\n", 250);
    assert_eq!(
        at_250,
        json!([linux(
            3,
            json!({"user": 28, "nice": 4, "system": 0, "idle": 12})
        )])
    );
}

#[test]
fn the_optional_counters_follow_the_kernels_column_count() {
    let text = "\
cpu 1 1 1 1
cpu0 1 2 3 4
cpu1 1 2 3 4 5
cpu2 1 2 3 4 5 6
cpu3 1 2 3 4 5 6 7
cpu4 1 2 3 4 5 6 7 8
cpu5 1 2 3 4 5 6 7 8 9
cpu6 1 2 3 4 5 6 7 8 9 10
cpu7 1 2 3 4 5 6 7 8 9 10 11
";
    let listed = parse(text, 1000);
    let keys: Vec<Vec<&str>> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
            keys.retain(|k| !["type", "cpu", "user", "nice", "system", "idle"].contains(k));
            keys.sort_unstable();
            keys
        })
        .collect();
    assert_eq!(
        keys,
        [
            vec![],
            vec!["iowait"],
            vec!["iowait", "irq", "softirq"],
            vec!["iowait", "irq", "softirq"],
            vec!["iowait", "irq", "softirq", "steal"],
            vec!["iowait", "irq", "softirq", "steal", "guest"],
            vec!["iowait", "irq", "softirq", "steal", "guest", "guestnice"],
            vec!["iowait", "irq", "softirq", "steal", "guest", "guestnice"],
        ]
        .map(|mut v: Vec<&str>| {
            v.sort_unstable();
            v
        })
    );
    // Six numbers: qemu-ga's softirq is an unset variable, ours 0.
    assert_eq!(listed[2]["softirq"], 0);
    assert_eq!(listed[3]["softirq"], 7);
    // Extra columns are ignored; with 1000 ticks a second, ms = ticks.
    assert_eq!(
        listed[7],
        linux(
            7,
            json!({"user": 1, "nice": 2, "system": 3, "idle": 4, "iowait": 5, "irq": 6,
                   "softirq": 7, "steal": 8, "guest": 9, "guestnice": 10})
        )
    );
}

#[test]
fn a_short_cpu_line_ends_the_list_with_a_log_line() {
    let text = "cpu0 1 2 3 4\ncpu1 1 2 3\ncpu2 1 2 3 4\n";
    let log = captured_log(|| {
        let listed = parse(text, 1000);
        assert_eq!(
            listed,
            json!([linux(
                0,
                json!({"user": 1, "nice": 2, "system": 3, "idle": 4})
            )])
        );
    });
    assert!(
        log.contains("Parsing cpu stat from /proc/stat failed, see \"man proc\""),
        "{log}"
    );
    // The total line is dropped before the count is looked at.
    assert_eq!(
        parse("cpu 1\ncpu0 1 2 3 4\n", 1000)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn lines_are_read_as_sscanf_reads_them() {
    let listed = parse(
        "\n   \ncpux9 1 2 3 4\n\tcpu-2 -1 +5 99999999999999999999999 4abc 5\ncpu7\x003 1 2 3 4\n",
        100,
    );
    // "cpux9": atoi("x9") is 0. Blank lines are skipped; a NUL ends the
    // text sscanf sees, so "cpu7" has no numbers and ends the list.
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["cpu"], 0);
    let entry = &listed[1];
    assert_eq!(entry["cpu"], -2);
    // strtoul wraps a negative number and saturates an overflowing one;
    // the ms conversion wraps as unsigned long does.
    assert_eq!(entry["user"], u64::MAX.wrapping_mul(1000) / 100);
    assert_eq!(entry["nice"], 50);
    assert_eq!(entry["system"], u64::MAX.wrapping_mul(1000) / 100);
    // "4abc": 4 is read, then the conversion of "abc" fails.
    assert_eq!(entry["idle"], 40);
    assert!(entry.get("iowait").is_none(), "{entry}");
}

#[test]
fn atoi_reads_as_cs_does() {
    assert_eq!(atoi(b"12"), 12);
    assert_eq!(atoi(b"freq"), 0);
    assert_eq!(atoi(b"7x"), 7);
    assert_eq!(atoi(b"-3"), -3);
    // strtol's long, then the int cast keeps the low 32 bits.
    assert_eq!(atoi(b"99999999999"), 99_999_999_999_i64 as i32);
    assert_eq!(atoi(b"99999999999999999999"), i64::MAX as i32);
    assert_eq!(atoi(b"-99999999999999999999"), i64::MIN as i32);
}

#[test]
fn the_command_reads_proc_stat_under_its_base() {
    let proc = tempfile::tempdir().unwrap();
    let base = proc.path().to_str().unwrap().to_owned();
    let command = GetCpuStats { proc: base.clone() };
    let missing = TestCall::new().run(&command, "{}").unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Failed);
    assert_eq!(
        missing.message,
        format!("open(\"{base}/stat\"): No such file or directory")
    );

    fs::write(proc.path().join("stat"), "cpu0 100 0 0 200\n").unwrap();
    let ms = |ticks: u64| ticks * 1000 / clock_ticks();
    assert_eq!(
        TestCall::new().run(&command, "{}").unwrap(),
        json!([linux(
            0,
            json!({"user": ms(100), "nice": 0, "system": 0, "idle": ms(200)})
        )])
    );
    let bad = TestCall::new().run(&command, r#"{"cpu":0}"#).unwrap_err();
    assert_eq!(bad.kind, ErrorKind::BadArguments);
    assert_eq!(bad.message, "Parameter 'cpu' is unexpected");
}

#[test]
fn the_live_proc_stat_gives_one_entry_a_processor_line() {
    let text = fs::read_to_string("/proc/stat").unwrap();
    let expected: Vec<i64> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|w| w.strip_prefix("cpu").filter(|n| !n.is_empty()))
        .map(|n| n.parse().unwrap())
        .collect();
    let command = GetCpuStats {
        proc: "/proc".to_owned(),
    };
    let listed = TestCall::new().run(&command, "{}").unwrap();
    let cpus: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cpu"].as_i64().unwrap())
        .collect();
    assert_eq!(cpus, expected);
    assert!(!cpus.is_empty());
    for entry in listed.as_array().unwrap() {
        assert_eq!(entry["type"], "linux");
        assert!(entry["idle"].is_u64(), "{entry}");
    }
}
