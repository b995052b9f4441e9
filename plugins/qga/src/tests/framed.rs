//! Framed requests (`decode`): one complete stream each, one item for the
//! agent.

use super::{agent, joined, show};
use crate::framed::SEVERAL_CALLS;

fn request(bytes: &[u8]) -> String {
    show(&agent().request("qga", bytes))
}

fn several_calls(id: Option<&str>) -> String {
    let id = id.map(|id| format!("\"id\": {id}, ")).unwrap_or_default();
    format!("{{{id}\"error\": {{\"class\": \"GenericError\", \"desc\": \"{SEVERAL_CALLS}\"}}}}\n")
}

#[test]
fn one_request_is_answered_as_on_a_stream() {
    // Cases answered with more than one line are covered below.
    let single = super::reference::CASES.iter().chain(super::probes::CASES);
    for (name, input, lines) in single.filter(|(_, _, lines)| lines.len() == 1) {
        assert_eq!(request(input), show(&joined(lines)), "case {name}");
    }
}

#[test]
fn the_end_of_the_frame_ends_the_input() {
    // What would wait for more bytes on a stream is complete here.
    assert_eq!(
        request(b"42"),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\n"
    );
    assert_eq!(
        request(br#"{"execute":"guest-ping""#),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, premature EOI\"}}\n"
    );
    assert_eq!(
        request(br#"{"execute":"gue"#),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\"gue'\"}}\n"
    );
    assert_eq!(
        request(b"garbage"),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'garbage'\"}}\n"
    );
    assert_eq!(
        request(b"-"),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '-'\"}}\n"
    );
}

#[test]
fn blank_input_is_answered_with_nothing() {
    assert_eq!(request(b""), "");
    assert_eq!(request(b" \r\n\t"), "");
}

#[test]
fn answers_around_the_one_call_keep_their_order() {
    // A client's leading 0xFF before guest-sync-delimited (reference §1.7).
    let got = agent().request(
        "qga",
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":987654321}}\n",
    );
    assert_eq!(
        got,
        [
            &br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#
                [..],
            b"\n\xff{\"return\": 987654321}\n",
        ]
        .concat()
    );
    assert_eq!(
        request(br#"[] {"execute":"guest-ping","id":"x"} 7 "#),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            "\n",
            r#"{"return": {}, "id": "x"}"#,
            "\n",
            r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            "\n"
        )
    );
    // A command that answers nothing still lets the others through.
    assert_eq!(
        request(br#"{"execute":"guest-shutdown"} x"#),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'x'"}}"#,
            "\n"
        )
    );
}

#[test]
fn several_calls_run_none_and_are_each_refused_with_their_id() {
    let agent = agent();
    let got = show(&agent.request(
        "qga",
        br#"{"execute":"guest-fsfreeze-freeze","id":1} } {"execute":"guest-ping"}"#,
    ));
    assert_eq!(
        got,
        [
            several_calls(Some("1")),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\n"
                .to_owned(),
            several_calls(None),
        ]
        .concat()
    );
    // The freeze did not run.
    assert_eq!(
        show(&agent.request("qga", br#"{"execute":"guest-get-fsinfo"}"#)),
        "{\"return\": []}\n"
    );
}

#[test]
fn an_unreadable_request_is_answered_with_the_reason() {
    let agent = agent();
    assert_eq!(
        show(&agent.unreadable("qga", "request of 70000000 bytes is too large")),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"request of 70000000 bytes is too large\"}}\n"
    );
    assert_eq!(
        show(&agent.unreadable("qga", "")),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"the request could not be read\"}}\n"
    );
}
