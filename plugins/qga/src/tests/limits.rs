//! QEMU's limits on one message: nesting 1024, 2 Mi tokens, 64 MiB per
//! token and per message, each answered with QEMU's text, after which the
//! stream goes on from the next token.

use super::{joined, show, stream};

const NESTING: &[u8] =
    br#"{"error": {"class": "GenericError", "desc": "JSON nesting depth limit exceeded"}}"#;
const COUNT: &[u8] =
    br#"{"error": {"class": "GenericError", "desc": "JSON token count limit exceeded"}}"#;
const SIZE: &[u8] =
    br#"{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}"#;
const NOT_OBJECT: &[u8] =
    br#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#;
const EXPECTING: &[u8] =
    br#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#;

#[test]
fn nesting_of_1024_is_allowed_and_1025_is_not() {
    // As qemu-ga 7.2.22 answered both.
    let at_limit = [&b"["[..]; 1024].concat();
    let closing = [&b"]"[..]; 1024].concat();
    assert_eq!(stream(&[&at_limit, &closing, b"\n"]), joined(&[NOT_OBJECT]));
    let beyond = [&b"["[..]; 1025].concat();
    assert_eq!(
        show(&stream(&[&beyond, b"]]]\n"])),
        show(&joined(&[NESTING, EXPECTING, EXPECTING, EXPECTING]))
    );
}

#[test]
fn nesting_counts_objects_and_lists_together() {
    let input = [[&b"{\"a\":"[..]; 512].concat(), [&b"["[..]; 513].concat()].concat();
    assert_eq!(stream(&[&input]), joined(&[NESTING]));
}

#[test]
fn the_token_after_two_mebi_tokens_is_refused() {
    // `[` then `1,` 1 Mi times: the last comma is token 2 Mi + 1.
    let mut input = b"[".to_vec();
    input.extend(b"1,".repeat(1 << 20));
    input.extend(b"1]\n");
    assert_eq!(
        show(&stream(&[&input])),
        show(&joined(&[COUNT, NOT_OBJECT, EXPECTING]))
    );
    // 2 Mi tokens make a message like any other.
    let mut input = b"[".to_vec();
    input.extend(b"1,".repeat((1 << 20) - 2));
    input.extend(b"[]]\n");
    assert_eq!(stream(&[&input]), joined(&[NOT_OBJECT]));
}

#[test]
fn a_token_beyond_64_mebibytes_is_cut_where_it_outgrows_the_limit() {
    // The opening quote and 64 Mi bytes make one byte too many; the closing
    // quote then opens a string that a newline breaks (the byte that breaks
    // a token is part of the stray text).
    let big = vec![b'a'; 64 << 20];
    let got = stream(&[b"\"", &big[..1000], &big[1000..], b"\"\n"]);
    let stray =
        br#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"\n'"}}"#;
    assert_eq!(show(&got), show(&joined(&[SIZE, stray])));
}

#[test]
fn a_message_of_64_mebibytes_is_too_large() {
    // The streamer wants room for a NUL after the message's tokens: a string
    // of 64 Mi bytes, quotes included, is one byte too large...
    let big = vec![b'a'; 64 << 20];
    let got = stream(&[b"\"", &big[2..], b"\"\n"]);
    assert_eq!(show(&got), show(&joined(&[SIZE])));
    // ...and one byte shorter it is a string like any other.
    let got = stream(&[b"\"", &big[3..], b"\"\n"]);
    assert_eq!(show(&got), show(&joined(&[NOT_OBJECT])));
}

#[test]
fn a_message_whose_tokens_outgrow_64_mebibytes_is_dropped() {
    let half = vec![b'a'; 32 << 20];
    let got = stream(&[b"[\"", &half, b"\",\"", &half, b"\"]\n"]);
    assert_eq!(show(&got), show(&joined(&[SIZE, EXPECTING])));
}
