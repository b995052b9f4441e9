//! The exchange with `method = "unix-listen"`: a socket in a temporary
//! directory, hosts on std's `UnixStream`, the test playing the workers.
//! A host can come back here, so this is where later sessions are tested.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nova_agent_plugin_api::{Exchange, Input};

use crate::capture::captured_log;
use crate::config::Method;
use crate::port::Timing;
use crate::tests::{chunk, exchange_at, next_on_thread, stream_end, TIMEOUT};
use crate::VirtioSerialExchange;

fn started() -> (tempfile::TempDir, PathBuf, Arc<VirtioSerialExchange>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    let exchange = exchange_at(&path, Method::UnixListen, Timing::default());
    exchange.start().unwrap();
    (dir, path, exchange)
}

fn connect(path: &PathBuf) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

fn read_exactly(stream: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn the_socket_is_0600_and_removed_at_shutdown() {
    let (_dir, path, exchange) = started();
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600);
    exchange.shutdown();
    assert!(!path.exists());
}

#[test]
fn a_client_is_a_stream_and_gets_its_answers() {
    let (_dir, path, exchange) = started();
    let mut host = connect(&path);
    host.write_all(b"{\"execute\":\"guest-ping\"}").unwrap();
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(
        chunk(&item),
        ("host-1", &b"{\"execute\":\"guest-ping\"}"[..])
    );
    exchange.respond(&item.id, b"{\"return\": {}}\n").unwrap();
    assert_eq!(read_exactly(&mut host, 15), b"{\"return\": {}}\n");

    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    host.write_all(b"more").unwrap();
    let item = exchange.next().unwrap().unwrap();
    let writer = {
        let (exchange, big, id) = (Arc::clone(&exchange), big.clone(), item.id.clone());
        thread::spawn(move || exchange.respond(&id, &big))
    };
    assert_eq!(read_exactly(&mut host, big.len()), big);
    writer.join().unwrap().unwrap();
}

#[test]
fn one_client_at_a_time_and_each_is_a_new_stream() {
    let (_dir, path, exchange) = started();
    let mut first = connect(&path);
    first.write_all(b"one").unwrap();
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(chunk(&item), ("host-1", &b"one"[..]));
    exchange.respond(&item.id, b"1\n").unwrap();

    // The second waits in the backlog while the first is served.
    let mut second = connect(&path);
    second.write_all(b"two").unwrap();
    let waiting = next_on_thread(&exchange);
    assert!(waiting.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(read_exactly(&mut first, 2), b"1\n");
    drop(first);
    let end = waiting.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(stream_end(&end), "host-1");
    exchange.respond(&end.id, b"").unwrap();
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(chunk(&item), ("host-2", &b"two"[..]));
    exchange.respond(&item.id, b"2\n").unwrap();
    assert_eq!(read_exactly(&mut second, 2), b"2\n");
}

#[test]
fn a_later_host_sees_neither_the_bytes_nor_the_answers_of_an_earlier_one() {
    let (_dir, path, exchange) = started();
    // The first host sends a request and half of another, then leaves
    // while the first is still being answered.
    let mut first = connect(&path);
    first
        .write_all(b"{\"execute\":\"guest-get-time\"}{\"execute\":")
        .unwrap();
    let item = exchange.next().unwrap().unwrap();
    let watcher = next_on_thread(&exchange);
    drop(first);
    let mut second = connect(&path);
    second.write_all(b"{\"execute\":\"guest-ping\"}").unwrap();
    assert!(watcher.recv_timeout(Duration::from_millis(300)).is_err());
    // The answer to the first host is dropped, not sent to the second.
    exchange.respond(&item.id, b"{\"return\": 1}\n").unwrap();
    let end = watcher.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(stream_end(&end), "host-1");
    exchange.respond(&end.id, b"").unwrap();
    // The second host's bytes start a stream of their own.
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(
        chunk(&item),
        ("host-2", &b"{\"execute\":\"guest-ping\"}"[..])
    );
    exchange.respond(&item.id, b"{\"return\": {}}\n").unwrap();
    assert_eq!(read_exactly(&mut second, 15), b"{\"return\": {}}\n");
    second
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut more = [0u8; 1];
    assert!(second.read(&mut more).is_err(), "nothing else arrives");
}

#[test]
fn a_host_that_leaves_with_unread_input_leaves_nothing_behind() {
    let (_dir, path, exchange) = started();
    let mut first = connect(&path);
    first.write_all(b"{\"execute\":\"guest-").unwrap();
    let item = exchange.next().unwrap().unwrap();
    // More bytes, then gone, before the agent reads them.
    first.write_all(b"ping\"}").unwrap();
    drop(first);
    exchange.respond(&item.id, b"").unwrap();
    let end = exchange.next().unwrap().unwrap();
    assert_eq!(stream_end(&end), "host-1");
    exchange.respond(&end.id, b"").unwrap();
    let mut second = connect(&path);
    second.write_all(b"x").unwrap();
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(chunk(&item), ("host-2", &b"x"[..]));
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let (_dir, path, _exchange) = started();
    let other = exchange_at(&path, Method::UnixListen, Timing::default());
    let error = other.start().unwrap_err();
    assert_eq!(
        error.message(),
        format!(
            "socket {} is in use by another process (is another nova-agent running?)",
            path.display()
        )
    );
}

#[test]
fn four_workers_answer_a_long_conversation_in_order() {
    let (_dir, path, exchange) = started();
    // As the agent serves a channel: several workers in `next` at once, each
    // answering a chunk with its bytes reversed.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let exchange = Arc::clone(&exchange);
            thread::spawn(move || {
                captured_log(|| {
                    while let Some(item) = exchange.next().unwrap() {
                        let answer = match &item.input {
                            Input::Stream { bytes, .. } => {
                                let mut answer: Vec<u8> = bytes.iter().rev().copied().collect();
                                answer.push(b'\n');
                                answer
                            }
                            _ => Vec::new(),
                        };
                        exchange.respond(&item.id, &answer).unwrap();
                    }
                })
            })
        })
        .collect();
    for round in 0..3 {
        let mut host = connect(&path);
        for i in 0..100 {
            let request = format!("r{round}-{i}");
            host.write_all(request.as_bytes()).unwrap();
            let expected: String = request.chars().rev().chain(['\n']).collect();
            assert_eq!(read_exactly(&mut host, expected.len()), expected.as_bytes());
        }
    }
    exchange.shutdown();
    let log: String = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // One watcher stays in its poll for a whole session: it is not started
    // again for each of the 100 requests (a kick or two as a session begins).
    let watches = log.matches("for the host leaving").count();
    assert!((1..=9).contains(&watches), "{watches} watches:\n{log}");
}
