//! Responses as qemu-ga writes them (`qga/main.c` `send_response`): one JSON
//! object on one line, then `\n`; success `{"return": V, "id": I}`, error
//! `{"id": I, "error": {"class": C, "desc": D}}` (QEMU's hash order puts
//! `return` before `id` and `id` before `error`); `id` only when the request
//! had one; a raw 0xFF before a successful `guest-sync-delimited`'s answer.

use nova_agent_plugin_api::{ErrorKind, Outcome};

use crate::echo::echoed;
use crate::envelope::Context;
use crate::lexer::Streamer;
use crate::value::{write_qemu_bytes, write_qemu_str};

/// The command whose successful answer is preceded by a 0xFF byte.
const SYNC_DELIMITED: &str = "guest-sync-delimited";

/// The byte that tells a host to flush its own parser (`QGA_SENTINEL_BYTE`).
const SENTINEL: u8 = 0xFF;

/// The two error classes qemu-ga uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    GenericError,
    CommandNotFound,
}

impl ErrorClass {
    fn name(self) -> &'static [u8] {
        match self {
            ErrorClass::GenericError => b"GenericError",
            ErrorClass::CommandNotFound => b"CommandNotFound",
        }
    }
}

/// The answer to the outcome of a call: `None` for a success of a command
/// that answers none (and no other answer of the same request to send).
pub(crate) fn encode_outcome(command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
    let context = Context::unpack(context);
    let mut out = Vec::with_capacity(64 + context.before.len() + context.after.len());
    out.extend_from_slice(context.before.as_bytes());
    match &outcome.result {
        Ok(_) if !outcome.success_response => {}
        Ok(value) => match qemu_value(value) {
            Ok(value) => {
                if command == SYNC_DELIMITED {
                    out.push(SENTINEL);
                }
                out.extend_from_slice(b"{\"return\": ");
                out.extend_from_slice(&value);
                if let Some(id) = context.id {
                    out.extend_from_slice(b", \"id\": ");
                    out.extend_from_slice(id.as_bytes());
                }
                out.extend_from_slice(b"}\n");
            }
            Err(reason) => {
                let desc = format!("the command's result cannot be sent: {reason}");
                write_error(&mut out, context.id, ErrorClass::GenericError, |out| {
                    write_qemu_str(out, &desc);
                });
            }
        },
        Err(error) => {
            let command = echoed(command);
            let (class, desc) = match error.kind {
                ErrorKind::UnknownCommand => (
                    ErrorClass::CommandNotFound,
                    format!("The command {command} has not been found"),
                ),
                ErrorKind::Disabled if error.message.is_empty() => (
                    ErrorClass::CommandNotFound,
                    format!("Command {command} has been disabled"),
                ),
                ErrorKind::Disabled => (
                    ErrorClass::CommandNotFound,
                    format!("Command {command} has been disabled: {}", error.message),
                ),
                _ => (ErrorClass::GenericError, error.message.clone()),
            };
            write_error(&mut out, context.id, class, |out| {
                write_qemu_str(out, &desc)
            });
        }
    }
    out.extend_from_slice(context.after.as_bytes());
    (!out.is_empty()).then_some(out)
}

/// An error line for `desc`, echoing `id` (its JSON text) when given.
pub(crate) fn error_line(id: Option<&str>, class: ErrorClass, desc: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + desc.len());
    write_error(&mut out, id, class, |out| write_qemu_str(out, desc));
    out
}

/// The line answering input that did not parse: `desc` is QEMU's error
/// text, which may quote the input's bytes as they came.
pub(crate) fn parse_error_line(desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + desc.len());
    write_error(&mut out, None, ErrorClass::GenericError, |out| {
        write_qemu_bytes(out, desc)
    });
    out
}

