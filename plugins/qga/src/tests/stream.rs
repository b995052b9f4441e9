//! A stream's state between chunks: half-read objects, resets, several
//! requests in one read.

use super::{agent, show, stream};

#[test]
fn a_partial_object_waits_and_swallows_what_follows_until_a_reset() {
    // reference §1.7 T-stale, on one stream.
    let agent = agent();
    assert_eq!(
        agent.feed("qga", br#"{"execute":"guest-ping","id":"A""#),
        b""
    );
    assert_eq!(
        agent.feed("qga", b"{\"execute\":\"guest-ping\",\"id\":\"B\"}\n"),
        b""
    );
    assert_eq!(
        show(&agent.feed("qga", b"}\n")),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}}"#,
            "\n"
        )
    );
    assert_eq!(
        agent.feed("qga", br#"{"execute":"guest-ping","id":"C""#),
        b""
    );
    assert_eq!(
        show(&agent.feed("qga", b"\xff{\"execute\":\"guest-ping\",\"id\":\"D\"}\n")),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
            "\n",
            r#"{"return": {}, "id": "D"}"#,
            "\n"
        )
    );
}

#[test]
fn a_reset_byte_inside_a_string_drops_the_object() {
    let got = stream(&[
        br#"{"execute":"guest-ping","id":"ab"#,
        b"\xff",
        b"{\"execute\":\"guest-ping\"}",
    ]);
    assert_eq!(
        show(&got),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"ab\uFFFD'"}}"#,
            "\n",
            r#"{"return": {}}"#,
            "\n"
        )
    );
}

#[test]
fn several_requests_in_one_read_are_answered_in_order_across_any_split() {
    let input = concat!(
        r#"{"execute":"guest-sync","arguments":{"id":1},"id":"a"}"#,
        "\n",
        r#"{"execute":"guest-nonexistent"}{"execute":"guest-ping","id":2}"#,
        " [] ",
        r#"{'execute':'guest-sync-delimited','arguments':{'id':3}}"#,
    )
    .as_bytes();
    let expected = [
        &br#"{"return": 1, "id": "a"}"#[..],
        br#"{"error": {"class": "CommandNotFound", "desc": "The command guest-nonexistent has not been found"}}"#,
        br#"{"return": {}, "id": 2}"#,
        br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        b"\xff{\"return\": 3}",
    ];
    let expected = super::joined(&expected);
    assert_eq!(show(&stream(&[input])), show(&expected));
    for at in 1..input.len() {
        let (head, tail) = input.split_at(at);
        assert_eq!(stream(&[head, tail]), expected, "split at {at}");
    }
    for size in [2, 3, 7, 16] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(stream(&chunks), expected, "chunks of {size}");
    }
}

#[test]
fn a_scalar_at_the_end_of_a_read_waits_for_the_byte_that_ends_it() {
    let agent = agent();
    // `42` may go on (`421`, `42.5`): qemu-ga answers only once it ends.
    assert_eq!(agent.feed("qga", b"42"), b"");
    assert_eq!(agent.feed("qga", b"1"), b"");
    assert_eq!(
        show(&agent.feed("qga", b" ")),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            "\n"
        )
    );
    assert_eq!(agent.feed("qga", b"tru"), b"");
    assert_eq!(
        show(&agent.feed("qga", b"e{}")),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            "\n",
            r#"{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
            "\n"
        )
    );
}

#[test]
fn recovery_skips_to_a_structural_or_control_character() {
    // After a stray byte, the rest of the bad token and plain text up to
    // `{` is skipped; `\t` does not end the skipping, `\n` does.
    let got = stream(&[b"X junk\tstill junk {\"execute\":\"guest-ping\"}Y\njunk\n"]);
    assert_eq!(
        show(&got),
        concat!(
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray 'X'"}}"#,
            "\n",
            r#"{"return": {}}"#,
            "\n",
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray 'Y'"}}"#,
            "\n",
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'junk'"}}"#,
            "\n"
        )
    );
}
