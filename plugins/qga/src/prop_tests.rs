//! Property tests (the fuzz targets of the QGA stream parser): arbitrary
//! byte streams, and streams of QGA's tokens glued at random, fed whole and
//! split at arbitrary points. Decoding never panics; a stream gives the same
//! items however it is split; every answer, the parser's own or an encoded
//! outcome, is lines of printable-ASCII JSON objects, each ending in `\n`;
//! a call's arguments are a JSON object. A fixed number of cases from a fixed
//! seed; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override either for a
//! longer run.

use nova_agent_plugin_api::{Decoded, ErrorKind, Outcome, ParsedCall, Parser};
use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::QgaParser;

/// One stream decoder fed `chunks` one after another: every item, in order.
fn stream(chunks: &[&[u8]]) -> Vec<Decoded> {
    let mut decoder = QgaParser.stream_decoder().expect("qga decodes streams");
    chunks
        .iter()
        .flat_map(|chunk| decoder.feed(chunk))
        .collect()
}

/// `bytes` cut at `cuts` (indexes taken modulo its length, in any order).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Answer bytes: one or more lines, each a printable-ASCII JSON object.
fn check_lines(bytes: &[u8]) -> Result<usize, TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    prop_assert!(bytes.ends_with(b"\n"), "no final newline: {text:?}");
    let mut lines = 0;
    for line in bytes[..bytes.len() - 1].split(|&b| b == b'\n') {
        prop_assert!(
            line.iter().all(|b| (b' '..=b'~').contains(b)),
            "not printable ASCII: {text:?}"
        );
        serde_json::from_slice::<Map<String, Value>>(line)
            .map_err(|e| TestCaseError::fail(format!("not a JSON object ({e}): {text:?}")))?;
        lines += 1;
    }
    Ok(lines)
}

/// Every outcome a call can come back with is encoded to valid lines, and
/// its arguments are a JSON object.
fn check_call(call: &ParsedCall) -> Result<(), TestCaseError> {
    let arguments: Result<Map<String, Value>, _> = serde_json::from_str(&call.arguments);
    prop_assert!(arguments.is_ok(), "arguments {:?}", call.arguments);
    let mut outcomes = vec![
        Outcome {
            result: Ok(call.arguments.clone()),
            success_response: true,
        },
        Outcome {
            result: Ok("{}".to_owned()),
            success_response: false,
        },
    ];
    for kind in [
        ErrorKind::UnknownCommand,
        ErrorKind::Disabled,
        ErrorKind::NotFound,
        ErrorKind::Failed,
    ] {
        outcomes.push(Outcome::error(kind, &call.command));
        outcomes.push(Outcome::error(kind, ""));
    }
    for outcome in &outcomes {
        let Some(bytes) = QgaParser.encode(&call.command, &call.context, outcome) else {
            prop_assert!(!outcome.success_response, "no answer to {outcome:?}");
            continue;
        };
        let bytes = match bytes.iter().position(|&b| b == 0xFF) {
            // The sentinel of a successful guest-sync-delimited, right
            // before its own answer.
            Some(at) if call.command == "guest-sync-delimited" && outcome.result.is_ok() => {
                [&bytes[..at], &bytes[at + 1..]].concat()
            }
            _ => bytes,
        };
        check_lines(&bytes)?;
    }
    Ok(())
}

fn check_items(items: &[Decoded]) -> Result<(), TestCaseError> {
    for item in items {
        match item {
            Decoded::Answer(bytes) => prop_assert_eq!(check_lines(bytes)?, 1),
            Decoded::Call(call) => check_call(call)?,
        }
    }
    Ok(())
}

/// QGA's tokens, good and broken.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"execute\"",
    b"'execute'",
    b"\"arguments\"",
    b"\"id\"",
    b"\"guest-ping\"",
    b"\"guest-sync-delimited\"",
    b"{}",
    b"\xff",
    b"\"",
    b"'",
    b"\\",
    b"\"\\u00e9\"",
    b"\"\\ud800\"",
    b"\"\\ud83d\\ude00\"",
    b"\"\\x\"",
    b"1e999",
    b"-0.5e-7",
    b"123456789012345678901234567890",
    b"true",
    b"nul",
    b" ",
    b"\n",
    b"\x00",
    b"\xc3\xa9",
];

/// QGA's tokens and requests, glued at random.
fn qga_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        2 => (any::<i32>(), "[a-z-]{0,12}").prop_map(|(id, name)| {
            format!("{{\"execute\": \"{name}\", \"arguments\": {{\"id\": {id}}}, \"id\": {id}}}")
                .into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 1..4),
        1 => (1usize..40).prop_map(|depth| b"[".repeat(depth * 30)),
    ];
    prop::collection::vec(token, 0..32).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_split_anywhere_give_the_same_valid_items(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = stream(&[&bytes]);
        check_items(&whole)?;
        prop_assert_eq!(stream(&split(&bytes, &cuts)), whole);
    }

    #[test]
    fn qga_token_streams_split_anywhere_give_the_same_valid_items(
        bytes in qga_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = stream(&[&bytes]);
        check_items(&whole)?;
        prop_assert_eq!(stream(&split(&bytes, &cuts)), whole.clone());
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(stream(&bytewise), whole);
    }

    #[test]
    fn a_framed_request_is_one_valid_item(bytes in qga_bytes()) {
        match QgaParser.decode(Ok(&bytes)) {
            // Nothing but blanks: nothing to answer.
            Decoded::Answer(answer) if answer.is_empty() => {}
            Decoded::Answer(answer) => {
                check_lines(&answer)?;
            }
            Decoded::Call(call) => check_call(&call)?,
        }
    }

    #[test]
    fn a_request_s_id_comes_back_as_it_was_sent(id in "[ -~]{0,16}", name in "[ -~]{0,16}") {
        let id = Value::from(id);
        let request = format!("{{\"execute\": {}, \"id\": {id}}}", Value::from(name.clone()));
        let items = stream(&[request.as_bytes()]);
        prop_assert_eq!(items.len(), 1);
        let Decoded::Call(call) = &items[0] else {
            return Err(TestCaseError::fail(format!("not a call: {items:?}")));
        };
        prop_assert_eq!(&call.command, &name);
        let answer = QgaParser
            .encode(&call.command, &call.context, &Outcome::error(ErrorKind::Failed, "x"))
            .expect("an error is answered");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        prop_assert_eq!(&answer["id"], &id);
    }
}