fn write_error(
    out: &mut Vec<u8>,
    id: Option<&str>,
    class: ErrorClass,
    desc: impl FnOnce(&mut Vec<u8>),
) {
    out.push(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\": ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"\"error\": {\"class\": \"");
    out.extend_from_slice(class.name());
    out.extend_from_slice(b"\", \"desc\": ");
    desc(out);
    out.extend_from_slice(b"}}\n");
}

/// A command's value (standard JSON text from the agent) written as qemu-ga
/// writes a value. `{}` and plain integers, the usual answers, are taken as
/// they are.
fn qemu_value(json: &str) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    if json == "{}" || plain_integer(json) {
        return Ok(json.as_bytes().into());
    }
    let mut values = Vec::new();
    let mut streamer = Streamer::trusted();
    let mut emit = |message| values.push(message);
    streamer.feed(json.as_bytes(), &mut emit);
    streamer.finish(&mut emit);
    match values.pop() {
        Some(Ok(value)) if values.is_empty() => {
            let mut out = Vec::with_capacity(json.len() + json.len() / 8);
            value.write_qemu(&mut out);
            Ok(out.into())
        }
        Some(Err(desc)) if values.is_empty() => Err(String::from_utf8_lossy(&desc).into_owned()),
        _ => Err("it is not one JSON value".to_owned()),
    }
}

