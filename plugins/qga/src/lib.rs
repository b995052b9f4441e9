//! The `qga` plugin: parser `qga`, the QEMU guest agent protocol (QGA) as
//! qemu-ga 7.2 speaks it on its virtio-serial port, so that libvirt, Nova
//! and QEMU's own clients get the very bytes qemu-ga would send them.
//!
//! Input is a byte stream of JSON values, not lines. The stream decoder is a
//! port of QEMU's JSON lexer, streamer and parser (modules `lexer`, `parse`): a
//! message ends where `{}`/`[]` nesting returns to zero or a scalar stands
//! alone; single-quoted strings are accepted, duplicate keys, invalid UTF-8,
//! invalid `\u` escapes and control characters are not; a lexical error is
//! answered `JSON parse error, stray '...'` and skipped up to the next
//! structural or control character (0xFF is how a host resets the parser),
//! a structural one with QEMU's text; QEMU's limits apply (64 MiB per token
//! and per message, 2 Mi tokens, nesting 1024). An unterminated object stays
//! pending in the decoder; the agent drops the decoder when the exchange
//! ends the stream, so, unlike with qemu-ga, a later host never sees it.
//!
//! A complete object is checked as `qmp_dispatch` checks it (module `envelope`):
//! only `execute` (a string), `arguments` (an object) and `id` (any value),
//! `execute` required. It becomes a call of the registry command named by
//! `execute`, with `arguments` as its arguments (compact JSON text, `{}`
//! when absent): a vendor's command is reachable the same way as
//! `guest-ping`. Everything else is answered at once, without an `id` for a
//! message that is not an object, with it otherwise.
//!
//! Responses (module `encode`) are one JSON object on one line ending in `\n`,
//! printable ASCII (`\uXXXX`, upper-case hex, surrogate pairs), with
//! qemu-ga's separators, key order (QEMU's hash order) and number format
//! (`%.17g` for doubles). A command's `Ok(value)` is sent as `return`,
//! whatever JSON it is, re-written in that style (a command with nothing to
//! return returns `{}`, as QAPI does; `null` would be sent as `null`); any
//! error of the command is `GenericError` with its message as `desc`. An
//! unknown command is `CommandNotFound` "The command X has not been found";
//! a denied or gated one `CommandNotFound` "Command X has been disabled",
//! with `": <reason>"` for a gate. A command that answers nothing on success
//! (`guest-shutdown`) gets no bytes at all; a successful
//! `guest-sync-delimited` gets a raw 0xFF before its answer (as with
//! qemu-ga, whose handler sets the flag, a failed one gets none). Request
//! text quoted in an answer (a command name, a member, a token) is cut to its
//! first 64 characters and `...` (module `echo`).
//!
//! Framed input (`decode`, from an exchange that frames requests) is a
//! whole stream of its own: see the `framed` module.
//!
//! Deliberate departures from qemu-ga, each where its bytes would break the
//! one-object-per-line rule or cannot be carried: an infinite number (`1e999`)
//! is echoed as `1e999`, not `inf`; in `arguments` it reaches the command as
//! the largest finite double. And one against a flood: request text over 64
//! characters is quoted shortened, where qemu-ga quotes it whole.
//!
//! What it is not:
//! - It does not decide policy: unknown, denied and gated commands come back
//!   from the agent's dispatcher, and only their wording is decided here.
//! - It does not check a command's arguments: each QGA command does, with
//!   `nova_agent_support::qapi`.
//! - It does not log requests or answers (they carry passwords and keys).

#![forbid(unsafe_code)]

use nova_agent_plugin_api::{
    export_plugin, Decoded, Host, Outcome, Parser, PluginError, Provides, StreamDecoder,
};
use nova_agent_support::config;
use serde_json::Value;

mod echo;
mod encode;
mod envelope;
mod framed;
mod lexer;
mod parse;
mod value;

use encode::{encode_outcome, error_line, ErrorClass};
use envelope::decoded;
use lexer::Streamer;

/// The answer to a framed request the exchange could not read and gave no
/// reason for.
const UNREADABLE: &str = "the request could not be read";

/// Parser `qga`.
struct QgaParser;

impl Parser for QgaParser {
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded {
        match request {
            Ok(bytes) => framed::decode(bytes),
            Err(reason) => {
                let reason = if reason.is_empty() {
                    UNREADABLE
                } else {
                    reason
                };
                Decoded::Answer(error_line(None, ErrorClass::GenericError, reason))
            }
        }
    }

    fn encode(&self, command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        encode_outcome(command, context, outcome)
    }

    fn stream_decoder(&self) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(QgaStream(Streamer::new())))
    }
}

/// The decoder of one QGA byte stream.
struct QgaStream(Streamer);

impl StreamDecoder for QgaStream {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        let mut items = Vec::new();
        self.0
            .feed(bytes, &mut |message| items.push(decoded(message)));
        items
    }
}

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    config::no_keys("qga", &config)?;
    Ok(Provides::new().parser("qga", QgaParser))
}

export_plugin! {
    name: "qga",
    description: "the QEMU guest agent protocol, as qemu-ga 7.2 speaks it",
    provides: { parsers: ["qga"] },
    init: init,
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
