//! The transcripts of reference/qga-protocol.md §1.7, as the real qemu-ga
//! 7.2.22 answered them (re-recorded from it, byte for byte), plus what the
//! reference describes beside them (0xFE and 0x01 reset like 0xFF; a
//! `guest-sync-delimited` that fails gets no 0xFF).
//!
//! Each case: a name, the bytes sent, the lines answered (each followed by
//! `\n`). `guest-get-time` is denied, as `qemu-ga -b guest-get-time`.

pub(super) const CASES: super::Cases = &[
    (
        "ping",
        nl!(r#"{"execute":"guest-ping"}"#),
        &[
            br#"{"return": {}}"#,
        ],
    ),
    (
        "ping_string_id",
        nl!(r#"{"execute":"guest-ping","id":"abc-1"}"#),
        &[
            br#"{"return": {}, "id": "abc-1"}"#,
        ],
    ),
    (
        "ping_int_id",
        nl!(r#"{"execute":"guest-ping","id":42}"#),
        &[
            br#"{"return": {}, "id": 42}"#,
        ],
    ),
    (
        "ping_object_id",
        nl!(r#"{"execute":"guest-ping","id":{"x":[1,2]}}"#),
        &[
            br#"{"return": {}, "id": {"x": [1, 2]}}"#,
        ],
    ),
    (
        "ping_null_id",
        nl!(r#"{"execute":"guest-ping","id":null}"#),
        &[
            br#"{"return": {}, "id": null}"#,
        ],
    ),
    (
        "ping_float_id",
        nl!(r#"{"execute":"guest-ping","id":1e3}"#),
        &[
            br#"{"return": {}, "id": 1000}"#,
        ],
    ),
    (
        "ping_list_id",
        nl!(r#"{"execute":"guest-ping","id":[true,false,null,1.5]}"#),
        &[
            br#"{"return": {}, "id": [true, false, null, 1.5]}"#,
        ],
    ),
    (
        "ping_unicode_id",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xc3\xa9\xf0\x9f\x98\x80/\\u00e9\"}\n",
        &[
            br#"{"return": {}, "id": "\u00E9\uD83D\uDE00/\u00E9"}"#,
        ],
    ),
    (
        "no_newline",
        b"{\"execute\":\"guest-ping\"}",
        &[
            br#"{"return": {}}"#,
        ],
    ),
    (
        "two_in_one",
        b"{\"execute\":\"guest-ping\",\"id\":1}{\"execute\":\"guest-ping\",\"id\":2}",
        &[
            br#"{"return": {}, "id": 1}"#,
            br#"{"return": {}, "id": 2}"#,
        ],
    ),
    (
        "pretty",
        b"{\"execute\":\n  \"guest-ping\",\n  \"id\": 3\n}",
        &[
            br#"{"return": {}, "id": 3}"#,
        ],
    ),
    (
        "blank_lines",
        b"   \n\n{\"execute\":\"guest-ping\",\"id\":4}   \n",
        &[
            br#"{"return": {}, "id": 4}"#,
        ],
    ),
    (
        "crlf",
        b"{\"execute\":\"guest-ping\",\"id\":5}\r\n",
        &[
            br#"{"return": {}, "id": 5}"#,
        ],
    ),
    (
        "single_quotes",
        nl!(r#"{'execute':'guest-ping','id':14}"#),
        &[
            br#"{"return": {}, "id": 14}"#,
        ],
    ),
    (
        "empty_arguments",
        nl!(r#"{"execute":"guest-ping","arguments":{}}"#),
        &[
            br#"{"return": {}}"#,
        ],
    ),
    (
        "sync",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":123456789}}"#),
        &[
            br#"{"return": 123456789}"#,
        ],
    ),
    (
        "sync_negative",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":-5},"id":"req-1"}"#),
        &[
            br#"{"return": -5, "id": "req-1"}"#,
        ],
    ),
    (
        "sync_max",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":9223372036854775807}}"#),
        &[
            br#"{"return": 9223372036854775807}"#,
        ],
    ),
    (
        "sync_u64",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":18446744073709551615}}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#,
        ],
    ),
    (
        "sync_float",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":1.5}}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#,
        ],
    ),
    (
        "sync_1e3",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":1e3}}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#,
        ],
    ),
    (
        "sync_missing",
        nl!(r#"{"execute":"guest-sync"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}"#,
        ],
    ),
    (
        "sync_delimited_reset",
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":987654321}}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
            b"\xff{\"return\": 987654321}",
        ],
    ),
    (
        "sync_delimited",
        nl!(r#"{"execute":"guest-sync-delimited","arguments":{"id":42},"id":"d1"}"#),
        &[
            b"\xff{\"return\": 42, \"id\": \"d1\"}",
        ],
    ),
    (
        "sync_delimited_missing",
        nl!(r#"{"execute":"guest-sync-delimited"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}"#,
        ],
    ),
    (
        "sync_delimited_bad",
        nl!(r#"{"execute":"guest-sync-delimited","arguments":{"id":"x"},"id":5}"#),
        &[
            br#"{"id": 5, "error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#,
        ],
    ),
    (
        "lone_ff",
        b"\xff",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        ],
    ),
    (
        "lone_fe",
        b"\xfe",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        ],
    ),
    (
        "lone_01",
        b"\x01",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\u0001'"}}"#,
        ],
    ),
    (
        "unknown",
        nl!(r#"{"execute":"guest-nonexistent","id":7}"#),
        &[
            br#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command guest-nonexistent has not been found"}}"#,
        ],
    ),
    (
        "unknown_case",
        nl!(r#"{"execute":"GUEST-PING"}"#),
        &[
            br#"{"error": {"class": "CommandNotFound", "desc": "The command GUEST-PING has not been found"}}"#,
        ],
    ),
    (
        "unknown_qmp",
        nl!(r#"{"execute":"qmp_capabilities"}"#),
        &[
            br#"{"error": {"class": "CommandNotFound", "desc": "The command qmp_capabilities has not been found"}}"#,
        ],
    ),
    (
        "garbage_in_dict",
        nl!(r#"{"execute": "guest-ping" garbage}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}}"#,
        ],
    ),
    (
        "trailing_comma",
        nl!(r#"{"execute":"guest-ping",}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "garbage",
        nl!(r#"garbage"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'garbage'"}}"#,
        ],
    ),
    (
        "lone_close",
        nl!(r#"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "bad_utf8",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xc3(\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#,
        ],
    ),
    (
        "control_in_string",
        b"{\"execute\":\"guest-ping\",\"id\":\"a\x02b\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"a\u0002'"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "duplicate_key",
        nl!(r#"{"execute":"guest-ping","execute":"guest-info","id":2}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, duplicate key"}}"#,
        ],
    ),
    (
        "list",
        nl!(r#"[{"execute":"guest-ping"}]"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        ],
    ),
    (
        "string",
        nl!(r#""hello""#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        ],
    ),
    (
        "number",
        nl!(r#"42"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        ],
    ),
    (
        "empty_object",
        nl!(r#"{}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
        ],
    ),
    (
        "execute_not_string",
        nl!(r#"{"execute":42}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        ],
    ),
    (
        "unexpected",
        nl!(r#"{"execute":"guest-ping","foo":1}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}}"#,
        ],
    ),
    (
        "unexpected_with_id",
        nl!(r#"{"execute":"guest-ping","id":8,"foo":1}"#),
        &[
            br#"{"id": 8, "error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}}"#,
        ],
    ),
    (
        "exec_oob",
        nl!(r#"{"exec-oob":"guest-ping","id":16}"#),
        &[
            br#"{"id": 16, "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        ],
    ),
    (
        "arguments_null",
        nl!(r#"{"execute":"guest-ping","arguments":null}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#,
        ],
    ),
    (
        "arguments_list",
        nl!(r#"{"execute":"guest-ping","arguments":[]}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#,
        ],
    ),
    (
        "sync_string_id",
        nl!(r#"{"execute":"guest-sync","arguments":{"id":"x"},"id":12}"#),
        &[
            br#"{"id": 12, "error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#,
        ],
    ),
    (
        "ping_unexpected_argument",
        nl!(r#"{"execute":"guest-ping","arguments":{"x":1}}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}"#,
        ],
    ),
    (
        "fsinfo_unexpected_argument",
        nl!(r#"{"execute":"guest-get-fsinfo","arguments":{"bogus":true},"id":9}"#),
        &[
            br#"{"id": 9, "error": {"class": "GenericError", "desc": "Parameter 'bogus' is unexpected"}}"#,
        ],
    ),
    (
        "disabled",
        nl!(r#"{"execute":"guest-get-time","id":1}"#),
        &[
            br#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}"#,
        ],
    ),
    (
        "disabled_list_id",
        nl!(r#"{"execute":"guest-get-time","id":[1]}"#),
        &[
            br#"{"id": [1], "error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}"#,
        ],
    ),
    (
        "control_resets",
        b"{\"execute\":\"guest-ping\"\x01{\"execute\":\"guest-ping\",\"id\":17}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\u0001'"}}"#,
            br#"{"return": {}, "id": 17}"#,
        ],
    ),
];
