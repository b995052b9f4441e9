//! Framed input: a request from an exchange that frames (one line of a
//! unix socket, one XenStore node) is decoded as a complete stream of its
//! own, with a fresh decoder, up to its end (QEMU's
//! `json_message_parser_flush`: a token cut short is stray, an unterminated
//! object is "premature EOI"), since nothing will ever complete it.
//!
//! The agent takes exactly one item per framed request, and runs at most
//! one command for it. So:
//! - nothing at all (blank input) is answered with nothing;
//! - one item is that item;
//! - several answers and no call are one answer, in order;
//! - one call among answers (a client's leading 0xFF before
//!   `guest-sync-delimited`, trailing garbage) is that call, carrying the
//!   other answers in its context to be sent before and after its own, in
//!   input order;
//! - several calls run none of them: each is answered `GenericError`
//!   (with its `id`), in order with the other answers, since the exchange
//!   promised one request and the host must not guess which ran.

use nova_agent_plugin_api::Decoded;

use crate::encode::{error_line, ErrorClass};
use crate::envelope::{decoded, Context};
use crate::lexer::Streamer;

/// The answer to each of several calls in one framed request.
pub(crate) const SEVERAL_CALLS: &str =
    "several requests in one message: send one request per message";

/// Decodes one framed request into the one item the agent takes.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    let mut items = Vec::new();
    let mut streamer = Streamer::new();
    let mut emit = |message| items.push(decoded(message));
    streamer.feed(bytes, &mut emit);
    streamer.finish(&mut emit);
    combine(items)
}

fn combine(mut items: Vec<Decoded>) -> Decoded {
    let calls = items
        .iter()
        .filter(|item| matches!(item, Decoded::Call(_)))
        .count();
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    if calls == 1 {
        let (mut before, mut after) = (String::new(), String::new());
        let mut call = None;
        for item in items {
            match item {
                Decoded::Call(found) => call = Some(found),
                Decoded::Answer(bytes) => {
                    let side = if call.is_none() {
                        &mut before
                    } else {
                        &mut after
                    };
                    // Every answer this parser writes is ASCII.
                    side.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let mut call = call.expect("one call");
        call.context = Context {
            id: Context::unpack(&call.context).id,
            before: &before,
            after: &after,
        }
        .pack();
        return Decoded::Call(call);
    }
    let mut answer = Vec::new();
    for item in items {
        match item {
            Decoded::Answer(bytes) => answer.extend_from_slice(&bytes),
            Decoded::Call(call) => {
                let id = Context::unpack(&call.context).id;
                answer.extend(error_line(id, ErrorClass::GenericError, SEVERAL_CALLS));
            }
        }
    }
    Decoded::Answer(answer)
}
