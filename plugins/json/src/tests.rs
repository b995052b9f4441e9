//! The parser against a fake dispatcher, with exact expected bytes.

use std::sync::Mutex;

use nova_agent_plugin_api::abi_stable::std_types::{ROption, RStr};
use nova_agent_plugin_api::ffi::FfiDispatch;
use nova_agent_plugin_api::{Dispatch, Parser, Reply};

use super::{check_config, parse_request, JsonParser, Malformed};

/// Knows `version`, `echo` (answers the value's JSON text) and `nasty` (a
/// message full of characters the encoder must replace); records every call.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<(String, String)>>,
}

const NASTY: &str = "q\" b\\ n\n t\t del\u{7f} \u{e9} \u{1F600} end";

impl FfiDispatch for Fake {
    fn run(&self, command: RStr<'_>, value_json: RStr<'_>) -> ROption<Reply> {
        let (command, value_json) = (command.as_str(), value_json.as_str());
        self.calls
            .lock()
            .unwrap()
            .push((command.to_owned(), value_json.to_owned()));
        match command {
            "version" => ROption::RSome(Reply::ok("2.0.0")),
            "echo" => ROption::RSome(Reply::ok(value_json)),
            "nasty" => ROption::RSome(Reply::error(NASTY)),
            _ => ROption::RNone,
        }
    }
}

impl Fake {
    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

fn answer(fake: &Fake, body: Result<&[u8], &str>) -> String {
    let out = JsonParser.handle(body, &Dispatch::new(fake)).unwrap();
    String::from_utf8(out).unwrap()
}

/// Handles `body` with a fresh fake; returns the response and the calls made.
fn run(body: &[u8]) -> (String, Vec<(String, String)>) {
    let fake = Fake::default();
    let response = answer(&fake, Ok(body));
    (response, fake.calls())
}

fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .collect()
}

const MALFORMED: &str = r#"{"message": "Request is malformed", "returncode": "500"}"#;
const NO_NAME: &str = r#"{"message": "Request is missing 'name' key", "returncode": "500"}"#;

// The four "(parser)" vectors of seed-test-vectors.json.

