//! The byte-exact encoding of a Nova response, and the mapping of a
//! command's outcome to Nova's codes and message.

use std::borrow::Cow;

use nova_agent_plugin_api::{ErrorKind, Outcome};
use nova_agent_support::echo::echoed;
#[cfg(test)]
use nova_agent_support::echo::ECHOED;

/// The one command whose success is answered `"D0"` rather than `"0"`.
const KEYINIT: &str = "keyinit";

/// The response to `command`'s outcome; `None` for a success the command
/// wants unanswered (no Nova command does; Nova's host waits for every
/// other answer).
pub(crate) fn encode_outcome(command: &str, outcome: &Outcome) -> Option<Vec<u8>> {
    let error = match &outcome.result {
        Ok(_) if !outcome.success_response => return None,
        Ok(value) => {
            let code = if command == KEYINIT { "D0" } else { "0" };
            return Some(encode_response(code, &value_message(value)));
        }
        Err(error) => error,
    };
    let command = echoed(command);
    Some(match error.kind {
        ErrorKind::Disabled if !error.message.is_empty() => encode_response(
            "404",
            &format!("Command '{command}' is disabled: {}", error.message),
        ),
        ErrorKind::UnknownCommand | ErrorKind::Disabled => {
            encode_response("404", &format!("No such agent command '{command}'"))
        }
        ErrorKind::NotFound => encode_response("404", &error.message),
        _ => encode_response("500", &error.message),
    })
}

/// A success's message: a JSON string as it is, `null` as nothing, any
/// other value as its compact JSON text (which the agent hands over: a wide
/// number keeps every digit).
fn value_message(json: &str) -> Cow<'_, str> {
    if let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')) {
        // Without a backslash a JSON string has no escape: its text is as is.
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        if let Ok(text) = serde_json::from_str::<String>(json) {
            return Cow::Owned(text);
        }
    }
    match json {
        "null" => Cow::Borrowed(""),
        _ => Cow::Borrowed(json),
    }
}

/// Encodes `(code, message)` as the original agent did:
/// `{"message": "<message>", "returncode": "<code>"}`, message first, with
/// `", "` and `": "` as separators and no trailing newline.
///
/// Both strings are [sanitised](sanitise) first, so the output is always
/// valid, printable-ASCII JSON without a single backslash (hosts read it
/// through `xenstore-read`, which mangles both).
pub(crate) fn encode_response(code: &str, message: &str) -> Vec<u8> {
    let message = sanitise(message);
    let code = sanitise(code);
    format!("{{\"message\": \"{message}\", \"returncode\": \"{code}\"}}").into_bytes()
}

