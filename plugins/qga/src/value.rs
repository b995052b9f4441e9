//! A JSON value as QEMU's QObject holds it, and the two ways it is written:
//! as qemu-ga writes its responses (QEMU's `json-writer.c`), and as compact
//! standard JSON for a command's `arguments`.

use std::fmt::Write as _;

/// A parsed JSON value. Integers stay integers while they fit an `i64`, then
/// a `u64`, and only then become doubles, as QEMU's `QNum` does. An object
/// keeps its members in input order (QEMU's hash order is applied when it is
/// written).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
    List(Vec<QValue>),
    Dict(Vec<(String, QValue)>),
}

/// The QDict hash bucket of `key` (QEMU `qobject/qdict.c`: `tdb_hash` modulo
/// 512 buckets). A QDict iterates its buckets in order, and a bucket's
/// entries newest first; that is the key order of everything qemu-ga writes.
/// U+0000 counts as QEMU stores it, in modified UTF-8 (`C0 80`).
pub(crate) fn qdict_bucket(key: &str) -> u16 {
    let nuls = key.bytes().filter(|&b| b == 0).count();
    let mut value = 0x238F_13AF_u32.wrapping_mul((key.len() + nuls) as u32);
    let mut i = 0;
    let mut add = |byte: u8| {
        value = value.wrapping_add(u32::from(byte) << (i * 5 % 24));
        i += 1;
    };
    for byte in key.bytes() {
        if byte == 0 {
            add(0xC0);
            add(0x80);
        } else {
            add(byte);
        }
    }
    (1_103_515_243_u32.wrapping_mul(value).wrapping_add(12345) % 512) as u16
}

/// The indexes of `keys` in the order a QDict holding them, inserted in the
/// given order, iterates them.
pub(crate) fn qdict_order<'a>(keys: impl ExactSizeIterator<Item = &'a str>) -> Vec<usize> {
    let mut order: Vec<(u16, usize)> = keys
        .enumerate()
        .map(|(index, key)| (qdict_bucket(key), index))
        .collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    order.into_iter().map(|(_, index)| index).collect()
}

/// Decodes the modified UTF-8 sequence at the start of `s` (QEMU
/// `util/unicode.c` `mod_utf8_codepoint`): the code point, or `None` for an
/// invalid sequence, and how many bytes it took. Bytes past the end read as
/// the terminating NUL of a C string. `s` must not be empty.
pub(crate) fn mod_utf8_codepoint(s: &[u8]) -> (Option<u32>, usize) {
    const MIN_CP: [u32; 5] = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];
    let first = s[0];
    if first < 0x80 {
        return (Some(u32::from(first)), 1);
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return (None, 1);
    }
    let len = first.leading_ones() as usize;
    let mut cp = u32::from(first) & ((0x80 >> len) - 1);
    for i in 1..len {
        let byte = s.get(i).copied().unwrap_or(0);
        if byte & 0xC0 != 0x80 {
            return (None, i);
        }
        cp = (cp << 6) | u32::from(byte & 0x3F);
    }
    let overlong = cp < MIN_CP[len - 2] && !(cp == 0 && len == 2);
    if !valid_codepoint(cp) || overlong {
        return (None, len);
    }
    (Some(cp), len)
}

/// QEMU's `is_valid_codepoint`: in range, not a surrogate, not one of the
/// 66 noncharacters.
pub(crate) fn valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && cp & 0xFFFE != 0xFFFE
        && !(0xD800..=0xDFFF).contains(&cp)
}

