//! A port of QEMU's JSON lexer and streamer (`qobject/json-lexer.c`,
//! `qobject/json-streamer.c`, QEMU 7.2, interpolation off as in qemu-ga):
//! bytes in, one message out each time `{}`/`[]` nesting returns to zero or
//! a scalar stands alone, byte for byte the same decisions as qemu-ga.
//!
//! - A lexical error (a byte no token can take: a control character, 0xFE,
//!   0xFF, an upper-case letter, `01`, ...) emits
//!   `JSON parse error, stray '<the token so far>'`, drops the message being
//!   collected, and skips input until a structural character, a control
//!   character other than `\t`, or 0xFE/0xFF.
//! - The limits: a token of more than 64 MiB, a message whose tokens hold
//!   more than 64 MiB, more than 2 Mi tokens, nesting deeper than 1024.
//!
//! The text of every token of the message being collected lives in one
//! buffer, followed by the token being lexed; a token is a kind and a range
//! of it, so a message costs no allocation per token.

use crate::echo::echoed_bytes;
use crate::parse::parse_message;
use crate::value::QValue;

/// One token may hold at most this many bytes, and so may all the tokens of
/// one message together.
pub(crate) const MAX_TOKEN_SIZE: usize = 64 << 20;
/// The most tokens one message may hold.
pub(crate) const MAX_TOKEN_COUNT: usize = 2 << 20;
/// The deepest `{`/`[` nesting one message may reach.
pub(crate) const MAX_NESTING: i64 = 1 << 10;

/// What the streamer emits: a value, or the text of a `GenericError`
/// (bytes: a stray token is quoted as it came, valid UTF-8 or not).
pub(crate) type Message = Result<QValue, Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
}

/// A token: its kind and where its text lies in the message buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The lexer's states (`enum json_lexer_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Recovery,
    DqStringEscape,
    DqString,
    SqStringEscape,
    SqString,
    Zero,
    ExpDigits,
    ExpSign,
    ExpE,
    Mantissa,
    MantissaDigits,
    Digits,
    Sign,
    Keyword,
    Start,
}

/// Where a byte takes the lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    State(State),
    Token(Kind),
    Error,
}

/// The transition table (`json_lexer[][]`): the next state, and whether the
/// byte is left for the next state to look at (a token ended before it).
fn step(state: State, byte: u8) -> (Next, bool) {
    use Next::{Error, State as S, Token as T};
    const LOOK: bool = true;
    const TAKE: bool = false;
    let structural = matches!(byte, b'[' | b']' | b'{' | b'}' | b':' | b',');
    match state {
        State::Recovery => match byte {
            b'\t' => (S(State::Recovery), TAKE),
            0..=0x1F | 0xFE | 0xFF => (S(State::Start), LOOK),
            _ if structural => (S(State::Start), LOOK),
            _ => (S(State::Recovery), TAKE),
        },
        State::DqStringEscape => match byte {
            0x20..=0xFD => (S(State::DqString), TAKE),
            _ => (Error, TAKE),
        },
        State::DqString => match byte {
            b'\\' => (S(State::DqStringEscape), TAKE),
            b'"' => (T(Kind::String), TAKE),
            0x20..=0xFD => (S(State::DqString), TAKE),
            _ => (Error, TAKE),
        },
        State::SqStringEscape => match byte {
            0x20..=0xFD => (S(State::SqString), TAKE),
            _ => (Error, TAKE),
        },
        State::SqString => match byte {
            b'\\' => (S(State::SqStringEscape), TAKE),
            b'\'' => (T(Kind::String), TAKE),
            0x20..=0xFD => (S(State::SqString), TAKE),
            _ => (Error, TAKE),
        },
        State::Zero => match byte {
            b'0'..=b'9' => (Error, TAKE),
            b'.' => (S(State::Mantissa), TAKE),
            _ => (T(Kind::Integer), LOOK),
        },
        State::ExpDigits => match byte {
            b'0'..=b'9' => (S(State::ExpDigits), TAKE),
            _ => (T(Kind::Float), LOOK),
        },
        State::ExpSign => match byte {
            b'0'..=b'9' => (S(State::ExpDigits), TAKE),
            _ => (Error, TAKE),
        },
        State::ExpE => match byte {
            b'-' | b'+' => (S(State::ExpSign), TAKE),
            b'0'..=b'9' => (S(State::ExpDigits), TAKE),
            _ => (Error, TAKE),
        },
        State::MantissaDigits => match byte {
            b'0'..=b'9' => (S(State::MantissaDigits), TAKE),
            b'e' | b'E' => (S(State::ExpE), TAKE),
            _ => (T(Kind::Float), LOOK),
        },
        State::Mantissa => match byte {
            b'0'..=b'9' => (S(State::MantissaDigits), TAKE),
            _ => (Error, TAKE),
        },
        State::Digits => match byte {
            b'0'..=b'9' => (S(State::Digits), TAKE),
            b'e' | b'E' => (S(State::ExpE), TAKE),
            b'.' => (S(State::Mantissa), TAKE),
            _ => (T(Kind::Integer), LOOK),
        },
        State::Sign => match byte {
            b'0' => (S(State::Zero), TAKE),
            b'1'..=b'9' => (S(State::Digits), TAKE),
            _ => (Error, TAKE),
        },
        State::Keyword => match byte {
            b'a'..=b'z' => (S(State::Keyword), TAKE),
            _ => (T(Kind::Keyword), LOOK),
        },
        State::Start => match byte {
            b'"' => (S(State::DqString), TAKE),
            b'\'' => (S(State::SqString), TAKE),
            b'0' => (S(State::Zero), TAKE),
            b'1'..=b'9' => (S(State::Digits), TAKE),
            b'-' => (S(State::Sign), TAKE),
            b'{' => (T(Kind::LCurly), TAKE),
            b'}' => (T(Kind::RCurly), TAKE),
            b'[' => (T(Kind::LSquare), TAKE),
            b']' => (T(Kind::RSquare), TAKE),
            b',' => (T(Kind::Comma), TAKE),
            b':' => (T(Kind::Colon), TAKE),
            b'a'..=b'z' => (S(State::Keyword), TAKE),
            b' ' | b'\t' | b'\r' | b'\n' => (S(State::Start), TAKE),
            _ => (Error, TAKE),
        },
    }
}

