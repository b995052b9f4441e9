//! The parser end to end through the API's `TestAgent` (bytes in, bytes out,
//! with the agent's dispatch rules), beside small commands of the tests' own,
//! with exact expected bytes. The calls a request asks for are read from
//! `decode` itself.

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{
    Call, Command, CommandError, Decoded, ErrorKind, Host, Outcome, ParsedCall, Parser,
    PluginError, Provides,
};
use serde_json::{json, Value};

use super::{parse_request, JsonParser, Malformed};

const NASTY: &str = "q\" b\\ n\n t\t del\u{7f} \u{e9} \u{1F600} end";

/// A command answering with a fixed result, or with its arguments' JSON text.
struct Fixed(fn(&str) -> Result<Value, CommandError>);

impl Command for Fixed {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        (self.0)(call.arguments())
    }
}

struct Panics;

impl Command for Panics {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        panic!("a secret in a panic")
    }
}

/// `version`, `echo` (answers its arguments' JSON text), `nasty` (fails with
/// a message full of characters the encoder must replace), and one command
/// per kind of outcome.
fn test_commands(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("version", Fixed(|_| Ok(json!("2.0.0"))))
        .command("echo", Fixed(|args| Ok(json!(args))))
        .command("nasty", Fixed(|_| Err(CommandError::failed(NASTY))))
        .command("keyinit", Fixed(|_| Ok(json!("1234567890"))))
        .command("null", Fixed(|_| Ok(Value::Null)))
        .command("object", Fixed(|_| Ok(json!({"a": [1, "x"]}))))
        .command(
            "missing",
            Fixed(|_| Err(CommandError::not_found("no such file"))),
        )
        .command(
            "strict",
            Fixed(|_| Err(CommandError::bad_arguments("bad value"))),
        )
        .command("panics", Panics))
}

fn agent_with(host: TestHost) -> TestAgent {
    TestAgent::new(host)
        .with_plugin(super::init, json!({}))
        .unwrap()
        .with_plugin(test_commands, json!({}))
        .unwrap()
}

fn agent() -> TestAgent {
    agent_with(TestHost::new("/nonexistent"))
}

/// The calls `body` asks for, as (command, arguments).
fn calls_of(body: &[u8]) -> Vec<(String, String)> {
    match JsonParser.decode(Ok(body)) {
        Decoded::Call(call) => vec![(call.command, call.arguments)],
        Decoded::Answer(_) => Vec::new(),
    }
}

/// Handles `body` end to end; returns the response and the calls asked for.
fn run(body: &[u8]) -> (String, Vec<(String, String)>) {
    let response = String::from_utf8(agent().request("json", body)).unwrap();
    (response, calls_of(body))
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
    assert_eq!(
        agent().unreadable("json", ""),
        br#"{"message": "Internal error with request", "returncode": "500"}"#
    );
    assert!(matches!(JsonParser.decode(Err("")), Decoded::Answer(_)));
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
fn a_mebibyte_command_name_is_answered_with_its_first_64_characters() {
    let name = format!("{}{}", "a".repeat(64), "b".repeat(1 << 20));
    let body = format!(r#"{{"name": "{name}", "value": ""}}"#);
    let (response, called) = run(body.as_bytes());
    let kept = "a".repeat(64);
    assert_eq!(
        response,
        format!(r#"{{"message": "No such agent command '{kept}...'", "returncode": "404"}}"#)
    );
    // The command looked up is the whole name.
    assert_eq!(called, calls(&[(name.as_str(), r#""""#)]));
}

#[test]
fn unreadable_body_answers_its_reason() {
    assert_eq!(
        agent().unreadable("json", "request too large"),
        br#"{"message": "request too large", "returncode": "500"}"#
    );
}

#[test]
fn a_good_request_decodes_to_one_call_with_no_context() {
    assert_eq!(
        JsonParser.decode(Ok(br#"{"name": "version", "value": {"a": 1}}"#)),
        Decoded::Call(ParsedCall {
            command: "version".to_owned(),
            arguments: r#"{"a": 1}"#.to_owned(),
            context: String::new(),
        })
    );
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
fn each_kind_of_outcome_is_answered_as_nova_expects() {
    let agent = agent();
    for (body, expected) in [
        (
            &br#"{"name": "keyinit", "value": 1}"#[..],
            r#"{"message": "1234567890", "returncode": "D0"}"#,
        ),
        (
            br#"{"name": "null"}"#,
            r#"{"message": "", "returncode": "0"}"#,
        ),
        (
            br#"{"name": "object"}"#,
            r#"{"message": "{?a?:[1,?x?]}", "returncode": "0"}"#,
        ),
        (
            br#"{"name": "missing"}"#,
            r#"{"message": "no such file", "returncode": "404"}"#,
        ),
        (
            br#"{"name": "strict"}"#,
            r#"{"message": "bad value", "returncode": "500"}"#,
        ),
        (
            br#"{"name": "panics"}"#,
            r#"{"message": "command 'panics' failed unexpectedly", "returncode": "500"}"#,
        ),
    ] {
        let response = String::from_utf8(agent.request("json", body)).unwrap();
        assert_eq!(response, expected, "for {}", String::from_utf8_lossy(body));
    }
}

#[test]
fn a_denied_command_is_answered_as_unknown() {
    let agent = agent_with(TestHost::new("/nonexistent").with_deny(["version"]));
    assert_eq!(
        agent.request("json", br#"{"name": "version"}"#),
        br#"{"message": "No such agent command 'version'", "returncode": "404"}"#
    );
    assert_eq!(
        agent.request("json", br#"{"name": "echo", "value": 7}"#),
        br#"{"message": "7", "returncode": "0"}"#
    );
}

#[test]
fn agent_errors_use_the_same_encoding() {
    assert_eq!(
        JsonParser.encode("x", "", &Outcome::error(ErrorKind::Failed, "boom \"x\"\n")),
        Some(br#"{"message": "boom ?x??", "returncode": "500"}"#.to_vec())
    );
}

#[test]
fn config_must_be_an_empty_table() {
    let load = |config: Value| TestAgent::new(TestHost::new("/")).with_plugin(super::init, config);
    assert!(load(json!({})).is_ok());
    let err = load(json!({"a": 1, "b": 2})).err().unwrap();
    assert_eq!(
        err.message(),
        "[plugins.json] takes no keys; found 'a', 'b'"
    );
    // The agent hands over an object only; `init` still refuses anything else.
    for bad in [json!([]), json!(null)] {
        let err = super::init(TestHost::new("/").host(), bad.clone())
            .err()
            .unwrap();
        assert_eq!(err.message(), "[plugins.json] must be a table", "for {bad}");
    }
}
