//! Property tests (the fuzz targets of the Nova JSON parser): arbitrary bytes
//! and arbitrary JSON-ish envelopes. Decoding never panics and always gives
//! one item; every answer, the parser's own or an encoded outcome, is one
//! printable-ASCII JSON object; a valid request decodes to its name and its
//! value's exact text, and re-written from what it decoded to, decodes the
//! same. A fixed number of cases from a fixed seed; `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` override either for a longer run.

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{Decoded, ErrorKind, Outcome, ParsedCall, Parser};
use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::JsonParser;

/// A response as Nova reads it: printable ASCII, no backslash, exactly
/// `{"message": "...", "returncode": "..."}`.
fn check_response(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    prop_assert!(
        bytes
            .iter()
            .all(|b| (b' '..=b'~').contains(b) && *b != b'\\'),
        "not printable ASCII: {text:?}"
    );
    prop_assert!(text.starts_with("{\"message\": \""), "layout: {text:?}");
    let parsed: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|e| TestCaseError::fail(format!("not a JSON object ({e}): {text:?}")))?;
    prop_assert_eq!(parsed.len(), 2, "members: {:?}", text);
    prop_assert!(parsed["message"].is_string(), "message: {text:?}");
    prop_assert!(parsed["returncode"].is_string(), "returncode: {text:?}");
    Ok(())
}

/// Every outcome a call can come back with is encoded to one valid response.
fn check_call(call: &ParsedCall, message: &str) -> Result<(), TestCaseError> {
    let mut outcomes = vec![Outcome {
        result: Ok(call.arguments.clone()),
        success_response: true,
    }];
    for kind in [
        ErrorKind::UnknownCommand,
        ErrorKind::Disabled,
        ErrorKind::NotFound,
        ErrorKind::BadArguments,
        ErrorKind::Failed,
        ErrorKind::Panicked,
    ] {
        outcomes.push(Outcome::error(kind, message));
        outcomes.push(Outcome::error(kind, ""));
    }
    for outcome in &outcomes {
        let response = JsonParser.encode(&call.command, &call.context, outcome);
        let response = response.ok_or_else(|| TestCaseError::fail("no response"))?;
        check_response(&response)?;
    }
    Ok(())
}

/// Decodes `body`: an answer is checked, a call returned.
fn decode(body: &[u8]) -> Result<Option<ParsedCall>, TestCaseError> {
    match JsonParser.decode(Ok(body)) {
        Decoded::Answer(bytes) => {
            check_response(&bytes)?;
            Ok(None)
        }
        Decoded::Call(call) => Ok(Some(call)),
    }
}

/// Any JSON value, strings of any characters and numbers of any size.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => value.prop_map(|v| v.to_string()),
        // Wider than any machine number, and exponents.
        1 => "-?[1-9][0-9]{0,60}(\\.[0-9]{1,10})?([eE][+-]?[0-9]{1,3})?",
    ]
}

/// A key as JSON text: `name` and `value` (sometimes spelled with escapes),
/// or any other.
fn key() -> impl Strategy<Value = (String, String)> {
    let escaped = |key: &str| -> String {
        key.chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect()
    };
    prop_oneof![
        3 => prop_oneof![Just("name"), Just("value")].prop_map(|k| (k.to_owned(), json!(k).to_string())),
        1 => prop_oneof![Just("name"), Just("value")]
            .prop_map(move |k| (k.to_owned(), format!("\"{}\"", escaped(k)))),
        1 => any::<String>().prop_map(|k| (k.clone(), json!(k).to_string())),
    ]
}

/// JSON whitespace, often none.
fn space() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,2}"
}

/// An object of members `(key, key's JSON text, value's JSON text)`, laid
/// out with arbitrary whitespace.
fn envelope() -> impl Strategy<Value = (Vec<(String, String)>, String)> {
    let member = (key(), json_value(), space(), space(), space(), space());
    (prop::collection::vec(member, 0..5), space(), space()).prop_map(|(members, open, close)| {
        let mut text = format!("{open}{{");
        let mut pairs = Vec::new();
        for (i, ((key, key_text), value, s1, s2, s3, s4)) in members.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("{s1}{key_text}{s2}:{s3}{value}{s4}"));
            pairs.push((key, value));
        }
        text.push_str(&format!("}}{close}"));
        (pairs, text)
    })
}

/// Nova's requests and near misses: tokens that matter, glued at random.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b":".to_vec()),
        Just(b",".to_vec()),
        Just(b"\"name\"".to_vec()),
        Just(b"\"value\"".to_vec()),
        Just(b"\"version\"".to_vec()),
        Just(b"\"\\u00".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"null".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"-0".to_vec()),
        "[ \t\n]".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_get_one_answer_or_one_call(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Some(call) = decode(&body)? {
            check_call(&call, "a message")?;
        }
    }

    #[test]
    fn jsonish_bytes_get_one_answer_or_one_call(body in jsonish_bytes()) {
        if let Some(call) = decode(&body)? {
            check_call(&call, "a message")?;
        }
    }

    #[test]
    fn end_to_end_every_request_gets_exactly_one_response(body in jsonish_bytes()) {
        let agent = TestAgent::new(TestHost::new("/nonexistent"))
            .with_plugin(super::init, json!({}))
            .unwrap();
        check_response(&agent.request("json", &body))?;
    }

    #[test]
    fn envelopes_decode_to_their_last_name_and_value((members, text) in envelope()) {
        let last = |wanted: &str| members.iter().rev().find(|(k, _)| k == wanted).map(|(_, v)| v.clone());
        let call = decode(text.as_bytes())?;
        match (last("name"), call) {
            (None, call) => prop_assert!(call.is_none(), "a call without a name: {text:?}"),
            (Some(name), Some(call)) => {
                if name.starts_with('"') {
                    let name: String = serde_json::from_str(&name).unwrap();
                    prop_assert_eq!(&call.command, &name);
                } else {
                    prop_assert!(!name.starts_with(['[', '{']), "{text:?}");
                }
                let value = last("value").unwrap_or_else(|| "\"\"".to_owned());
                prop_assert_eq!(&call.arguments, &value);
                prop_assert_eq!(&call.context, "");
                check_call(&call, &text)?;
            }
            (Some(name), None) => prop_assert!(name.starts_with(['[', '{']), "refused: {text:?}"),
        }
    }

    #[test]
    fn a_decoded_request_written_again_decodes_the_same(name in any::<String>(), value in json_value()) {
        let first = format!("{{\"name\": {}, \"value\": {value}}}", json!(name));
        let call = decode(first.as_bytes())?.ok_or_else(|| TestCaseError::fail("no call"))?;
        prop_assert_eq!(&call.command, &name);
        prop_assert_eq!(&call.arguments, &value);
        let again = format!("{{\"value\":{},\"name\":{}}}", call.arguments, json!(call.command));
        prop_assert_eq!(decode(again.as_bytes())?, Some(call));
    }

    #[test]
    fn any_message_and_code_encode_to_a_valid_response(code in any::<String>(), message in any::<String>()) {
        check_response(&super::encode::encode_response(&code, &message))?;
    }
}
