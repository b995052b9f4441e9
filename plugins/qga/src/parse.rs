//! A port of QEMU's JSON parser (`qobject/json-parser.c`, 7.2): one
//! message's tokens into a [`QValue`], with QEMU's extensions (single-quoted
//! strings, `\'`), its strictness (duplicate keys, invalid Unicode, modified
//! UTF-8) and its error texts. The first error found is the one reported.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;

use crate::echo::echoed_bytes;
use crate::lexer::{Kind, Message, Token};
use crate::value::{mod_utf8_codepoint, valid_codepoint, QValue};

/// Above this many members, duplicate keys are found through a set of
/// hashes rather than by scanning.
const SCAN_LIMIT: usize = 8;

/// Parses a complete message (`json_parser_parse`).
pub(crate) fn parse_message(tokens: &[Token], buf: &[u8]) -> Message {
    let mut parser = Parser {
        tokens,
        buf,
        next: 0,
        err: None,
    };
    let value = parser.parse_value();
    match (value, parser.err) {
        (_, Some(err)) => Err(err),
        (Some(value), None) => Ok(value),
        (None, None) => Err(b"JSON parse error, expecting value".to_vec()),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    buf: &'a [u8],
    next: usize,
    err: Option<Vec<u8>>,
}

impl<'a> Parser<'a> {
    /// Records an error, unless one was recorded already.
    fn error(&mut self, message: impl AsRef<[u8]>) {
        if self.err.is_none() {
            let mut text = b"JSON parse error, ".to_vec();
            text.extend_from_slice(message.as_ref());
            self.err = Some(text);
        }
    }

    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.next).copied()
    }

    fn pop(&mut self) -> Option<Token> {
        let token = self.peek()?;
        self.next += 1;
        Some(token)
    }

    fn text(&self, token: Token) -> &'a [u8] {
        &self.buf[token.start..token.end]
    }

    fn parse_value(&mut self) -> Option<QValue> {
        let Some(token) = self.peek() else {
            self.error("premature EOI");
            return None;
        };
        match token.kind {
            Kind::LCurly => self.parse_object(),
            Kind::LSquare => self.parse_array(),
            Kind::Integer | Kind::Float | Kind::String => self.parse_literal(),
            Kind::Keyword => self.parse_keyword(),
            _ => {
                self.error("expecting value");
                None
            }
        }
    }

    fn parse_object(&mut self) -> Option<QValue> {
        self.pop();
        let mut dict = Dict::default();
        let Some(peek) = self.peek() else {
            self.error("premature EOI");
            return None;
        };
        if peek.kind == Kind::RCurly {
            self.pop();
            return Some(QValue::Dict(dict.members));
        }
        self.parse_pair(&mut dict)?;
        loop {
            let Some(token) = self.pop() else {
                self.error("premature EOI");
                return None;
            };
            match token.kind {
                Kind::RCurly => return Some(QValue::Dict(dict.members)),
                Kind::Comma => self.parse_pair(&mut dict)?,
                _ => {
                    self.error("expected separator in dict");
                    return None;
                }
            }
        }
    }

    fn parse_pair(&mut self, dict: &mut Dict) -> Option<()> {
        if self.peek().is_none() {
            self.error("premature EOI");
            return None;
        }
        let Some(QValue::Str(key)) = self.parse_value() else {
            self.error("key is not a string in object");
            return None;
        };
        let Some(token) = self.pop() else {
            self.error("premature EOI");
            return None;
        };
        if token.kind != Kind::Colon {
            self.error("missing : in object pair");
            return None;
        }
        let Some(value) = self.parse_value() else {
            self.error("Missing value in dict");
            return None;
        };
        if !dict.insert(key, value) {
            self.error("duplicate key");
            return None;
        }
        Some(())
    }

    fn parse_array(&mut self) -> Option<QValue> {
        self.pop();
        let mut list = Vec::new();
        let Some(peek) = self.peek() else {
            self.error("premature EOI");
            return None;
        };
        if peek.kind == Kind::RSquare {
            self.pop();
            return Some(QValue::List(list));
        }
        loop {
            let Some(item) = self.parse_value() else {
                self.error("expecting value");
                return None;
            };
            list.push(item);
            let Some(token) = self.pop() else {
                self.error("premature EOI");
                return None;
            };
            match token.kind {
                Kind::RSquare => return Some(QValue::List(list)),
                Kind::Comma => {}
                _ => {
                    self.error("expected separator in list");
                    return None;
                }
            }
        }
    }

    fn parse_keyword(&mut self) -> Option<QValue> {
        let token = self.pop()?;
        match self.text(token) {
            b"true" => Some(QValue::Bool(true)),
            b"false" => Some(QValue::Bool(false)),
            b"null" => Some(QValue::Null),
            word => {
                let mut message = b"invalid keyword '".to_vec();
                message.extend_from_slice(&echoed_bytes(word));
                message.push(b'\'');
                self.error(message);
                None
            }
        }
    }

    fn parse_literal(&mut self) -> Option<QValue> {
        let token = self.pop()?;
        let text = self.text(token);
        if token.kind == Kind::String {
            return match parse_string(text) {
                Ok(s) => Some(QValue::Str(s)),
                Err(message) => {
                    self.error(message);
                    None
                }
            };
        }
        // The lexer let through only digits, signs, `.`, `e` and `E`.
        let text = std::str::from_utf8(text).unwrap_or("");
        if token.kind == Kind::Integer {
            if let Ok(n) = text.parse::<i64>() {
                return Some(QValue::Int(n));
            }
            if !text.starts_with('-') {
                if let Ok(n) = text.parse::<u64>() {
                    return Some(QValue::UInt(n));
                }
            }
        }
        Some(QValue::Double(text.parse().unwrap_or(f64::NAN)))
    }
}

