//! `guest-get-diskstats` over crafted `/proc/diskstats` files of each
//! kernel layout, through the agent, and on the live kernel.

use std::fs;

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::ErrorKind;
use serde_json::{json, Value};

use super::parse;
use crate::tests::{error, value, Guest, Scripted};

/// A `stats` object holding these counters.
fn stats(pairs: &[(&str, u64)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| ((*k).into(), json!(v))).collect())
}

fn info(name: &str, major: u32, minor: u32, stats: Value) -> Value {
    json!({"name": name, "major": major, "minor": minor, "stats": stats})
}

/// The eleven counters of the 14-field layout, numbered 1 to 11 in the
/// kernel's column order.
fn fourteen() -> Vec<(&'static str, u64)> {
    vec![
        ("read-ios", 1),
        ("read-merges", 2),
        ("read-sectors", 3),
        ("read-ticks", 4),
        ("write-ios", 5),
        ("write-merges", 6),
        ("write-sectors", 7),
        ("write-ticks", 8),
        ("ios-pgr", 9),
        ("total-ticks", 10),
        ("weight-ticks", 11),
    ]
}

fn eighteen() -> Vec<(&'static str, u64)> {
    let mut pairs = fourteen();
    pairs.extend([
        ("discard-ios", 12),
        ("discard-merges", 13),
        ("discard-sectors", 14),
        ("discard-ticks", 15),
    ]);
    pairs
}

fn twenty() -> Vec<(&'static str, u64)> {
    let mut pairs = eighteen();
    pairs.extend([("flush-ios", 16), ("flush-ticks", 17)]);
    pairs
}

#[test]
fn each_kernel_layout_reports_its_own_counters_in_file_order() {
    let text = "\
 254       0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
 254       1 vda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
   8       1 sda1 21 22 23 24
   8       2 sda2 1 2 3 4 5 6 7
   7       0 loop0 1 2 3
";
    assert_eq!(
        parse(text.as_bytes()),
        json!([
            info("vda", 254, 0, stats(&twenty())),
            info("vda1", 254, 1, stats(&eighteen())),
            info("sda", 8, 0, stats(&fourteen())),
            // Linux before 2.6.25: a partition's four counters.
            info(
                "sda1",
                8,
                1,
                stats(&[
                    ("read-ios", 21),
                    ("read-sectors", 22),
                    ("write-ios", 23),
                    ("write-sectors", 24),
                ])
            ),
            // 10 fields: no layout qemu-ga knows, an empty stats.
            info("sda2", 8, 2, json!({})),
        ])
    );
}

#[test]
fn between_the_layouts_only_the_complete_groups_show() {
    // 19 fields: the 18-field layout; 17: the 14-field one.
    let text = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                8 16 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n";
    let listed = parse(text.as_bytes());
    assert_eq!(listed[0]["stats"], stats(&eighteen()));
    assert_eq!(listed[1]["stats"], stats(&fourteen()));
}

#[test]
fn lines_are_read_as_sscanf_reads_them() {
    let listed = parse(
        b"major minor name\n\
          \n\
          8 4294967298 sd\xffx 1 2 3 4 5 6 7 4294967304 9 10 11\n\
          8 5 sdy -1 99999999999999999999999 3 4x 5\n\
          8 6 sdz 1 2 3\x004 5 6 7 8 9 10 11\n",
    );
    // The header and the blank line convert fewer than 7 fields.
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    // %u keeps 32 bits (the minor, write-ticks), %lu all 64.
    let first = &listed[0];
    assert_eq!(first["name"], "sd\u{fffd}x");
    assert_eq!(first["minor"], 2);
    assert_eq!(first["stats"]["write-ticks"], 8);
    // strtoul wraps a negative number and saturates an overflowing one;
    // "4x" gives 4, then the next conversion fails: 7 fields.
    assert_eq!(
        listed[1]["stats"],
        stats(&[
            ("read-ios", u64::MAX),
            ("read-sectors", u64::MAX),
            ("write-ios", 3),
            ("write-sectors", 4),
        ])
    );
    // A NUL ends the text sscanf sees: 6 fields, skipped.
}

#[test]
fn the_command_reads_proc_diskstats_with_qemu_gas_errors() {
    let guest = Guest::new("");
    let agent = guest.agent(Scripted::new(), json!({"thaw_after": "off"}));
    assert_eq!(
        error(agent.run("guest-get-diskstats", "{}")),
        (
            ErrorKind::Failed,
            format!(
                "open(\"{}\"): No such file or directory",
                guest.paths.diskstats.display()
            )
        )
    );
    fs::write(&guest.paths.diskstats, "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
    assert_eq!(
        value(agent.run("guest-get-diskstats", "{}")),
        json!([info("sda", 8, 0, stats(&fourteen()))])
    );
    assert_eq!(
        error(agent.run("guest-get-diskstats", r#"{"a":1}"#)),
        (
            ErrorKind::BadArguments,
            "Parameter 'a' is unexpected".into()
        )
    );
}

#[test]
fn the_live_kernel_lists_every_line_of_proc_diskstats() {
    let Ok(text) = fs::read_to_string("/proc/diskstats") else {
        eprintln!("skipped: no /proc/diskstats");
        return;
    };
    let agent = TestAgent::new(TestHost::new("/"))
        .with_plugin(crate::init, json!({"thaw_after": "off"}))
        .unwrap();
    let listed = value(agent.run("guest-get-diskstats", "{}"));
    let identities = |list: &Value| -> Vec<(String, u64, u64)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let number = |key: &str| d[key].as_u64().unwrap();
                let name = d["name"].as_str().unwrap().to_owned();
                (name, number("major"), number("minor"))
            })
            .collect()
    };
    let expected: Vec<(String, u64, u64)> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (
                fields[2].to_owned(),
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(identities(&listed), expected);
    for device in listed.as_array().unwrap() {
        // Every kernel this agent runs on writes at least 14 fields.
        assert!(device["stats"]["read-ios"].is_u64(), "{device}");
        assert!(device["stats"]["weight-ticks"].is_u64(), "{device}");
    }
}
