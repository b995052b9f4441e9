//! The QGA commands, the same requests through the same client to the real
//! qemu-ga 7.2 and to nova-agent: guest-info's command list, the read-only
//! commands, reading a file, and the error paths of the mutating commands.
//! No mutating command ever reaches qemu-ga: only requests that its argument
//! checks or its handler's first checks refuse before acting.
//!
//! Compared exactly where both agents must say the same thing (argument
//! errors, values read from the same kernel), by shape where values
//! legitimately differ (clocks, counters, strerror texts, the version).
//!
//! The tests skip, saying so, when qemu-ga is not installed.

use nova_agent_tests::qga::{
    ask, ask_same, assert_same, both, execute_line, one, shape_diff, Compare, Peer, Reply,
};
use serde_json::{json, Value};

fn generic(desc: &str) -> Value {
    json!({"error": {"class": "GenericError", "desc": desc}})
}

/// Commands qemu-ga 7.2 lists on Linux that ours does not, and why. Kept
/// exact: a command added to ours must leave this list (and be compared
/// below, as `read_only_commands_answer_alike` compares most).
const ONLY_THEIRS: [&str; 1] = [
    // Windows only: qemu-ga lists it disabled on Linux (enabled: false).
    "guest-get-devices",
];

#[test]
fn guest_info_lists_qemu_gas_commands_with_the_same_flags() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let (o, t) = ask(
        &ours,
        &theirs,
        "{\"execute\":\"guest-info\",\"id\":\"i\"}\n",
    );
    assert_eq!(o.id(), Some(&json!("i")));
    // The version is the agent's own: "2.0.0" against "7.2.22".
    let members = |r: &Reply| {
        r.ret()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(members(&o), members(&t));
    assert!(o.ret()["version"].is_string(), "{}", o.text());
    let names = |r: &Reply| -> Vec<String> {
        r.ret()["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (ours_names, theirs_names) = (names(&o), names(&t));
    assert_eq!(theirs_names.len(), 42, "qemu-ga 7.2 lists 42 commands");
    let mut missing: Vec<&str> = theirs_names
        .iter()
        .filter(|n| !ours_names.contains(n))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    let mut expected = ONLY_THEIRS;
    expected.sort_unstable();
    assert_eq!(missing, expected, "qemu-ga's commands ours does not list");
    for name in theirs_names.iter().filter(|n| ours_names.contains(n)) {
        assert_eq!(
            o.info_entry(name),
            t.info_entry(name),
            "{name} in guest-info"
        );
    }
    // Beyond qemu-ga 7.2: guest-get-load (QEMU 10.0), and the registry's
    // other commands (Nova's, vendors'), reachable as a QGA `execute`.
    assert!(
        ours_names.iter().any(|n| n == "guest-get-load"),
        "{ours_names:?}"
    );
    for name in ours_names.iter().filter(|n| !theirs_names.contains(n)) {
        assert!(
            name == "guest-get-load" || !name.starts_with("guest-"),
            "{name}: a guest- command qemu-ga 7.2 does not have"
        );
    }
    let model = &t.ret()["supported_commands"][0];
    for entry in o.ret()["supported_commands"].as_array().unwrap() {
        assert!(shape_diff(entry, model, "entry").is_empty(), "{entry}");
    }
}

#[test]
fn read_only_commands_answer_alike() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    for (command, mode) in [
        ("guest-ping", Compare::Exact),
        ("guest-get-osinfo", Compare::Exact),
        ("guest-get-host-name", Compare::Exact),
        ("guest-get-time", Compare::Shape),
        ("guest-get-timezone", Compare::Exact),
        ("guest-get-users", Compare::Shape),
        ("guest-fsfreeze-status", Compare::Exact),
        ("guest-get-vcpus", Compare::Exact),
        ("guest-network-get-interfaces", Compare::Shape),
        ("guest-get-fsinfo", Compare::Shape),
        ("guest-get-disks", Compare::Shape),
        ("guest-get-memory-block-info", Compare::Exact),
        ("guest-get-memory-blocks", Compare::Exact),
    ] {
        for id in [None, Some(json!(["read-only", command]))] {
            ask_same(&ours, &theirs, &execute_line(command, None, id), mode);
        }
    }
    let (o, t) = ask(&ours, &theirs, "{\"execute\":\"guest-get-time\"}\n");
    let gap = o
        .ret()
        .as_i64()
        .unwrap()
        .abs_diff(t.ret().as_i64().unwrap());
    assert!(
        gap < 60_000_000_000,
        "clocks {gap} ns apart: ours is not ns since 1970"
    );
}

/// The members that identify an entry of `guest-get-cpustats` and
/// `guest-get-diskstats`: equal on both sides, in the same order.
fn identities(reply: &Reply, members: &[&str]) -> Vec<Vec<Value>> {
    reply
        .ret()
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.text()))
        .iter()
        .map(|entry| members.iter().map(|m| entry[*m].clone()).collect())
        .collect()
}

