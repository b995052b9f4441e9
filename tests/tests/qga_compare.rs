//! The QGA wire protocol, the same bytes through the same client to the
//! real qemu-ga 7.2 (`-m unix-listen`) and to nova-agent (virtio-serial
//! exchange in unix-listen mode, `qga` parser, the qga-* plugins): every
//! transcript of reference/qga-protocol.md §1.7 (framing, id echo, sync,
//! sync-delimited, unknown commands, malformed input, bad envelopes, bad
//! arguments, disabled commands, the stale partial object).
//!
//! qemu-ga's replies must be the reference's (so a different qemu-ga shows
//! up as such, not as a bug of ours); ours must equal qemu-ga's, key order
//! and whitespace aside. The one deliberate difference, T-stale, is asserted
//! on each side. The commands themselves: qga_compare_commands.rs.
//!
//! The tests skip, saying so, when qemu-ga is not installed.

use std::fmt::Display;

use nova_agent_tests::qga::{ask, assert_same, both, Compare, Ours, Peer, QemuGa, Reply};
use serde_json::{json, Value};

fn expected(text: &str) -> (bool, Value) {
    match text.strip_prefix('\u{ff}') {
        Some(rest) => (true, serde_json::from_str(rest).unwrap()),
        None => (false, serde_json::from_str(text).unwrap()),
    }
}

/// Sends `bytes` on a fresh connection to each agent and reads as many
/// replies as `reference` lists. qemu-ga's must be the reference's, ours
/// qemu-ga's under `mode`; then each side must have nothing else pending.
/// A request on one line, answered by one line, compared exactly.
fn one_line(ours: &dyn Peer, theirs: &dyn Peer, request: impl Display, reply: impl AsRef<str>) {
    let bytes = format!("{request}\n");
    let reply = reply.as_ref();
    transcript(ours, theirs, bytes.as_bytes(), &[reply], Compare::Exact);
}

fn transcript(ours: &dyn Peer, theirs: &dyn Peer, bytes: &[u8], reference: &[&str], mode: Compare) {
    let what = String::from_utf8_lossy(bytes).into_owned();
    let mut sides = Vec::new();
    for peer in [theirs, ours] {
        let mut client = peer.connect();
        client.send(bytes);
        sides.push(client.replies(reference.len()));
        client.assert_nothing_pending();
    }
    let (theirs_replies, ours_replies) = (&sides[0], &sides[1]);
    for (i, text) in reference.iter().enumerate() {
        let (delimited, json) = expected(text);
        let got = &theirs_replies[i];
        assert!(
            got.delimited == delimited && (mode == Compare::Shape || got.json == json),
            "qemu-ga no longer answers {what:?} as the reference says:\n  reference: {text}\n  qemu-ga:   {}",
            got.text()
        );
        assert_same(&what, &ours_replies[i], got, mode);
    }
}

/// One request on a fresh connection; its reply, after proving nothing else
/// was pending.

#[test]
fn every_kind_of_id_is_echoed_as_qemu_ga_echoes_it() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    for (request, reply) in [
        (r#"{"execute":"guest-ping"}"#, r#"{"return": {}}"#),
        (
            r#"{"execute":"guest-ping","id":"abc-1"}"#,
            r#"{"return": {}, "id": "abc-1"}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":42}"#,
            r#"{"return": {}, "id": 42}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":{"x":[1,2]}}"#,
            r#"{"return": {}, "id": {"x": [1, 2]}}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":null}"#,
            r#"{"return": {}, "id": null}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":1e3}"#,
            r#"{"return": {}, "id": 1000}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":[true,false,null,1.5]}"#,
            r#"{"return": {}, "id": [true, false, null, 1.5]}"#,
        ),
        (
            "{\"execute\":\"guest-ping\",\"id\":\"é😀/\\u00e9\"}",
            r#"{"return": {}, "id": "\u00E9\uD83D\uDE00/\u00E9"}"#,
        ),
        (
            r#"{"execute":"guest-ping","id":-9223372036854775808}"#,
            r#"{"return": {}, "id": -9223372036854775808}"#,
        ),
    ] {
        one_line(&ours, &theirs, request, reply);
    }
}

