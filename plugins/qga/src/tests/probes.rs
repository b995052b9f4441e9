//! Further edges of QEMU's lexer, parser and dispatcher, each recorded from
//! the real qemu-ga 7.2.22 (`-m unix-listen`): NUL bytes, invalid escapes
//! and UTF-8, number formats, the hash order that decides which bad member
//! is reported and how objects are written back, the nesting limit.

pub(super) const CASES: super::Cases = &[
    (
        "nul",
        b"\x00\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''"}}"#,
        ],
    ),
    (
        "nul_in_string",
        b"\"ab\x00cd\"\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"ab'"}}"#,
        ],
    ),
    (
        "lone_surrogate",
        nl!(r#"{"execute":"guest-ping","id":"\uD800"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, \\uD800 is not a valid Unicode character"}}"#,
        ],
    ),
    (
        "bad_pair",
        nl!(r#"{"execute":"guest-ping","id":"\uD800\u0041"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, \\uD800 is not a valid Unicode character"}}"#,
        ],
    ),
    (
        "short_u_escape",
        nl!(r#"{"execute":"guest-ping","id":"\u12"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, \\u12\" is not a valid Unicode character"}}"#,
        ],
    ),
    (
        "bad_escape",
        nl!(r#"{"execute":"guest-ping","id":"\x"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid escape sequence in string"}}"#,
        ],
    ),
    (
        "noncharacter_escape",
        nl!(r#"{"execute":"guest-ping","id":"\uFFFE"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, \\uFFFE is not a valid Unicode character"}}"#,
        ],
    ),
    (
        "escapes",
        nl!(r#"{"execute":"guest-ping","id":"\u0000a\u007f\/\'"}"#),
        &[
            br#"{"return": {}, "id": "\u0000a\u007F/'"}"#,
        ],
    ),
    (
        "single_quote_escapes",
        nl!(r#"{'execute':'guest-ping','id':'it\'s "q"'}"#),
        &[
            br#"{"return": {}, "id": "it's \"q\""}"#,
        ],
    ),
    (
        "modified_utf8_nul",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xc0\x80\"}\n",
        &[
            br#"{"return": {}, "id": "\u0000"}"#,
        ],
    ),
    (
        "utf8_surrogate",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xed\xa0\x80\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#,
        ],
    ),
    (
        "utf8_beyond_unicode",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xf4\x90\x80\x80\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#,
        ],
    ),
    (
        "utf8_noncharacter",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xef\xbf\xbe\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#,
        ],
    ),
    (
        "leading_zero",
        nl!(r#"01"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '01'"}}"#,
        ],
    ),
    (
        "bad_sign",
        nl!(r#"-x"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-x'"}}"#,
        ],
    ),
    (
        "bad_mantissa",
        nl!(r#"1.e5"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '1.e'"}}"#,
        ],
    ),
    (
        "upper_case_keyword",
        nl!(r#"True"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray 'T'"}}"#,
        ],
    ),
    (
        "percent",
        nl!(r#"%d"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '%'"}}"#,
        ],
    ),
    (
        "missing_colon",
        nl!(r#"{"a" 1}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, missing : in object pair"}}"#,
        ],
    ),
    (
        "key_not_string",
        nl!(r#"{1:2}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, key is not a string in object"}}"#,
        ],
    ),
    (
        "missing_value",
        nl!(r#"{"a":}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "list_missing_comma",
        nl!(r#"[1 2]"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in list"}}"#,
        ],
    ),
    (
        "list_trailing_comma",
        nl!(r#"[1,]"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "lone_close_square",
        nl!(r#"]"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "lone_colon",
        nl!(r#":"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "mismatched",
        nl!(r#"[}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "fe_in_string",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xfe\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"\uFFFD'"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "first_problem_in_hash_order",
        nl!(r#"{"execute":42,"foo":1}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        ],
    ),
    (
        "first_unexpected_in_hash_order",
        nl!(r#"{"foo":1,"bar":2,"execute":"guest-ping"}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'bar' is unexpected"}}"#,
        ],
    ),
    (
        "first_of_two_bad_members",
        nl!(r#"{"arguments":[],"execute":1}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        ],
    ),
    (
        "id_keys_in_hash_order",
        nl!(r#"{"id":{"b":1,"a":2,"execute":3,"return":4,"class":5,"desc":6},"execute":"guest-ping"}"#),
        &[
            br#"{"return": {}, "id": {"class": 5, "a": 2, "execute": 3, "b": 1, "desc": 6, "return": 4}}"#,
        ],
    ),
    (
        "nested_duplicate",
        nl!(r#"{"execute":"guest-ping","arguments":{"a":{"a":1,"a":2}}}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, duplicate key"}}"#,
        ],
    ),
    (
        "controls_in_string",
        b"{\"execute\":\"guest-ping\",\"id\":\"\xc3\xa9\x7f\t\x08\x0c\"}\n",
        &[
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"\u00E9\u007F\t'"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\b'"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\f'"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        ],
    ),
    (
        "surrogate_pair_escape",
        nl!(r#"{"execute":"guest-ping","id":"\ud83d\ude00\u00E9"}"#),
        &[
            br#"{"return": {}, "id": "\uD83D\uDE00\u00E9"}"#,
        ],
    ),
    (
        "upper_exponent",
        nl!(r#"{"execute":"guest-ping","id":1E2}"#),
        &[
            br#"{"return": {}, "id": 100}"#,
        ],
    ),
    (
        "signed_exponent",
        nl!(r#"{"execute":"guest-ping","id":-1.0e-0}"#),
        &[
            br#"{"return": {}, "id": -1}"#,
        ],
    ),
    (
        "ids_empty_containers",
        nl!(r#"{"execute":"guest-ping","id":[{},[],[{"x":null}]]}"#),
        &[
            br#"{"return": {}, "id": [{}, [], [{"x": null}]]}"#,
        ],
    ),
    (
        "scalars",
        nl!(r#"  42 "hello" null"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
            br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        ],
    ),
    (
        "trailing_keyword",
        nl!(r#"{"execute":"guest-ping"} x "#),
        &[
            br#"{"return": {}}"#,
            br#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'x'"}}"#,
        ],
    ),
    (
        "id_0_1",
        nl!(r#"{"execute":"guest-ping","id":0.1}"#),
        &[
            br#"{"return": {}, "id": 0.10000000000000001}"#,
        ],
    ),
    (
        "id_negative_zero_double",
        nl!(r#"{"execute":"guest-ping","id":-0.0}"#),
        &[
            br#"{"return": {}, "id": -0}"#,
        ],
    ),
    (
        "id_negative_zero",
        nl!(r#"{"execute":"guest-ping","id":-0}"#),
        &[
            br#"{"return": {}, "id": 0}"#,
        ],
    ),
    (
        "id_beyond_u64",
        nl!(r#"{"execute":"guest-ping","id":18446744073709551616}"#),
        &[
            br#"{"return": {}, "id": 1.8446744073709552e+19}"#,
        ],
    ),
    (
        "id_1e300",
        nl!(r#"{"execute":"guest-ping","id":1e300}"#),
        &[
            br#"{"return": {}, "id": 1.0000000000000001e+300}"#,
        ],
    ),
    (
        "id_below_i64",
        nl!(r#"{"execute":"guest-ping","id":-9223372036854775809}"#),
        &[
            br#"{"return": {}, "id": -9.2233720368547758e+18}"#,
        ],
    ),
    (
        "id_small",
        nl!(r#"{"execute":"guest-ping","id":1.5e-7}"#),
        &[
            br#"{"return": {}, "id": 1.4999999999999999e-07}"#,
        ],
    ),
    (
        "id_key_escapes",
        nl!(r#"{"execute":"guest-ping","id":{"a\u0000b":1,"\u00e9":2}}"#),
        &[
            br#"{"return": {}, "id": {"\u00E9": 2, "a\u0000b": 1}}"#,
        ],
    ),
    (
        "unexpected_escaped_key",
        nl!(r#"{"execute":"guest-ping","\u00e9\n":1}"#),
        &[
            br#"{"error": {"class": "GenericError", "desc": "QMP input member '\u00E9\n' is unexpected"}}"#,
        ],
    ),
];