/// Digits that QEMU would read back as an `int64` or `uint64` and write
/// unchanged: no leading zero, and short enough to fit.
fn plain_integer(json: &str) -> bool {
    let (digits, max) = match json.strip_prefix('-') {
        Some(digits) => (digits, 18),
        None => (json, 19),
    };
    !digits.is_empty()
        && digits.len() <= max
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" && json == "0" || !digits.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_agent_plugin_api::CommandError;

    fn ok(json: &str) -> Outcome {
        Outcome {
            result: Ok(json.to_owned()),
            success_response: true,
        }
    }

    fn encoded(command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        encode_outcome(command, context, outcome)
    }

    fn text(command: &str, context: &str, outcome: &Outcome) -> String {
        String::from_utf8(encoded(command, context, outcome).unwrap()).unwrap()
    }

    #[test]
    fn success_puts_return_first_and_id_only_when_given() {
        assert_eq!(text("guest-ping", "", &ok("{}")), "{\"return\": {}}\n");
        assert_eq!(
            text("guest-ping", "\"abc-1\"", &ok("{}")),
            "{\"return\": {}, \"id\": \"abc-1\"}\n"
        );
        assert_eq!(text("guest-sync", "", &ok("-5")), "{\"return\": -5}\n");
    }

    #[test]
    fn values_are_rewritten_in_qemu_style() {
        let cases = [
            (
                r#"{"version":"7.2.22","supported_commands":[]}"#,
                r#"{"version": "7.2.22", "supported_commands": []}"#,
            ),
            (
                r#"{"a":[1,2.5,true,null,"é"]}"#,
                r#"{"a": [1, 2.5, true, null, "\u00E9"]}"#,
            ),
            ("1000.0", "1000"),
            ("-0", "0"),
            ("18446744073709551615", "18446744073709551615"),
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("\"thawed\"", "\"thawed\""),
            ("[]", "[]"),
        ];
        for (json, expected) in cases {
            assert_eq!(
                text("x", "", &ok(json)),
                format!("{{\"return\": {expected}}}\n"),
                "{json}"
            );
        }
    }

    #[test]
    fn sync_delimited_success_gets_a_sentinel_byte_its_errors_none() {
        assert_eq!(
            encoded("guest-sync-delimited", "\"d1\"", &ok("42")).unwrap(),
            b"\xff{\"return\": 42, \"id\": \"d1\"}\n"
        );
        let failed = Outcome::error(ErrorKind::BadArguments, "Parameter 'id' is missing");
        assert_eq!(
            text("guest-sync-delimited", "", &failed),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n"
        );
    }

    #[test]
    fn errors_map_to_qemu_classes_and_texts() {
        let cases = [
            (
                Outcome::error(ErrorKind::UnknownCommand, ""),
                r#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}"#,
            ),
            (
                Outcome::error(ErrorKind::Disabled, ""),
                r#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "Command x has been disabled"}}"#,
            ),
            (
                Outcome::error(ErrorKind::Disabled, "the agent is in frozen state"),
                r#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "Command x has been disabled: the agent is in frozen state"}}"#,
            ),
            (
                Outcome::error(ErrorKind::BadArguments, "Parameter 'a\u{0}b' is unexpected"),
                r#"{"id": 7, "error": {"class": "GenericError", "desc": "Parameter 'a\u0000b' is unexpected"}}"#,
            ),
            (
                Outcome::error(ErrorKind::NotFound, "no such user"),
                r#"{"id": 7, "error": {"class": "GenericError", "desc": "no such user"}}"#,
            ),
            (
                Outcome::error(ErrorKind::Failed, "line\nbreak \u{e9}"),
                r#"{"id": 7, "error": {"class": "GenericError", "desc": "line\nbreak \u00E9"}}"#,
            ),
            (
                Outcome::error(ErrorKind::Panicked, "command 'x' failed unexpectedly"),
                r#"{"id": 7, "error": {"class": "GenericError", "desc": "command 'x' failed unexpectedly"}}"#,
            ),
        ];
        for (outcome, expected) in cases {
            assert_eq!(text("x", "7", &outcome), format!("{expected}\n"));
        }
    }

    #[test]
    fn no_success_response_means_no_bytes_but_errors_are_answered() {
        let silent = Outcome {
            result: Ok("{}".to_owned()),
            success_response: false,
        };
        assert_eq!(encoded("guest-shutdown", "1", &silent), None);
        let failed = Outcome {
            result: Err(CommandError::bad_arguments("Invalid parameter 'mode'")),
            success_response: false,
        };
        assert_eq!(
            text("guest-shutdown", "", &failed),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter 'mode'\"}}\n"
        );
    }

    #[test]
    fn answers_packed_in_the_context_surround_the_call_s_own() {
        let context = Context {
            id: Some("1"),
            before: "B\n",
            after: "A\n",
        }
        .pack();
        assert_eq!(
            encoded("guest-sync-delimited", &context, &ok("3")).unwrap(),
            b"B\n\xff{\"return\": 3, \"id\": 1}\nA\n"
        );
        let silent = Outcome {
            result: Ok("{}".to_owned()),
            success_response: false,
        };
        assert_eq!(
            encoded("guest-shutdown", &context, &silent).unwrap(),
            b"B\nA\n"
        );
    }

    #[test]
    fn a_value_that_is_not_json_is_answered_as_an_error() {
        let answer = text("x", "", &ok("{\"a\":"));
        assert_eq!(
            answer,
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"the command's result cannot be sent: JSON parse error, premature EOI\"}}\n"
        );
        let answer = text("x", "", &ok("1 2"));
        assert!(answer.contains("it is not one JSON value"), "{answer}");
    }

    #[test]
    fn large_values_are_not_held_to_the_input_limits() {
        let big = "a".repeat(crate::lexer::MAX_TOKEN_SIZE + 10);
        let answer = encoded(
            "guest-file-read",
            "",
            &ok(&format!("{{\"buf-b64\":\"{big}\"}}")),
        )
        .unwrap();
        assert_eq!(
            answer.len(),
            big.len() + "{\"return\": {\"buf-b64\": \"\"}}\n".len()
        );
    }

    #[test]
    fn plain_integers_are_only_those_qemu_keeps_as_integers() {
        for yes in ["0", "1", "-1", "1234567890123456789", "-123456789012345678"] {
            assert!(plain_integer(yes), "{yes}");
        }
        for no in [
            "",
            "-",
            "-0",
            "01",
            "1.0",
            "1e3",
            "12345678901234567890",
            "-1234567890123456789",
            "x",
        ] {
            assert!(!plain_integer(no), "{no}");
        }
    }
}