#[test]
fn input_is_a_stream_of_objects_not_lines() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let ping = r#"{"return": {}}"#;
    for (bytes, replies) in [
        (&br#"{"execute":"guest-ping"}"#[..], &[ping][..]),
        (
            br#"{"execute":"guest-ping","id":1}{"execute":"guest-ping","id":2}"#,
            &[r#"{"return": {}, "id": 1}"#, r#"{"return": {}, "id": 2}"#],
        ),
        (
            b"{\"execute\":\n  \"guest-ping\",\n  \"id\": 3\n}",
            &[r#"{"return": {}, "id": 3}"#],
        ),
        (
            b"   \n\n{\"execute\":\"guest-ping\",\"id\":4}   \n",
            &[r#"{"return": {}, "id": 4}"#],
        ),
        (
            b"{\"execute\":\"guest-ping\",\"id\":5}\r\n",
            &[r#"{"return": {}, "id": 5}"#],
        ),
        (
            b"{'execute':'guest-ping','id':14}\n",
            &[r#"{"return": {}, "id": 14}"#],
        ),
        (b"{\"execute\":\"guest-ping\",\"arguments\":{}}\n", &[ping]),
    ] {
        transcript(&ours, &theirs, bytes, replies, Compare::Exact);
    }
}

#[test]
fn an_object_split_over_several_writes_is_one_request() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let request = br#"{"execute":"guest-sync","arguments":{"id":77},"id":"split"}"#;
    for peer in [&theirs as &dyn Peer, &ours as &dyn Peer] {
        let mut client = peer.connect();
        for piece in request.chunks(5) {
            client.send(piece);
        }
        client.send(b"\n");
        assert_eq!(
            client.reply().json,
            json!({"return": 77, "id": "split"}),
            "{}",
            peer.name()
        );
        client.assert_nothing_pending();
    }
}

#[test]
fn guest_sync_echoes_its_id_and_checks_it_as_an_int64() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let not_int = r#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#;
    for (request, reply) in [
        (
            r#"{"execute":"guest-sync","arguments":{"id":123456789}}"#,
            r#"{"return": 123456789}"#,
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":-5},"id":"req-1"}"#,
            r#"{"return": -5, "id": "req-1"}"#,
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":9223372036854775807}}"#,
            r#"{"return": 9223372036854775807}"#,
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":18446744073709551615}}"#,
            not_int,
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":1.5}}"#,
            not_int,
        ),
        (
            r#"{"execute":"guest-sync"}"#,
            r#"{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}"#,
        ),
    ] {
        one_line(&ours, &theirs, request, reply);
    }
}

#[test]
fn guest_sync_delimited_with_and_without_the_clients_ff() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let stray = |c: &str| {
        format!(
            r#"{{"error": {{"class": "GenericError", "desc": "JSON parse error, stray '{c}'"}}}}"#
        )
    };
    let ff = stray("\\uFFFD");
    let cases: [(&[u8], Vec<String>); 5] = [
        (
            b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":987654321}}\n",
            vec![ff.clone(), "\u{ff}{\"return\": 987654321}".to_owned()],
        ),
        (
            b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":42},\"id\":\"d1\"}\n",
            vec!["\u{ff}{\"return\": 42, \"id\": \"d1\"}".to_owned()],
        ),
        (b"\xff", vec![ff.clone()]),
        (
            b"\xfe{\"execute\":\"guest-ping\",\"id\":\"fe\"}\n",
            vec![ff, r#"{"return": {}, "id": "fe"}"#.to_owned()],
        ),
        (
            b"\x01{\"execute\":\"guest-ping\",\"id\":\"01\"}\n",
            vec![stray("\\u0001"), r#"{"return": {}, "id": "01"}"#.to_owned()],
        ),
    ];
    for (bytes, replies) in &cases {
        let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
        transcript(&ours, &theirs, bytes, &replies, Compare::Exact);
    }
}

#[test]
fn unknown_commands_are_command_not_found() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    for (request, reply) in [
        (
            r#"{"execute":"guest-nonexistent","id":7}"#,
            r#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command guest-nonexistent has not been found"}}"#,
        ),
        (
            r#"{"execute":"GUEST-PING"}"#,
            r#"{"error": {"class": "CommandNotFound", "desc": "The command GUEST-PING has not been found"}}"#,
        ),
        (
            r#"{"execute":"qmp_capabilities"}"#,
            r#"{"error": {"class": "CommandNotFound", "desc": "The command qmp_capabilities has not been found"}}"#,
        ),
    ] {
        one_line(&ours, &theirs, request, reply);
    }
}

fn generic(desc: &str) -> String {
    json!({"error": {"class": "GenericError", "desc": desc}}).to_string()
}

fn generic_with_id(id: Value, desc: &str) -> String {
    json!({"id": id, "error": {"class": "GenericError", "desc": desc}}).to_string()
}

#[test]
fn malformed_json_gets_qemu_gas_parse_errors() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let cases: Vec<(&[u8], Vec<String>)> = vec![
        (
            b"{\"execute\": \"guest-ping\" garbage}\n",
            vec![generic("JSON parse error, expected separator in dict")],
        ),
        (
            b"{\"execute\":\"guest-ping\",}\n",
            vec![generic("JSON parse error, expecting value")],
        ),
        (
            b"garbage\n",
            vec![generic("JSON parse error, invalid keyword 'garbage'")],
        ),
        (b"}\n", vec![generic("JSON parse error, expecting value")]),
        (
            b"{\"execute\":\"guest-ping\",\"id\":\"\xc3(\"}\n",
            vec![generic(
                "JSON parse error, invalid UTF-8 sequence in string",
            )],
        ),
        (
            b"{\"execute\":\"guest-ping\",\"id\":\"a\x02b\"}\n",
            vec![
                generic("JSON parse error, stray '\"a\u{2}'"),
                generic("JSON parse error, expecting value"),
            ],
        ),
        (
            b"{\"execute\":\"guest-ping\",\"execute\":\"guest-info\",\"id\":2}\n",
            vec![generic("JSON parse error, duplicate key")],
        ),
        (
            b"{\"execute\":\"guest-ping\"\x01{\"execute\":\"guest-ping\",\"id\":17}\n",
            vec![
                generic("JSON parse error, stray '\u{1}'"),
                r#"{"return": {}, "id": 17}"#.to_owned(),
            ],
        ),
    ];
    for (bytes, replies) in &cases {
        let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
        transcript(&ours, &theirs, bytes, &replies, Compare::Exact);
    }
}

#[test]
fn bad_envelopes_get_qemu_gas_member_errors() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let not_object = generic("QMP input must be a JSON object");
    let arguments = generic("QMP input member 'arguments' must be an object");
    let cases = [
        (r#"[{"execute":"guest-ping"}]"#, not_object.clone()),
        (r#""hello""#, not_object.clone()),
        ("42", not_object),
        ("{}", generic("QMP input lacks member 'execute'")),
        (
            r#"{"execute":42}"#,
            generic("QMP input member 'execute' must be a string"),
        ),
        (
            r#"{"execute":"guest-ping","foo":1}"#,
            generic("QMP input member 'foo' is unexpected"),
        ),
        (
            r#"{"execute":"guest-ping","id":8,"foo":1}"#,
            generic_with_id(json!(8), "QMP input member 'foo' is unexpected"),
        ),
        (
            r#"{"exec-oob":"guest-ping","id":16}"#,
            generic_with_id(json!(16), "QMP input member 'exec-oob' is unexpected"),
        ),
        (
            r#"{"execute":"guest-ping","arguments":null}"#,
            arguments.clone(),
        ),
        (r#"{"execute":"guest-ping","arguments":[]}"#, arguments),
    ];
    for (request, reply) in &cases {
        one_line(&ours, &theirs, request, reply);
    }
}

#[test]
fn bad_arguments_get_qemu_gas_visitor_errors() {
    let Some((ours, theirs)) = both(&[]) else {
        return;
    };
    let cases = [
        (
            r#"{"execute":"guest-sync","arguments":{"id":"x"},"id":12}"#,
            generic_with_id(
                json!(12),
                "Invalid parameter type for 'id', expected: integer",
            ),
        ),
        (
            r#"{"execute":"guest-ping","arguments":{"x":1}}"#,
            generic("Parameter 'x' is unexpected"),
        ),
        (
            r#"{"execute":"guest-get-fsinfo","arguments":{"bogus":true},"id":9}"#,
            generic_with_id(json!(9), "Parameter 'bogus' is unexpected"),
        ),
    ];
    for (request, reply) in &cases {
        one_line(&ours, &theirs, request, reply);
    }
}

#[test]
fn deny_disables_a_command_as_block_rpcs_does() {
    let disabled = ["guest-get-time", "guest-set-user-password"];
    let Some((ours, theirs)) = both(&disabled) else {
        return;
    };
    let cases = [
        (
            r#"{"execute":"guest-get-time","id":1}"#,
            r#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}"#,
        ),
        // Disabled before the arguments are looked at, bad or good.
        (
            r#"{"execute":"guest-set-user-password","arguments":{"bogus":1}}"#,
            r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-set-user-password has been disabled"}}"#,
        ),
    ];
    for (request, reply) in cases {
        one_line(&ours, &theirs, request, reply);
    }
    let (o, t) = ask(&ours, &theirs, "{\"execute\":\"guest-info\"}\n");
    for name in disabled {
        let entry = |reply: &Reply| reply.info_entry(name);
        assert_eq!(
            entry(&t),
            Some(json!({"name": name, "enabled": false, "success-response": true}))
        );
        assert_eq!(entry(&o), entry(&t), "{name} in our guest-info");
    }
}

/// Reference §1.7 T-stale, qemu-ga's side: the parser outlives the client,
/// so a partial object swallows the next client's request.
#[test]
fn qemu_ga_keeps_a_partial_object_across_connections() {
    let Some(theirs) = QemuGa::start(&[]) else {
        return;
    };
    let mut first = theirs.connect();
    first.send(br#"{"execute":"guest-ping","id":"A""#);
    first.shutdown_write();
    drop(first);
    let mut second = theirs.connect();
    // Swallowed (nesting is now 1); the `}` that closes it shows that no
    // reply came for "B": the error is the first line.
    second.send(b"{\"execute\":\"guest-ping\",\"id\":\"B\"}\n");
    second.send(b"}\n");
    assert_eq!(
        second.reply().json,
        json!({"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}})
    );
    second.assert_nothing_pending();
    drop(second);
    // 0xFF recovers a stale partial object.
    let mut third = theirs.connect();
    third.send(br#"{"execute":"guest-ping","id":"C""#);
    third.shutdown_write();
    drop(third);
    let mut fourth = theirs.connect();
    fourth.send(b"\xff{\"execute\":\"guest-ping\",\"id\":\"D\"}\n");
    assert_eq!(
        fourth.reply().desc(),
        Some("JSON parse error, stray '\u{fffd}'")
    );
    assert_eq!(fourth.reply().json, json!({"return": {}, "id": "D"}));
}

/// Reference §1.7 T-stale, our side, by design (issue 14: data from a host
/// that went away never reaches a later host): the partial object goes with
/// its client, and the next client is answered at once.
#[test]
fn ours_drops_a_partial_object_when_its_client_goes() {
    let ours = Ours::start(&[], "");
    let mut first = ours.connect();
    first.send(br#"{"execute":"guest-ping","id":"A""#);
    first.shutdown_write();
    drop(first);
    let mut second = ours.connect();
    let reply = second.request("{\"execute\":\"guest-ping\",\"id\":\"B\"}\n");
    assert_eq!(reply.json, json!({"return": {}, "id": "B"}));
    second.assert_nothing_pending();
    // The 0xFF a careful client sends first still draws qemu-ga's error line.
    drop(second);
    let mut third = ours.connect();
    third.send(b"\xff{\"execute\":\"guest-ping\",\"id\":\"D\"}\n");
    assert_eq!(
        third.reply().desc(),
        Some("JSON parse error, stray '\u{fffd}'")
    );
    assert_eq!(third.reply().json, json!({"return": {}, "id": "D"}));
}
