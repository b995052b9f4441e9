//! Request text quoted in an answer or a log line (an unknown command's
//! name, an unexpected member, a stray token): whole up to 64 characters,
//! else its first 64 and `...`, so that a mebibyte of name never makes a
//! mebibyte of answer or of log. Used by the `json` and `qga` parsers, the
//! QGA argument checks and the agent's request log.

use std::borrow::Cow;

/// How much request text an answer quotes: characters of text, bytes of
/// input that may not be UTF-8.
pub const ECHOED: usize = 64;

/// What stands for the rest of shortened text.
const ELLIPSIS: &str = "...";

/// `text`, shortened to its first [`ECHOED`] characters when longer.
pub fn echoed(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHOED) {
        Some((cut, _)) => Cow::Owned(format!("{}{ELLIPSIS}", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

/// `bytes` as they came, shortened to at most [`ECHOED`] bytes when longer,
/// cut before a UTF-8 sequence that would not fit whole.
pub fn echoed_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bytes.len() <= ECHOED {
        return Cow::Borrowed(bytes);
    }
    let mut cut = ECHOED;
    // At most three continuation bytes follow a sequence's first byte.
    while cut > ECHOED - 3 && is_continuation(bytes[cut]) {
        cut -= 1;
    }
    let mut out = bytes[..cut].to_vec();
    out.extend_from_slice(ELLIPSIS.as_bytes());
    Cow::Owned(out)
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_cut_at_64_characters() {
        assert_eq!(echoed("guest-ping"), "guest-ping");
        let fits = "é".repeat(ECHOED);
        assert_eq!(echoed(&fits), fits);
        let long = "é".repeat(ECHOED + 1);
        assert_eq!(echoed(&long), format!("{}...", "é".repeat(ECHOED)));
    }

    #[test]
    fn bytes_are_cut_before_a_sequence_that_would_not_fit_whole() {
        let mut bytes = vec![b'a'; ECHOED - 1];
        bytes.extend_from_slice("é".as_bytes());
        let cut = echoed_bytes(&bytes);
        assert_eq!(&cut[..], [&bytes[..ECHOED - 1], b"..."].concat());
        assert_eq!(echoed_bytes(b"short"), &b"short"[..]);
    }
}