/// An object being parsed, refusing a key it holds already.
#[derive(Default)]
struct Dict {
    members: Vec<(String, QValue)>,
    hashes: Option<(RandomState, HashSet<u64>)>,
}

impl Dict {
    /// Adds a member; `false` if the key is there already.
    fn insert(&mut self, key: String, value: QValue) -> bool {
        let known = match &mut self.hashes {
            None if self.members.len() < SCAN_LIMIT => self.holds(&key),
            None => {
                let state = RandomState::new();
                let hashes = self.members.iter().map(|(k, _)| state.hash_one(k));
                let hashes = hashes.collect();
                self.hashes = Some((state, hashes));
                return self.insert(key, value);
            }
            Some((state, hashes)) => !hashes.insert(state.hash_one(&key)) && self.holds(&key),
        };
        if known {
            return false;
        }
        self.members.push((key, value));
        true
    }

    fn holds(&self, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k == key)
    }
}

/// A string token's text, quotes included, decoded (`parse_string`).
fn parse_string(token: &[u8]) -> Result<String, Vec<u8>> {
    // Past its end a token reads as its C string's terminating NUL.
    let at = |i: usize| token.get(i).copied().unwrap_or(0);
    let quote = token[0];
    let mut out = String::with_capacity(token.len());
    let mut ptr = 1;
    loop {
        let plain = token[ptr..]
            .iter()
            .position(|&b| b == quote || b == b'\\' || b >= 0x80)
            .map_or(token.len(), |n| ptr + n);
        out.push_str(std::str::from_utf8(&token[ptr..plain]).unwrap_or_default());
        ptr = plain;
        match at(ptr) {
            c if c == quote => return Ok(out),
            b'\\' => {
                let begin = ptr;
                let escape = at(ptr + 1);
                ptr += 2;
                let c = match escape {
                    b'"' => '"',
                    b'\'' => '\'',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let mut cp = cvt4hex(&at, ptr);
                        ptr += 4;
                        if (0xD800..=0xDBFF).contains(&cp)
                            && at(ptr) == b'\\'
                            && at(ptr + 1) == b'u'
                        {
                            cp = 0x10000 + ((cp & 0x3FF) << 10);
                            let trailing = cvt4hex(&at, ptr + 2);
                            if (0xDC00..=0xDFFF).contains(&trailing) {
                                cp |= trailing & 0x3FF;
                                ptr += 6;
                            } else {
                                cp = -1;
                            }
                        }
                        match u32::try_from(cp).ok().filter(|&cp| valid_codepoint(cp)) {
                            Some(cp) => char::from_u32(cp).unwrap_or('\u{FFFD}'),
                            None => {
                                let mut message = token[begin..ptr.min(token.len())].to_vec();
                                message.extend_from_slice(b" is not a valid Unicode character");
                                return Err(message);
                            }
                        }
                    }
                    _ => return Err(b"invalid escape sequence in string".to_vec()),
                };
                out.push(c);
            }
            _ => {
                let (cp, len) = mod_utf8_codepoint(&token[ptr..]);
                match cp.and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => return Err(b"invalid UTF-8 sequence in string".to_vec()),
                }
                ptr += len;
            }
        }
    }
}

/// Four hex digits at `from` as a number; -1 unless all four are.
fn cvt4hex(at: &impl Fn(usize) -> u8, from: usize) -> i64 {
    let mut cp = 0;
    for i in from..from + 4 {
        match char::from(at(i)).to_digit(16) {
            Some(digit) => cp = cp << 4 | i64::from(digit),
            None => return -1,
        }
    }
    cp
}