/// The counters of one entry (`stats` for a disk), by name.
fn counters<'a>(entry: &'a Value, inner: Option<&str>) -> &'a serde_json::Map<String, Value> {
    inner.map_or(entry, |key| &entry[key]).as_object().unwrap()
}

#[test]
fn cpu_and_disk_statistics_answer_alike() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    // (command, identity members, where the counters are, slack in each
    // counter's unit). qemu-ga answers before and after ours, so a
    // cumulative counter of ours lies between its two readings: a swapped
    // column or a wrong unit does not. /proc/stat's per-CPU times are
    // allowed a second off (iowait may go back, man proc says).
    for (command, members, inner, slack) in [
        ("guest-get-cpustats", &["type", "cpu"][..], None, 1000),
        (
            "guest-get-diskstats",
            &["name", "major", "minor"][..],
            Some("stats"),
            0,
        ),
    ] {
        for id in [None, Some(json!(["stats", command]))] {
            let line = execute_line(command, None, id);
            let (o, before) = ask_same(&ours, &theirs, &line, Compare::Shape);
            let after = one(&theirs, &line);
            assert_eq!(
                identities(&o, members),
                identities(&before, members),
                "{command}: the entries and their order"
            );
            assert_eq!(
                identities(&after, members),
                identities(&before, members),
                "{command}: qemu-ga's entries changed between two reads"
            );
            assert!(!identities(&o, members).is_empty(), "{}", o.text());
            let entries = |r: &Reply| r.ret().as_array().unwrap().clone();
            for ((ours_entry, t1), t2) in entries(&o)
                .iter()
                .zip(&entries(&before))
                .zip(&entries(&after))
            {
                for (key, value) in counters(ours_entry, inner) {
                    // In-flight I/Os is a gauge; cpu and type are identities.
                    if ["ios-pgr", "cpu", "type"].contains(&key.as_str()) {
                        continue;
                    }
                    let read = |e: &Value| counters(e, inner)[key].as_u64().unwrap();
                    let (a, b) = (read(t1), read(t2));
                    let (low, high) = (a.min(b).saturating_sub(slack), a.max(b) + slack);
                    let value = value.as_u64().unwrap();
                    assert!(
                        (low..=high).contains(&value),
                        "{command} {key}: ours {value}, qemu-ga's before and after {a} and {b}\n  ours: {ours_entry}\n  theirs: {t1}"
                    );
                }
            }
        }
    }
    for command in ["guest-get-cpustats", "guest-get-diskstats"] {
        ask_same(
            &ours,
            &theirs,
            &execute_line(command, Some(json!({"x": 1})), Some(json!(7))),
            Compare::Exact,
        );
    }
}

#[test]
fn guest_get_load_exists_only_in_ours() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let (o, t) = ask(&ours, &theirs, "{\"execute\":\"guest-get-load\"}\n");
    assert_eq!(
        t.json,
        json!({"error": {"class": "CommandNotFound", "desc": "The command guest-get-load has not been found"}})
    );
    for key in ["load1m", "load5m", "load15m"] {
        assert!(o.ret()[key].is_number(), "{}", o.text());
    }
}

#[test]
fn reading_a_file_through_guest_file_matches() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let mut sides = Vec::new();
    for peer in [&theirs as &dyn Peer, &ours as &dyn Peer] {
        let mut client = peer.connect();
        let open = client.execute(
            "guest-file-open",
            Some(json!({"path": "/etc/hostname", "mode": "r"})),
        );
        let handle = open
            .ret()
            .as_i64()
            .unwrap_or_else(|| panic!("{}", open.text()));
        let read = client.execute(
            "guest-file-read",
            Some(json!({"handle": handle, "count": 4096})),
        );
        let close = client.execute("guest-file-close", Some(json!({"handle": handle})));
        let again = client.execute("guest-file-close", Some(json!({"handle": handle})));
        sides.push((open, read, close, again, handle));
    }
    let (t, o) = (&sides[0], &sides[1]);
    assert_same("guest-file-open", &o.0, &t.0, Compare::Shape);
    assert_same("guest-file-read", &o.1, &t.1, Compare::Exact);
    assert_same("guest-file-close", &o.2, &t.2, Compare::Exact);
    let unknown = |h: i64| generic(&format!("handle '{h}' has not been found"));
    assert_eq!(t.3.json, unknown(t.4));
    assert_eq!(o.3.json, unknown(o.4));
}