impl QValue {
    /// Appends the value as qemu-ga writes it: `", "` and `": "` between
    /// members, object keys in QDict order, ASCII only.
    pub(crate) fn write_qemu(&self, out: &mut Vec<u8>) {
        match self {
            QValue::Null => out.extend_from_slice(b"null"),
            QValue::Bool(true) => out.extend_from_slice(b"true"),
            QValue::Bool(false) => out.extend_from_slice(b"false"),
            QValue::Int(n) => write_display(out, n),
            QValue::UInt(n) => write_display(out, n),
            QValue::Double(d) => write_double(out, *d),
            QValue::Str(s) => write_qemu_str(out, s),
            QValue::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    item.write_qemu(out);
                }
                out.push(b']');
            }
            QValue::Dict(members) => {
                out.push(b'{');
                let order = qdict_order(members.iter().map(|(k, _)| k.as_str()));
                for (i, index) in order.into_iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    let (key, value) = &members[index];
                    write_qemu_str(out, key);
                    out.extend_from_slice(b": ");
                    value.write_qemu(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Appends the value as compact standard JSON, members in input order,
    /// for a command to read with any JSON parser. A double always reads
    /// back as a double (`1000.0`, never `1000`), so a QAPI `int` member
    /// given as `1e3` is still refused, as QEMU refuses it; an infinite one
    /// (`1e999`), which standard JSON cannot carry, is written as the
    /// largest finite double of its sign.
    pub(crate) fn write_compact(&self, out: &mut String) {
        match self {
            QValue::Null => out.push_str("null"),
            QValue::Bool(true) => out.push_str("true"),
            QValue::Bool(false) => out.push_str("false"),
            QValue::Int(n) => {
                let _ = write!(out, "{n}");
            }
            QValue::UInt(n) => {
                let _ = write!(out, "{n}");
            }
            QValue::Double(d) => {
                let d = d.clamp(f64::MIN, f64::MAX);
                let _ = write!(out, "{d:?}");
            }
            QValue::Str(s) => write_compact_str(out, s),
            QValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            QValue::Dict(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_compact_str(out, key);
                    out.push(':');
                    value.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_display(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = std::io::Write::write_fmt(out, format_args!("{n}"));
}

/// A string as QEMU's `quoted_str` writes it. Rust text holds no invalid
/// sequence, but may hold a noncharacter (from a command's value), which
/// QEMU's decoder rejects and writes as U+FFFD.
pub(crate) fn write_qemu_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        if (' '..='~').contains(&c) && c != '"' && c != '\\' {
            continue;
        }
        out.extend_from_slice(&bytes[plain..at]);
        plain = at + c.len_utf8();
        let cp = u32::from(c);
        write_escaped(out, if valid_codepoint(cp) { cp } else { 0xFFFD });
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// A C string of arbitrary bytes as QEMU's `quoted_str` writes it: it ends
/// at the first NUL, and each invalid sequence becomes U+FFFD.
pub(crate) fn write_qemu_bytes(out: &mut Vec<u8>, mut s: &[u8]) {
    if let Some(nul) = s.iter().position(|&b| b == 0) {
        s = &s[..nul];
    }
    out.push(b'"');
    while !s.is_empty() {
        let (cp, len) = mod_utf8_codepoint(s);
        let cp = cp.unwrap_or(0xFFFD);
        if (0x20..0x7F).contains(&cp) && cp != u32::from(b'"') && cp != u32::from(b'\\') {
            out.push(cp as u8);
        } else {
            write_escaped(out, cp);
        }
        s = &s[len..];
    }
    out.push(b'"');
}

/// One code point that `quoted_str` does not write as itself.
fn write_escaped(out: &mut Vec<u8>, cp: u32) {
    let short: &[u8] = match cp {
        0x22 => b"\\\"",
        0x5C => b"\\\\",
        0x08 => b"\\b",
        0x0C => b"\\f",
        0x0A => b"\\n",
        0x0D => b"\\r",
        0x09 => b"\\t",
        _ => b"",
    };
    if !short.is_empty() {
        out.extend_from_slice(short);
    } else if cp > 0xFFFF {
        let cp = cp - 0x10000;
        write_u_escape(out, 0xD800 + (cp >> 10));
        write_u_escape(out, 0xDC00 + (cp & 0x3FF));
    } else if !(0x20..0x7F).contains(&cp) {
        write_u_escape(out, cp);
    } else {
        out.push(cp as u8);
    }
}

/// `\uXXXX` with upper-case hex.
fn write_u_escape(out: &mut Vec<u8>, unit: u32) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xF) as usize]);
    }
}

/// A string as standard JSON: only `"`, `\` and control characters escaped.
fn write_compact_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(&s[plain..at]);
        plain = at + 1;
        if short.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A double as C's `printf("%.17g")` writes it, which is how QEMU writes
/// every double. An infinity, which QEMU writes as the invalid JSON `inf`,
/// is written `1e999` (or `-1e999`): valid JSON that reads back as the same
/// infinity, so that the line stays a JSON object for the host.
pub(crate) fn write_double(out: &mut Vec<u8>, d: f64) {
    if d.is_infinite() {
        out.extend_from_slice(if d < 0.0 { b"-1e999" } else { b"1e999" });
        return;
    }
    if d.is_nan() {
        // Never parsed from JSON text; `null` keeps the line valid JSON.
        out.extend_from_slice(b"null");
        return;
    }
    if d == 0.0 {
        out.extend_from_slice(if d.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // 17 significant digits, correctly rounded (ties to even, as glibc).
    let sci = format!("{:.16e}", d.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("`e` formatting has an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("`e` formatting has a decimal exponent");
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if d < 0.0 {
        out.push(b'-');
    }
    if !(-4..17).contains(&exponent) {
        let kept = trim_zeros(&digits[1..]);
        out.push(digits[0]);
        if !kept.is_empty() {
            out.push(b'.');
            out.extend_from_slice(kept);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        write_display(out, format_args!("{:02}", exponent.unsigned_abs()));
    } else if exponent < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exponent - 1) as usize));
        out.extend_from_slice(trim_zeros(&digits));
    } else {
        let point = exponent as usize + 1;
        out.extend_from_slice(&digits[..point]);
        let fraction = trim_zeros(&digits[point..]);
        if !fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
    &digits[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu(value: &QValue) -> String {
        let mut out = Vec::new();
        value.write_qemu(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn double(d: f64) -> String {
        let mut out = Vec::new();
        write_double(&mut out, d);
        String::from_utf8(out).unwrap()
    }

    fn dict(keys: &[&str]) -> QValue {
        QValue::Dict(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), QValue::Int(i as i64)))
                .collect(),
        )
    }

    #[test]
    fn doubles_print_as_printf_17g() {
        // Each expected text is what glibc's printf("%.17g") prints.
        let cases = [
            (1000.0, "1000"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (-0.0, "-0"),
            (0.0, "0"),
            (-1.0, "-1"),
            (1e300, "1.0000000000000001e+300"),
            (1e-300, "1e-300"),
            (1.5e-7, "1.4999999999999999e-07"),
            (18446744073709551616.0, "1.8446744073709552e+19"),
            (-9223372036854775808.0, "-9.2233720368547758e+18"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (123456.789, "123456.789"),
            (1700000000.123, "1700000000.1229999"),
        ];
        for (d, expected) in cases {
            assert_eq!(double(d), expected, "{d:e}");
        }
    }

    #[test]
    fn infinities_stay_valid_json() {
        assert_eq!(double(f64::INFINITY), "1e999");
        assert_eq!(double(f64::NEG_INFINITY), "-1e999");
        // Standard JSON syntax, which reads back as the same infinity.
        let mut values = Vec::new();
        let mut streamer = crate::lexer::Streamer::trusted();
        streamer.feed(b"[1e999, -1e999]", &mut |m| values.push(m));
        assert_eq!(
            values,
            [Ok(QValue::List(vec![
                QValue::Double(f64::INFINITY),
                QValue::Double(f64::NEG_INFINITY)
            ]))]
        );
    }

    #[test]
    fn keys_follow_qdict_hash_order() {
        // Orders observed on the wire from qemu-ga 7.2.
        assert_eq!(
            qemu(&dict(&["b", "a", "execute", "return", "class", "desc"])),
            r#"{"class": 4, "a": 1, "execute": 2, "b": 0, "desc": 5, "return": 3}"#
        );
        assert_eq!(
            qemu(&dict(&[
                "name",
                "hardware-address",
                "ip-addresses",
                "statistics"
            ])),
            r#"{"name": 0, "ip-addresses": 2, "statistics": 3, "hardware-address": 1}"#
        );
        assert!(qdict_bucket("return") < qdict_bucket("id"));
        assert!(qdict_bucket("id") < qdict_bucket("error"));
        assert!(qdict_bucket("class") < qdict_bucket("desc"));
    }

    #[test]
    fn keys_in_one_bucket_come_newest_first() {
        let keys: Vec<String> = (0..2000).map(|i| format!("key{i}")).collect();
        let mut buckets = std::collections::HashMap::<u16, Vec<&str>>::new();
        for key in &keys {
            buckets.entry(qdict_bucket(key)).or_default().push(key);
        }
        let same = buckets.into_values().find(|keys| keys.len() >= 3).unwrap();
        let same = &same[..3];
        assert_eq!(qdict_order(same.iter().copied()), [2, 1, 0]);
    }

    #[test]
    fn strings_are_ascii_with_upper_case_escapes() {
        let s = QValue::Str("\u{e9}\u{1F600}/\u{0}\u{7f}\"\\\n\t\u{8}\u{c}\r\u{1f}\u{fffe}".into());
        assert_eq!(
            qemu(&s),
            r#""\u00E9\uD83D\uDE00/\u0000\u007F\"\\\n\t\b\f\r\u001F\uFFFD""#
        );
    }

    #[test]
    fn raw_bytes_end_at_nul_and_invalid_sequences_become_fffd() {
        let mut out = Vec::new();
        write_qemu_bytes(&mut out, b"a\xff\xc3(\xc3\xa9\xc0\x80\xed\xa0\x80z\0hidden");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\uFFFD\uFFFD(\u00E9\u0000\uFFFDz""#
        );
    }

    #[test]
    fn mod_utf8_takes_what_qemu_takes() {
        assert_eq!(mod_utf8_codepoint(b"\xc3\xa9"), (Some(0xE9), 2));
        assert_eq!(mod_utf8_codepoint(b"\xc0\x80"), (Some(0), 2));
        assert_eq!(mod_utf8_codepoint(b"\xc1\xbf"), (None, 2));
        assert_eq!(mod_utf8_codepoint(b"\xe2\x82"), (None, 2));
        assert_eq!(mod_utf8_codepoint(b"\x80"), (None, 1));
        assert_eq!(mod_utf8_codepoint(b"\xef\xbf\xbe"), (None, 3));
        assert_eq!(mod_utf8_codepoint(b"\xf4\x90\x80\x80"), (None, 4));
        assert_eq!(mod_utf8_codepoint(b"\xf0\x9f\x98\x80"), (Some(0x1F600), 4));
    }

    #[test]
    fn compact_form_reads_back_with_the_same_types() {
        let value = QValue::Dict(vec![
            ("id".into(), QValue::Double(1000.0)),
            ("n".into(), QValue::Int(-5)),
            ("u".into(), QValue::UInt(u64::MAX)),
            ("big".into(), QValue::Double(f64::INFINITY)),
            ("s".into(), QValue::Str("q\"\\\u{1}\u{e9}".into())),
            (
                "l".into(),
                QValue::List(vec![QValue::Null, QValue::Bool(true)]),
            ),
        ]);
        let mut text = String::new();
        value.write_compact(&mut text);
        assert_eq!(
            text,
            r#"{"id":1000.0,"n":-5,"u":18446744073709551615,"big":1.7976931348623157e308,"s":"q\"\\\u0001é","l":[null,true]}"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(back["id"].is_f64());
        assert_eq!(back["u"].as_u64(), Some(u64::MAX));
    }
}