/// Replaces every character JSON would escape or that is not printable ASCII
/// (`"`, `\`, U+0000-U+001F, U+007F and everything beyond U+007F) by one `?`.
fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '?',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(code: &str, message: &str) -> String {
        String::from_utf8(encode_response(code, message)).unwrap()
    }

    fn outcome(command: &str, outcome: Outcome) -> Option<String> {
        encode_outcome(command, &outcome).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    fn value(json: &str) -> Outcome {
        Outcome {
            result: Ok(json.to_owned()),
            success_response: true,
        }
    }

    #[test]
    fn values_map_to_code_0_and_keyinit_to_d0() {
        let cases = [
            (
                "version",
                r#""2.0.0""#,
                r#"{"message": "2.0.0", "returncode": "0"}"#,
            ),
            ("password", r#""""#, r#"{"message": "", "returncode": "0"}"#),
            ("x", "null", r#"{"message": "", "returncode": "0"}"#),
            (
                "x",
                r#"{"a":[1,true]}"#,
                r#"{"message": "{?a?:[1,true]}", "returncode": "0"}"#,
            ),
            (
                "x",
                "162259276829213363391578010288126",
                r#"{"message": "162259276829213363391578010288126", "returncode": "0"}"#,
            ),
            (
                "keyinit",
                r#""12345""#,
                r#"{"message": "12345", "returncode": "D0"}"#,
            ),
        ];
        for (command, json, expected) in cases {
            assert_eq!(
                outcome(command, value(json)).as_deref(),
                Some(expected),
                "{json}"
            );
        }
    }

    #[test]
    fn errors_map_by_kind() {
        let cases = [
            (
                ErrorKind::UnknownCommand,
                "",
                r#"{"message": "No such agent command 'x'", "returncode": "404"}"#,
            ),
            (
                ErrorKind::Disabled,
                "",
                r#"{"message": "No such agent command 'x'", "returncode": "404"}"#,
            ),
            (
                ErrorKind::Disabled,
                "the agent is in frozen state",
                r#"{"message": "Command 'x' is disabled: the agent is in frozen state", "returncode": "404"}"#,
            ),
            (
                ErrorKind::NotFound,
                "no host key",
                r#"{"message": "no host key", "returncode": "404"}"#,
            ),
            (
                ErrorKind::BadArguments,
                "invalid arguments",
                r#"{"message": "invalid arguments", "returncode": "500"}"#,
            ),
            (
                ErrorKind::Failed,
                "boom \"x\"\n",
                r#"{"message": "boom ?x??", "returncode": "500"}"#,
            ),
            (
                ErrorKind::Panicked,
                "command 'x' failed unexpectedly",
                r#"{"message": "command 'x' failed unexpectedly", "returncode": "500"}"#,
            ),
        ];
        for (kind, message, expected) in cases {
            assert_eq!(
                outcome("x", Outcome::error(kind, message)).as_deref(),
                Some(expected),
                "{kind:?}"
            );
        }
        // keyinit's errors are plain errors.
        assert_eq!(
            outcome("keyinit", Outcome::error(ErrorKind::Failed, "bad key")).as_deref(),
            Some(r#"{"message": "bad key", "returncode": "500"}"#)
        );
    }

    #[test]
    fn a_long_command_name_is_echoed_shortened() {
        let fits = "n".repeat(ECHOED);
        assert_eq!(
            outcome(&fits, Outcome::error(ErrorKind::UnknownCommand, "")),
            Some(format!(
                r#"{{"message": "No such agent command '{fits}'", "returncode": "404"}}"#
            ))
        );
        let huge = format!("{fits}{}", "x".repeat(1 << 20));
        let expected =
            format!(r#"{{"message": "No such agent command '{fits}...'", "returncode": "404"}}"#);
        for kind in [ErrorKind::UnknownCommand, ErrorKind::Disabled] {
            assert_eq!(
                outcome(&huge, Outcome::error(kind, "")),
                Some(expected.clone())
            );
        }
        assert_eq!(
            outcome(&huge, Outcome::error(ErrorKind::Disabled, "frozen")),
            Some(format!(
                r#"{{"message": "Command '{fits}...' is disabled: frozen", "returncode": "404"}}"#
            ))
        );
        // Characters, not bytes: each of the 64 kept becomes one `?`.
        let wide = "\u{e9}".repeat(1 << 16);
        let answer = outcome(&wide, Outcome::error(ErrorKind::UnknownCommand, "")).unwrap();
        let kept = "?".repeat(ECHOED);
        assert_eq!(
            answer,
            format!(r#"{{"message": "No such agent command '{kept}...'", "returncode": "404"}}"#)
        );
    }

    #[test]
    fn a_success_wanting_no_answer_gets_none_but_its_errors_do() {
        let silent = Outcome {
            result: Ok(r#""bye""#.to_owned()),
            success_response: false,
        };
        assert_eq!(outcome("x", silent), None);
        let failed = Outcome {
            result: Err(nova_agent_plugin_api::CommandError::failed("no")),
            success_response: false,
        };
        assert_eq!(
            outcome("x", failed).as_deref(),
            Some(r#"{"message": "no", "returncode": "500"}"#)
        );
    }

    #[test]
    fn layout_is_message_first_with_python_separators() {
        assert_eq!(
            encoded("0", "2.0.0"),
            r#"{"message": "2.0.0", "returncode": "0"}"#
        );
        assert_eq!(encoded("D0", ""), r#"{"message": "", "returncode": "D0"}"#);
    }

    #[test]
    fn printable_ascii_is_kept() {
        let all: String = (' '..='~').filter(|c| !matches!(c, '"' | '\\')).collect();
        assert_eq!(sanitise(&all), all);
    }

    #[test]
    fn escapable_and_non_ascii_characters_become_one_question_mark_each() {
        assert_eq!(sanitise("a\"b\\c\nd\te\u{7f}f\u{0}g"), "a?b?c?d?e?f?g");
        assert_eq!(sanitise("caf\u{e9} \u{1F600}!"), "caf? ?!");
        assert_eq!(sanitise("\r\u{1f}\u{80}\u{2028}"), "????");
    }

    #[test]
    fn code_is_sanitised_too() {
        assert_eq!(
            encoded("5\"0\\0", "x"),
            r#"{"message": "x", "returncode": "5?0?0"}"#
        );
    }

    #[test]
    fn output_is_valid_json_without_backslash() {
        let out = encoded("500", "q\" b\\ n\n t\t del\u{7f} \u{e9}\u{1F600}");
        assert!(!out.contains('\\'));
        assert!(out.is_ascii());
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["message"], "q? b? n? t? del? ??");
        assert_eq!(parsed["returncode"], "500");
    }
}