/// Requests to mutating commands that qemu-ga refuses before acting: in its
/// argument visitor, or in its handler's first checks. One a line: `=` to
/// compare exactly, `~` by shape (the text carries a strerror or a path).
/// Never add one that qemu-ga could carry out: `"keys": [""]`, for one, is
/// accepted by qemu-ga 7.2 and creates `~/.ssh/authorized_keys`.
const REFUSED: &str = r##"
= {"execute":"guest-shutdown","arguments":{"mode":"bogus"}}
= {"execute":"guest-shutdown","arguments":{"mode":1}}
= {"execute":"guest-shutdown","arguments":{"mode":null}}
= {"execute":"guest-set-time","arguments":{"time":"x"}}
= {"execute":"guest-set-time","arguments":{"time":1.5}}
= {"execute":"guest-set-time","arguments":{"bogus":1}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","password":"YWJj"}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","crypted":false}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","password":"YWJj","crypted":"no"}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","password":"YWJj","crypted":false,"x":1}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","password":"!!","crypted":false}}
= {"execute":"guest-set-user-password","arguments":{"username":"root","password":"YQpi","crypted":false}}
= {"execute":"guest-set-user-password","arguments":{"username":"ro:ot","password":"YWJj","crypted":false}}
= {"execute":"guest-set-user-password","arguments":{"username":"ro\not","password":"YWJj","crypted":true}}
= {"execute":"guest-fsfreeze-freeze","arguments":{"x":1}}
= {"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":"x"}}
= {"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":[1]}}
= {"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":null}}
= {"execute":"guest-fsfreeze-thaw","arguments":{"x":1}}
= {"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root"}}
= {"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":"k"}}
= {"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":["#x"]}}
= {"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":["ssh-rsa AAAA x"],"reset":"yes"}}
~ {"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"nosuchuser","keys":["ssh-rsa AAAA x"]}}
= {"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"root"}}
~ {"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"nosuchuser","keys":["ssh-rsa AAAA x"]}}
= {"execute":"guest-ssh-get-authorized-keys","arguments":{}}
~ {"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"nosuchuser"}}
= {"execute":"guest-set-vcpus","arguments":{}}
= {"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":"x","online":true}]}}
= {"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0}]}}
= {"execute":"guest-set-memory-blocks","arguments":{}}
= {"execute":"guest-fstrim","arguments":{"minimum":"x"}}
= {"execute":"guest-suspend-ram","arguments":{"x":1}}
= {"execute":"guest-suspend-disk","arguments":{"x":1}}
= {"execute":"guest-suspend-hybrid","arguments":{"x":1}}
= {"execute":"guest-file-open","arguments":{"path":1}}
= {"execute":"guest-file-write","arguments":{"handle":99999,"buf-b64":"aGk="}}
= {"execute":"guest-exec","arguments":{"path":"/bin/true","arg":"x"}}
= {"execute":"guest-exec-status","arguments":{"pid":999999}}
"##;

#[test]
fn mutating_commands_refuse_bad_requests_as_qemu_ga_does() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    for line in REFUSED.lines().filter(|l| !l.is_empty()) {
        let (mode, request) = match line.split_at(2) {
            ("= ", request) => (Compare::Exact, request),
            ("~ ", request) => (Compare::Shape, request),
            _ => panic!("REFUSED line without = or ~: {line}"),
        };
        for id in ["", r#","id":"e""#] {
            let request = format!("{}{id}}}\n", &request[..request.len() - 1]);
            let (o, t) = ask_same(&ours, &theirs, &request, mode);
            assert_eq!(
                t.error_class(),
                Some("GenericError"),
                "qemu-ga acted on {request}"
            );
            assert!(o.error_class().is_some(), "{}", o.text());
        }
    }
}

#[test]
fn no_reply_command_errors_are_still_written() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    // success-response false: nothing on success, but an error is a reply.
    ask_same(
        &ours,
        &theirs,
        "{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":\"bogus\"},\"id\":3}\n",
        Compare::Exact,
    );
}
