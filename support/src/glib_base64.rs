//! Base64 as qemu-ga reads and writes it.
//!
//! Decoding is QEMU's `qbase64_decode`: the text may hold only the base64
//! alphabet, `=` and newlines ("Base64 data contains invalid characters"
//! otherwise), and is then decoded by GLib's lenient `g_base64_decode`,
//! which never fails: newlines are skipped, `=` counts as a zero digit that
//! drops the byte it ends, and an incomplete last group is dropped. Encoding
//! is `g_base64_encode`: the standard alphabet, padded, on one line.
//!
//! Used by the `qga-file` and `qga-users` plugins.

/// qemu-ga's text for a character outside the alphabet.
pub const INVALID: &str = "Base64 data contains invalid characters";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The bytes `text` stands for, decoded as qemu-ga decodes them; `Err` with
/// qemu-ga's message.
pub fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n');
    if !text.as_bytes().iter().all(valid) {
        return Err(INVALID);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut group, mut digits) = (0u32, 0);
    // The last two digits taken: a `=` among them drops a byte of the group.
    let mut last = [0u8; 2];
    for &c in text.as_bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => continue,
        };
        last = [c, last[0]];
        group = (group << 6) | u32::from(value);
        digits += 1;
        if digits == 4 {
            out.push((group >> 16) as u8);
            if last[1] != b'=' {
                out.push((group >> 8) as u8);
            }
            if last[0] != b'=' {
                out.push(group as u8);
            }
            digits = 0;
        }
    }
    Ok(out)
}

/// `bytes` in standard, padded base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |g, (i, &b)| g | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((group >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{decode, encode, INVALID};

    /// What GLib 2.74's g_base64_decode gives for each text (taken from the
    /// library itself).
    #[test]
    fn decoding_matches_glib_including_its_leniency() {
        for (text, hex) in [
            ("", ""),
            ("QQ", ""),
            ("QQ=", ""),
            ("QQ==", "41"),
            ("QUI=", "4142"),
            ("QUJD", "414243"),
            ("QQ==QQ==", "4141"),
            ("Q=QQ", "400410"),
            ("=QUJD", "010509"),
            ("QU\nJD", "414243"),
            ("QUJDRA", "414243"),
            ("QUJDRA=", "414243"),
            ("Q===", "40"),
            ("====", "00"),
            ("QUJ=RA==", "414244"),
            ("YQpi", "610a62"),
            ("ABC", ""),
            ("////", "ffffff"),
            ("+/+/", "fbffbf"),
        ] {
            let bytes = decode(text).unwrap();
            let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text:?}");
        }
    }

    #[test]
    fn only_the_alphabet_padding_and_newlines_are_accepted() {
        for text in ["!!", "YW Jj", "YW\rJj", "YW\0Jj", "YW-_", "Y\tQ", "é"] {
            assert_eq!(decode(text), Err(INVALID), "{text:?}");
        }
    }

    #[test]
    fn encoding_is_standard_padded_base64_and_round_trips() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"a", "YQ=="),
            (b"ab", "YWI="),
            (b"abc", "YWJj"),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(encode(bytes), text);
            assert_eq!(decode(text).unwrap(), bytes);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
    }
}
