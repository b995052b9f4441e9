//! Request text quoted in an answer (an unknown command's name, an
//! unexpected member, a stray token): whole up to 64 characters, else its
//! first 64 and `...`, so that a mebibyte of name never makes a mebibyte of
//! answer. The names and tokens a host really sends are far shorter, and
//! answered as qemu-ga answers them.

#[cfg(test)]
use nova_agent_support::echo::ECHOED;
pub(crate) use nova_agent_support::echo::{echoed, echoed_bytes};

#[cfg(test)]
mod tests {
    use super::*;
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};

    /// The answer to `input` fed whole to one stream of the parser.
    fn answer(input: &[u8]) -> String {
        let agent = TestAgent::new(TestHost::new("/nonexistent"))
            .with_plugin(crate::init, serde_json::json!({}))
            .unwrap();
        String::from_utf8(agent.feed("qga", input)).unwrap()
    }

    fn error(desc: &str) -> String {
        format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{desc}\"}}}}\n")
    }

    #[test]
    fn a_mebibyte_of_request_text_is_quoted_by_its_first_64_characters() {
        let kept = "a".repeat(ECHOED);
        let long = format!("{kept}{}", "b".repeat(1 << 20));
        assert_eq!(
            answer(format!("{{\"execute\": \"{long}\", \"id\": 1}}\n").as_bytes()),
            format!(
                "{{\"id\": 1, \"error\": {{\"class\": \"CommandNotFound\", \"desc\": \"The command {kept}... has not been found\"}}}}\n"
            )
        );
        assert_eq!(
            answer(format!("{{\"execute\": \"x\", \"{long}\": 1}}\n").as_bytes()),
            error(&format!("QMP input member '{kept}...' is unexpected"))
        );
        // A string that a line break breaks: a stray token, quote included.
        assert_eq!(
            answer(format!("\"{long}\n").as_bytes()),
            error(&format!(
                "JSON parse error, stray '\\\"{}...'",
                "a".repeat(ECHOED - 1)
            ))
        );
        // A keyword token that is no keyword.
        assert_eq!(
            answer(format!("[{long}]\n").as_bytes()),
            error(&format!("JSON parse error, invalid keyword '{kept}...'"))
        );
    }

    #[test]
    fn short_text_is_kept_long_text_cut_at_64_characters() {
        let fits = "é".repeat(ECHOED);
        assert_eq!(echoed(&fits), fits);
        assert_eq!(echoed(&format!("{fits}x")), format!("{fits}..."));
        let bytes = [b'a'; ECHOED];
        assert_eq!(echoed_bytes(&bytes), &bytes[..]);
        let long = vec![b'a'; 1 << 20];
        assert_eq!(
            echoed_bytes(&long),
            format!("{}...", "a".repeat(ECHOED)).as_bytes()
        );
    }

    #[test]
    fn bytes_are_cut_before_a_sequence_that_does_not_fit() {
        // 62 ASCII bytes, then a 4-byte character straddling byte 64.
        let mut input = vec![b'a'; 62];
        input.extend("\u{1F600}".as_bytes());
        input.extend(b"tail");
        let mut expected = vec![b'a'; 62];
        expected.extend(b"...");
        assert_eq!(echoed_bytes(&input), expected);
        // Not UTF-8 at all: cut at 64 bytes all the same.
        let invalid = vec![0x80u8; 100];
        let shown = echoed_bytes(&invalid);
        assert_eq!(shown.len(), ECHOED - 3 + 3);
    }
}