/// The lexer and streamer of one byte stream.
pub(crate) struct Streamer {
    state: State,
    /// The text of the message's tokens, then the token being lexed.
    buf: Vec<u8>,
    /// Where the token being lexed starts in `buf`: also the total size of
    /// the message's tokens.
    token_start: usize,
    tokens: Vec<Token>,
    brace_count: i64,
    bracket_count: i64,
    /// `false` for trusted text (a command's own value): no size or count
    /// limit, only the nesting limit, which bounds the parser's recursion.
    size_limits: bool,
}

impl Streamer {
    /// A streamer with qemu-ga's limits, for input from the host.
    pub(crate) fn new() -> Streamer {
        Streamer {
            state: State::Start,
            buf: Vec::new(),
            token_start: 0,
            tokens: Vec::new(),
            brace_count: 0,
            bracket_count: 0,
            size_limits: true,
        }
    }

    /// A streamer for the agent's own JSON text, which may be larger than
    /// what the host may send.
    pub(crate) fn trusted() -> Streamer {
        Streamer {
            size_limits: false,
            ..Streamer::new()
        }
    }

    /// Takes the next bytes of the stream; `emit` receives each message
    /// they complete, in order.
    pub(crate) fn feed(&mut self, bytes: &[u8], emit: &mut impl FnMut(Message)) {
        let mut at = 0;
        while at < bytes.len() {
            let skipped = self.skip_run(&bytes[at..]);
            if skipped > 0 {
                at += skipped;
                if self.token_len() > self.max_token_size() {
                    self.token_too_long(emit);
                }
                continue;
            }
            self.feed_byte(bytes[at], emit);
            at += 1;
        }
    }

