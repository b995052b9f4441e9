//! Raw protocol messages: replies, errors, watch event order, transactions,
//! and a client that stops reading.

use std::time::Duration;

use super::{run_text, start, Raw, TIMEOUT};
use crate::xenstored::wire;

#[test]
fn requests_answer_like_xenstored() {
    let (_dir, server) = start();
    let mut c = Raw::connect(&server);
    c.ok(wire::WRITE, b"/a/b\0v\0w");
    assert_eq!(
        server.read("/a/b").unwrap(),
        b"v\0w",
        "value not terminated"
    );
    assert_eq!(
        c.call(wire::READ, 0, b"/a/b\0"),
        (wire::READ, b"v\0w".to_vec())
    );
    assert_eq!(c.call(wire::READ, 0, b"/a\0"), (wire::READ, Vec::new()));
    c.ok(wire::MKDIR, b"/a/c\0");
    c.ok(wire::MKDIR, b"/a/b\0");
    assert_eq!(server.read("/a/b").unwrap(), b"v\0w", "MKDIR keeps a value");
    c.ok(wire::WRITE, b"/a/z\0");
    assert_eq!(
        c.call(wire::DIRECTORY, 0, b"/a\0"),
        (wire::DIRECTORY, b"b\0c\0z\0".to_vec())
    );
    assert_eq!(
        c.call(wire::DIRECTORY, 0, b"/a/c\0"),
        (wire::DIRECTORY, Vec::new())
    );
    assert_eq!(
        c.call(wire::DIRECTORY_PART, 0, &[&b"/a\0"[..], b"0\0"].concat())
            .1[..],
        *format!("{}\0b\0c\0z\0\0", gen(&mut c, "/a")).as_bytes()
    );
    assert_eq!(
        c.call(wire::GET_PERMS, 0, b"/a\0"),
        (wire::GET_PERMS, b"n0\0".to_vec())
    );
    c.ok(wire::SET_PERMS, b"/a\0b0\0");
    assert_eq!(
        c.call(wire::GET_DOMAIN_PATH, 0, b"7\0"),
        (wire::GET_DOMAIN_PATH, b"/local/domain/7\0".to_vec())
    );
    c.ok(wire::RM, b"/a\0");
    assert_eq!(server.read("/a/b"), None);
    c.ok(wire::RM, b"/a\0");
    c.ok(wire::RESET_WATCHES, b"");

    c.error(wire::READ, 0, b"/a\0", "ENOENT");
    c.error(wire::DIRECTORY, 0, b"/a\0", "ENOENT");
    c.error(wire::GET_PERMS, 0, b"/a\0", "ENOENT");
    c.error(wire::SET_PERMS, 0, b"/a\0n0\0", "ENOENT");
    c.error(wire::RM, 0, b"/a/b\0", "ENOENT");
    c.error(wire::RM, 0, b"/\0", "EINVAL");
    for bad in [
        &b"/x//y\0"[..],
        b"/x/\0",
        b"x y\0",
        b"\0",
        b"/x.y\0",
        b"@x\0",
    ] {
        c.error(wire::READ, 0, bad, "EINVAL");
        c.error(wire::WRITE, 0, &[bad, b"v"].concat(), "EINVAL");
    }
    c.error(wire::READ, 0, b"/x", "EINVAL");
    c.error(wire::READ, 0, b"/x\0/y\0", "EINVAL");
    c.error(wire::WRITE, 0, b"/x", "EINVAL");
    c.error(wire::WATCH, 0, b"/x\0", "EINVAL");
    c.error(wire::GET_DOMAIN_PATH, 0, b"zero\0", "EINVAL");
    c.error(8, 0, b"", "ENOSYS");
    c.error(99, 0, b"/x\0", "ENOSYS");
    c.error(wire::WATCH_EVENT, 0, b"/x\0t\0", "ENOSYS");
    // Values up to the payload limit.
    let mut big = b"/big\0".to_vec();
    big.resize(wire::PAYLOAD_MAX, b'v');
    c.ok(wire::WRITE, &big);
    assert_eq!(
        c.call(wire::READ, 0, b"/big\0").1.len(),
        wire::PAYLOAD_MAX - 5
    );
}

fn gen(c: &mut Raw, path: &str) -> String {
    let (_, reply) = c.call(wire::DIRECTORY_PART, 0, format!("{path}\0999\0").as_bytes());
    let generation = reply.split(|&b| b == 0).next().unwrap();
    String::from_utf8(generation.to_vec()).unwrap()
}