#[test]
fn vector_no_data_in_request() {
    let fake = Fake::default();
    assert_eq!(
        answer(&fake, Err("")),
        r#"{"message": "Internal error with request", "returncode": "500"}"#
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn vector_malformed_command() {
    assert_eq!(run(b"abc"), (MALFORMED.to_owned(), vec![]));
}

#[test]
fn vector_no_command() {
    assert_eq!(run(br#"{"value":""}"#), (NO_NAME.to_owned(), vec![]));
}

#[test]
fn vector_unknown_command() {
    assert_eq!(
        run(br#"{"name": "<unknown_command>", "value": ""}"#),
        (
            r#"{"message": "No such agent command '<unknown_command>'", "returncode": "404"}"#
                .to_owned(),
            calls(&[("<unknown_command>", r#""""#)])
        )
    );
}

#[test]
fn unreadable_body_answers_its_reason() {
    let fake = Fake::default();
    assert_eq!(
        answer(&fake, Err("request too large")),
        r#"{"message": "request too large", "returncode": "500"}"#
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn malformed_requests_answer_500_and_call_nothing() {
    let cases: &[&[u8]] = &[
        b"",
        b"   \n\t ",
        br#""str""#,
        b"[1,2]",
        b"42",
        b"null",
        b"{\"name\": \"version\xff\"}",
        b"\xc3\x28",
        br#"{"name": "version"} x"#,
        br#"{"name": "version"}{}"#,
        br#"{"name": "version""#,
        br#"[{"name": "version"}]"#,
    ];
    for body in cases {
        let (response, calls) = run(body);
        assert_eq!(
            response,
            MALFORMED,
            "for {:?}",
            String::from_utf8_lossy(body)
        );
        assert!(calls.is_empty(), "for {:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn malformed_requests_name_the_rule_broken() {
    let cases: &[(&[u8], Malformed)] = &[
        (b"\xff{}", Malformed::NotUtf8),
        (b"", Malformed::NotJson),
        (b"  ", Malformed::NotJson),
        (b"{} x", Malformed::NotJson),
        (br#""str""#, Malformed::NotObject),
        (b"[1,2]", Malformed::NotObject),
        (b"42", Malformed::NotObject),
        (b"null", Malformed::NotObject),
        (br#"{"value": 1}"#, Malformed::MissingName),
        (br#"{"name": []}"#, Malformed::NameNotString),
    ];
    for (body, rule) in cases {
        assert_eq!(parse_request(body), Err(*rule), "for {body:?}");
    }
}

#[test]
fn version_request() {
    assert_eq!(
        run(br#"{"name": "version", "value": "agent"}"#),
        (
            r#"{"message": "2.0.0", "returncode": "0"}"#.to_owned(),
            calls(&[("version", r#""agent""#)])
        )
    );
}

#[test]
fn surrounding_whitespace_is_accepted() {
    let (response, _) = run(b" \n{\"name\":\"version\"}\n ");
    assert_eq!(response, r#"{"message": "2.0.0", "returncode": "0"}"#);
}

#[test]
fn missing_value_is_empty_json_string() {
    assert_eq!(
        run(br#"{"name":"echo"}"#),
        (
            r#"{"message": "??", "returncode": "0"}"#.to_owned(),
            calls(&[("echo", r#""""#)])
        )
    );
}

#[test]
fn huge_integer_value_keeps_every_digit() {
    let (response, calls_made) =
        run(br#"{"name":"echo","value":162259276829213363391578010288126}"#);
    assert_eq!(
        response,
        r#"{"message": "162259276829213363391578010288126", "returncode": "0"}"#
    );
    assert_eq!(
        calls_made,
        calls(&[("echo", "162259276829213363391578010288126")])
    );
}

#[test]
fn object_value_is_passed_as_raw_text() {
    let (_, calls_made) =
        run(b"{\"name\":\"echo\", \"value\" :  {\"a\": [1, 2.50, \"x\\u00e9\"],\"b\":null}  \n}");
    assert_eq!(
        calls_made,
        calls(&[("echo", r#"{"a": [1, 2.50, "x\u00e9"],"b":null}"#)])
    );
}

#[test]
fn string_value_keeps_its_escapes() {
    let (_, calls_made) = run(br#"{"value": "a\"b\\c\u0041", "name": "echo"}"#);
    assert_eq!(calls_made, calls(&[("echo", r#""a\"b\\c\u0041""#)]));
}

#[test]
fn duplicate_keys_last_wins() {
    let (response, calls_made) =
        run(br#"{"name": "version", "value": 1, "name": "nope", "value": 2}"#);
    assert_eq!(
        response,
        r#"{"message": "No such agent command 'nope'", "returncode": "404"}"#
    );
    assert_eq!(calls_made, calls(&[("nope", "2")]));
}

#[test]
fn escaped_name_is_decoded() {
    let (response, calls_made) = run(br#"{"n\u0061me": "ver\u0073ion"}"#);
    assert_eq!(response, r#"{"message": "2.0.0", "returncode": "0"}"#);
    assert_eq!(calls_made, calls(&[("version", r#""""#)]));
}

#[test]
fn scalar_names_are_spelled_as_python_2_str() {
    for (name, spelled) in [
        ("42", "42"),
        ("-7", "-7"),
        ("1.5", "1.5"),
        ("true", "True"),
        ("false", "False"),
        ("null", "None"),
    ] {
        let body = format!(r#"{{"name": {name}}}"#);
        let (response, calls_made) = run(body.as_bytes());
        assert_eq!(
            response,
            format!(r#"{{"message": "No such agent command '{spelled}'", "returncode": "404"}}"#)
        );
        assert_eq!(calls_made, calls(&[(spelled, r#""""#)]));
    }
}

#[test]
fn array_or_object_name_is_rejected() {
    for body in [&br#"{"name": ["version"]}"#[..], br#"{"name": {"a": 1}}"#] {
        assert_eq!(
            run(body),
            (
                r#"{"message": "Request 'name' must be a string", "returncode": "500"}"#.to_owned(),
                vec![]
            )
        );
    }
}

#[test]
fn reply_message_is_sanitised() {
    assert_eq!(
        run(br#"{"name": "nasty"}"#).0,
        r#"{"message": "q? b? n? t? del? ? ? end", "returncode": "500"}"#
    );
}

#[test]
fn unknown_name_with_quotes_stays_valid_json() {
    let (response, _) = run(br#"{"name": "a\"b\\c\u00e9"}"#);
    assert_eq!(
        response,
        r#"{"message": "No such agent command 'a?b?c?'", "returncode": "404"}"#
    );
}

#[test]
fn error_response_uses_the_same_encoding() {
    assert_eq!(
        JsonParser.error_response("500", "boom \"x\"\n"),
        br#"{"message": "boom ?x??", "returncode": "500"}"#.to_vec()
    );
}

#[test]
fn config_must_be_an_empty_table() {
    assert!(check_config("{}").is_ok());
    assert!(check_config(" { } ").is_ok());
    for bad in [r#"{"a": 1}"#, "", "[]", "null", "{"] {
        let err = check_config(bad).unwrap_err();
        assert_eq!(err.message(), "[plugins.json] takes no keys", "for {bad:?}");
    }
}