    /// The end of the input (`json_message_parser_flush`): the token being
    /// lexed ends (or is stray), and a message still being collected is
    /// parsed as it is ("premature EOI").
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(Message)) {
        while self.state != State::Start {
            let (next, _) = step(self.state, 0);
            self.take(next, emit);
        }
        if !self.tokens.is_empty() {
            let message = parse_message(&self.tokens, &self.buf);
            self.reset();
            emit(message);
        }
    }

    /// The fast path: the length of the run at the start of `bytes` that
    /// leaves the state as it is (a string's plain characters, digits, a
    /// keyword's letters, whitespace, bytes skipped in recovery), taken in
    /// one go. It stops where the current token would outgrow its limit, so
    /// that the check after it fires at the very byte QEMU's fires at.
    fn skip_run(&mut self, bytes: &[u8]) -> usize {
        let stays: fn(u8) -> bool = match self.state {
            State::DqString => |b| (0x20..=0xFD).contains(&b) && b != b'"' && b != b'\\',
            State::SqString => |b| (0x20..=0xFD).contains(&b) && b != b'\'' && b != b'\\',
            State::Digits | State::MantissaDigits | State::ExpDigits => |b| b.is_ascii_digit(),
            State::Keyword => |b| b.is_ascii_lowercase(),
            State::Start => {
                return bytes
                    .iter()
                    .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                    .unwrap_or(bytes.len())
            }
            State::Recovery => {
                return bytes
                    .iter()
                    .position(|&b| step(State::Recovery, b).1)
                    .unwrap_or(bytes.len())
            }
            _ => return 0,
        };
        let run = bytes.iter().position(|&b| !stays(b)).unwrap_or(bytes.len());
        let room = (self.max_token_size() + 1).saturating_sub(self.token_len());
        let run = run.min(room);
        self.buf.extend_from_slice(&bytes[..run]);
        run
    }

    /// `json_lexer_feed_char`.
    fn feed_byte(&mut self, byte: u8, emit: &mut impl FnMut(Message)) {
        loop {
            let (next, lookahead) = step(self.state, byte);
            if !lookahead {
                self.buf.push(byte);
            }
            self.take(next, emit);
            if !lookahead {
                break;
            }
        }
        if self.token_len() > self.max_token_size() {
            self.token_too_long(emit);
        }
    }

    /// Moves to `next`, handing a finished token (or a stray one) to the
    /// streamer.
    fn take(&mut self, next: Next, emit: &mut impl FnMut(Message)) {
        self.state = match next {
            Next::Token(kind) => {
                self.token(kind, emit);
                self.buf.truncate(self.token_start);
                State::Start
            }
            Next::Error => {
                let token = &self.buf[self.token_start..];
                let mut desc = b"JSON parse error, stray '".to_vec();
                // QEMU formats the token with `%s`: it ends at a NUL byte.
                let end = token.iter().position(|&b| b == 0).unwrap_or(token.len());
                desc.extend_from_slice(&echoed_bytes(&token[..end]));
                desc.push(b'\'');
                self.reset();
                emit(Err(desc));
                State::Recovery
            }
            Next::State(state @ (State::Start | State::Recovery)) => {
                self.buf.truncate(self.token_start);
                state
            }
            Next::State(state) => state,
        };
    }

    /// `json_message_process_token` for one finished token.
    fn token(&mut self, kind: Kind, emit: &mut impl FnMut(Message)) {
        match kind {
            Kind::LCurly => self.brace_count += 1,
            Kind::RCurly => self.brace_count -= 1,
            Kind::LSquare => self.bracket_count += 1,
            Kind::RSquare => self.bracket_count -= 1,
            _ => {}
        }
        let limit = if !self.size_limits {
            None
        } else if self.buf.len() + 1 > MAX_TOKEN_SIZE {
            Some("JSON token size limit exceeded")
        } else if self.tokens.len() + 1 > MAX_TOKEN_COUNT {
            Some("JSON token count limit exceeded")
        } else {
            None
        };
        let limit = limit.or_else(|| {
            (self.bracket_count + self.brace_count > MAX_NESTING)
                .then_some("JSON nesting depth limit exceeded")
        });
        if let Some(limit) = limit {
            self.reset();
            emit(Err(limit.as_bytes().to_vec()));
            return;
        }
        self.tokens.push(Token {
            kind,
            start: self.token_start,
            end: self.buf.len(),
        });
        self.token_start = self.buf.len();
        let open = self.brace_count > 0 || self.bracket_count > 0;
        if open && self.brace_count >= 0 && self.bracket_count >= 0 {
            return;
        }
        let message = parse_message(&self.tokens, &self.buf);
        self.reset();
        emit(message);
    }

    /// A token outgrew its limit mid-way (`json_lexer_feed_char`'s own
    /// check): the streamer reports it and the lexer starts afresh, right
    /// after the byte that broke it.
    fn token_too_long(&mut self, emit: &mut impl FnMut(Message)) {
        self.reset();
        self.state = State::Start;
        emit(Err(b"JSON token size limit exceeded".to_vec()));
    }

    fn token_len(&self) -> usize {
        self.buf.len() - self.token_start
    }

    fn max_token_size(&self) -> usize {
        if self.size_limits {
            MAX_TOKEN_SIZE
        } else {
            usize::MAX - 1
        }
    }

    /// Drops the message being collected, and the token being lexed.
    fn reset(&mut self) {
        self.brace_count = 0;
        self.bracket_count = 0;
        self.tokens.clear();
        self.buf.clear();
        self.token_start = 0;
        // A message of millions of tokens must not pin its memory for the
        // stream's life.
        if self.buf.capacity() > 64 << 10 {
            self.buf = Vec::new();
        }
        if self.tokens.capacity() > 4 << 10 {
            self.tokens = Vec::new();
        }
    }
}