#[test]
fn transactions_are_numbered_per_connection_and_checked() {
    let (_dir, server) = start();
    let mut c = Raw::connect(&server);
    assert_eq!(
        c.call(wire::TRANSACTION_START, 0, b"\0"),
        (wire::TRANSACTION_START, b"1\0".to_vec())
    );
    assert_eq!(c.call(wire::TRANSACTION_START, 0, b"\0").1, b"2\0");
    assert_eq!(
        c.call(wire::WRITE, 1, b"/t\0in tx"),
        (wire::WRITE, b"OK\0".to_vec())
    );
    assert_eq!(server.read("/t").unwrap(), b"in tx", "applied at once");
    assert_eq!(
        c.call(wire::READ, 2, b"/t\0"),
        (wire::READ, b"in tx".to_vec())
    );
    c.error(wire::TRANSACTION_END, 1, b"X\0", "EINVAL");
    assert_eq!(
        c.call(wire::TRANSACTION_END, 1, b"T\0"),
        (wire::TRANSACTION_END, b"OK\0".to_vec())
    );
    assert_eq!(c.call(wire::TRANSACTION_END, 2, b"F\0").1, b"OK\0");
    c.error(wire::TRANSACTION_END, 1, b"T\0", "ENOENT");
    c.error(wire::TRANSACTION_END, 0, b"T\0", "ENOENT");
    c.error(wire::READ, 9, b"/t\0", "ENOENT");

    let mut other = Raw::connect(&server);
    assert_eq!(other.call(wire::TRANSACTION_START, 0, b"\0").1, b"1\0");
}

#[test]
fn watch_events_follow_their_reply_with_relative_or_absolute_paths() {
    let (_dir, server) = start();
    let mut c = Raw::connect(&server);
    assert_eq!(
        c.call(wire::WATCH, 0, b"data\0rel\0"),
        (wire::WATCH, b"OK\0".to_vec())
    );
    c.event("data", "rel");
    c.ok(wire::WATCH, b"/local/domain/0/data\0abs\0");
    c.event("/local/domain/0/data", "abs");
    c.ok(wire::WATCH, b"@introduceDomain\0special\0");
    c.event("@introduceDomain", "special");
    c.error(wire::WATCH, 0, b"data\0rel\0", "EEXIST");
    c.error(wire::WATCH, 0, b"da ta\0x\0", "EINVAL");

    // The writer's reply comes before the events it causes.
    c.ok(wire::WRITE, b"data/x\0v");
    c.event("data/x", "rel");
    c.event("/local/domain/0/data/x", "abs");

    // Another client's change, and a change above the watches (none).
    server.write("/local/domain/0/data", b"");
    c.event("data", "rel");
    c.event("/local/domain/0/data", "abs");
    server.write("/local/domain/0/other", b"");

    // MKDIR fires only if it creates; SET_PERMS fires.
    c.ok(wire::MKDIR, b"data/x\0");
    c.ok(wire::MKDIR, b"data/y\0");
    c.event("data/y", "rel");
    c.event("/local/domain/0/data/y", "abs");
    c.ok(wire::SET_PERMS, b"data\0n0\0");
    c.event("data", "rel");
    c.event("/local/domain/0/data", "abs");

    c.ok(wire::UNWATCH, b"data\0rel\0");
    c.error(wire::UNWATCH, 0, b"data\0rel\0", "ENOENT");
    c.ok(wire::UNWATCH, b"@introduceDomain\0special\0");
    // RM of an ancestor fires the watch below it with the watch's path.
    c.ok(wire::RM, b"/local/domain\0");
    c.event("/local/domain/0/data", "abs");
    c.ok(wire::RESET_WATCHES, b"");
    assert!(server.watches().is_empty());
    c.ok(wire::WRITE, b"/local/domain/0/data/z\0");
    // Nothing queued before this reply: no events after RESET_WATCHES.
    assert_eq!(c.call(wire::READ, 0, b"data/z\0").0, wire::READ);
}

#[test]
fn a_client_that_stops_reading_stalls_nobody_else() {
    let (_dir, server) = start();
    let mut idle = Raw::connect(&server);
    idle.send(wire::WATCH, 0, b"/\0t\0");
    let mut busy = Raw::connect(&server);
    busy.ok(wire::WATCH, b"/local/domain/0/counter\0t\0");
    busy.event("/local/domain/0/counter", "t");
    for i in 0..20_000 {
        // Each event goes to `idle` too, which reads nothing.
        busy.ok(wire::WRITE, format!("counter\0{i}").as_bytes());
        busy.event("/local/domain/0/counter", "t");
    }
    // Its queue overflowed: the server dropped it.
    assert!(server.wait_until(TIMEOUT, |s| s.connections() == 1));
    assert_eq!(run_text(&server, "xenstore-read", &["counter"]), "19999\n");
    idle.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut drained = 0;
    while wire::read_reply(&mut idle.stream).is_ok() {
        drained += 1;
    }
    assert!(
        drained > 1 && drained < 20_000,
        "{drained} messages, then EOF"
    );
}
