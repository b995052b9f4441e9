//! The byte-exact encoding of a Nova response.

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
