//! End-to-end tests of the exchange object, without the agent: a real socket
//! in a temporary directory, clients on std's `UnixStream`, and a fake parser
//! thread calling `next` / `respond`.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use nova_agent_plugin_api::{Exchange, Incoming, Input};

use crate::conn::TOO_LONG;
use crate::lines::MAX_LINE;
use crate::server::{parse_id, Server};
use crate::{Config, UnixSocketExchange, DEFAULT_IDLE_TIMEOUT};

/// A client read that takes longer than this fails the test instead of hanging.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn socket_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("run/nova-agent/agent.sock")
}

pub(crate) fn exchange(path: &Path) -> Arc<UnixSocketExchange> {
    exchange_with(path, DEFAULT_IDLE_TIMEOUT)
}

pub(crate) fn exchange_with(path: &Path, idle_timeout: Duration) -> Arc<UnixSocketExchange> {
    Arc::new(UnixSocketExchange::new(Config {
        path: path.to_path_buf(),
        metadata_dir: None,
        idle_timeout,
    }))
}

/// An exchange started on a socket in a fresh temporary directory, which
/// lasts as long as the `TempDir` returned with it.
pub(crate) fn start_exchange() -> (tempfile::TempDir, PathBuf, Arc<UnixSocketExchange>) {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let exchange = exchange(&path);
    exchange.start().unwrap();
    (dir, path, exchange)
}

/// A fake agent thread with a fake parser: a request is answered with its
/// bytes reversed, an unreadable one with "error: <reason>". Returns how many
/// it answered once `next` says the exchange is shut down.
pub(crate) fn serve(exchange: &Arc<UnixSocketExchange>) -> JoinHandle<usize> {
    let exchange = Arc::clone(exchange);
    thread::spawn(move || {
        let mut answered = 0;
        while let Some(request) = exchange.next().unwrap() {
            let response = match &request.input {
                Input::Request(body) => body.iter().rev().copied().collect::<Vec<u8>>(),
                Input::Unreadable(reason) => format!("error: {reason}").into_bytes(),
                other => panic!("not a line: {other:?}"),
            };
            exchange.respond(&request.id, &response).unwrap();
            answered += 1;
        }
        answered
    })
}

pub(crate) fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

pub(crate) struct Client {
    pub(crate) reader: BufReader<UnixStream>,
    pub(crate) writer: UnixStream,
}

impl Client {
    pub(crate) fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// One response line, without its newline.
    pub(crate) fn recv(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "no complete response line: {line:?}");
        line.pop();
        line
    }

    /// The server closed the connection, with nothing more to say.
    pub(crate) fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes: {rest:?}"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

/// A new client on `path` sends `bytes`; returns it with the request that
/// `exchange` hands out next.
pub(crate) fn send_and_take(
    exchange: &UnixSocketExchange,
    path: &Path,
    bytes: &[u8],
) -> (Client, Incoming) {
    let mut client = Client::connect(path);
    client.send(bytes);
    (client, exchange.next().unwrap().unwrap())
}

#[test]
fn ids_parse() {
    assert_eq!(parse_id("3/17"), Some((3, 17)));
    assert_eq!(parse_id("3"), None);
    assert_eq!(parse_id("a/1"), None);
    assert_eq!(parse_id("1/2/3"), None);
}

#[test]
fn next_before_start_is_an_error_and_after_shutdown_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(dir.path().join("a.sock"), DEFAULT_IDLE_TIMEOUT);
    assert!(server.next().is_err());
    server.shutdown();
    assert_eq!(server.next().map(|r| r.is_none()), Ok(true));
    assert!(server.start().is_err());
}

#[test]
fn answers_in_order_on_each_connection() {
    let (_dir, path, exchange) = start_exchange();

    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600, "socket mode");
    let parent = fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(parent.mode() & 0o022, 0, "created directory is not 0755");

    let servers: Vec<_> = (0..3).map(|_| serve(&exchange)).collect();
    let mut a = Client::connect(&path);
    let mut b = Client::connect(&path);

    // Two requests on one connection, in one write, with blank lines (ignored:
    // they get no response) and CRLF endings between them; one on another.
    a.send(b"abc\n\n \t \r\n{\"x\": 1}\r\n");
    b.send(b"second\n");
    assert_eq!(b.recv(), "dnoces");
    assert_eq!(a.recv(), "cba");
    assert_eq!(a.recv(), "}1 :\"x\"{");

    // Many pipelined requests keep their order across three serving threads.
    let batch: String = (0..50).map(|i| format!("request-{i:02}\n")).collect();
    a.send(batch.as_bytes());
    for i in 0..50 {
        assert_eq!(a.recv(), reversed(&format!("request-{i:02}")));
    }

    // A last line without a newline is still a request; after it, the
    // half-closed client gets its answer and then the end of the stream.
    a.send(b"final");
    a.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(a.recv(), "lanif");
    a.assert_closed();
    b.send(b"more\n");
    assert_eq!(b.recv(), "erom");

    exchange.shutdown();
    let answered: usize = servers.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(
        answered,
        2 + 1 + 50 + 1 + 1,
        "blank lines must not be requests"
    );
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn one_request_wakes_exactly_one_of_four_blocked_threads() {
    let (_dir, path, exchange) = start_exchange();

    // Four threads blocked in next, as the agent's workers are; each
    // reports what it got, then stops.
    let (tx, rx) = mpsc::channel();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (exchange, tx) = (Arc::clone(&exchange), tx.clone());
            thread::spawn(move || {
                let got = exchange.next().unwrap();
                tx.send(got.map(|request| request.id)).unwrap();
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));

    let mut client = Client::connect(&path);
    client.send(b"ping\n");
    let id = rx.recv_timeout(TIMEOUT).unwrap().expect("a request");
    // Nobody else got anything: neither the same request nor a stray None.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    exchange.respond(&id, b"pong").unwrap();
    assert_eq!(client.recv(), "pong");
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());

    exchange.shutdown();
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), None);
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_by_different_threads() {
    let (_dir, path, exchange) = start_exchange();
    let mut client = Client::connect(&path);

    // Lines read together, each answered by a thread that did not read it:
    // one thread at a time answers one request and ends, so the line after
    // it waits in the connection's buffer for the next thread.
    client.send(b"a\nb\r\n\nc\n");
    for expected in ["a", "b", "c"] {
        let exchange = Arc::clone(&exchange);
        let answering = thread::spawn(move || {
            let request = exchange.next().unwrap().unwrap();
            let Input::Request(body) = &request.input else {
                panic!("unreadable")
            };
            assert_eq!(body.as_slice(), expected.as_bytes());
            exchange.respond(&request.id, body).unwrap();
        });
        // Read first: a line left waiting fails here, after TIMEOUT.
        assert_eq!(client.recv(), expected);
        answering.join().unwrap();
    }

    // Four threads at once, each pausing after an answer (as after a slow
    // command), so the next line goes to another one; the last line comes
    // without its newline, before a half-close.
    let handled = Arc::new(Mutex::new(Vec::<ThreadId>::new()));
    let servers: Vec<_> = (0..4)
        .map(|_| {
            let (exchange, handled) = (Arc::clone(&exchange), Arc::clone(&handled));
            thread::spawn(move || {
                while let Some(request) = exchange.next().unwrap() {
                    let Input::Request(body) = &request.input else {
                        panic!("unreadable")
                    };
                    let response: Vec<u8> = body.iter().rev().copied().collect();
                    handled.lock().unwrap().push(thread::current().id());
                    exchange.respond(&request.id, &response).unwrap();
                    thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    let mut batch: String = (0..40).map(|i| format!("request-{i:02}\n")).collect();
    batch.push_str("last");
    client.send(batch.as_bytes());
    client.writer.shutdown(Shutdown::Write).unwrap();
    for i in 0..40 {
        assert_eq!(client.recv(), reversed(&format!("request-{i:02}")));
    }
    assert_eq!(client.recv(), "tsal");
    client.assert_closed();

    exchange.shutdown();
    for server in servers {
        server.join().unwrap();
    }
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), 41);
    let threads: HashSet<_> = handled.iter().collect();
    assert!(threads.len() > 1, "one thread answered everything");
}

#[test]
fn an_empty_response_sends_nothing_and_the_connection_goes_on_in_order() {
    let (_dir, path, exchange) = start_exchange();
    let mut client = Client::connect(&path);
    client.send(b"one\nsilent\ntwo\n");
    for _ in 0..3 {
        let request = exchange.next().unwrap().unwrap();
        let Input::Request(body) = &request.input else {
            panic!("unreadable")
        };
        let response = if body == b"silent" { &[][..] } else { body };
        exchange.respond(&request.id, response).unwrap();
    }
    assert_eq!(client.recv(), "one");
    assert_eq!(client.recv(), "two");
    // Not a line more: the end of the stream follows.
    exchange.shutdown();
    client.assert_closed();
}

#[test]
fn an_overlong_line_is_answered_and_the_connection_goes_on() {
    let (_dir, path, exchange) = start_exchange();
    let server = serve(&exchange);
    let mut client = Client::connect(&path);

    let mut input = vec![b'a'; MAX_LINE + 1];
    input.extend_from_slice(b"\nnext\n");
    input.extend(vec![b'b'; MAX_LINE]);
    input.extend_from_slice(b"\r\nafter\n");
    // Written from another thread: the client reads answers meanwhile.
    let mut writer = client.writer.try_clone().unwrap();
    let writing = thread::spawn(move || writer.write_all(&input).unwrap());

    assert_eq!(client.recv(), format!("error: {TOO_LONG}"));
    assert_eq!(client.recv(), "txen");
    let largest = client.recv();
    assert_eq!(
        largest.len(),
        MAX_LINE,
        "a line of exactly 1 MiB is a request"
    );
    assert!(largest.bytes().all(|b| b == b'b'));
    assert_eq!(client.recv(), "retfa");
    writing.join().unwrap();

    exchange.shutdown();
    assert_eq!(server.join().unwrap(), 4);
}

#[test]
fn a_second_exchange_on_the_same_path_is_refused() {
    let (_dir, path, first) = start_exchange();
    let server = serve(&first);

    let second = exchange(&path);
    let error = second.start().unwrap_err();
    assert_eq!(
        error.message(),
        format!(
            "socket {} is in use by another process (is another nova-agent running?)",
            path.display()
        )
    );
    second.shutdown();
    drop(second);

    // The first one still owns the path and serves.
    let mut client = Client::connect(&path);
    client.send(b"still here\n");
    assert_eq!(client.recv(), "ereh llits");

    first.shutdown();
    assert_eq!(server.join().unwrap(), 1);
    assert!(!path.exists());
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let stale = UnixListener::bind(&path).unwrap();
    let stale_ino = fs::symlink_metadata(&path).unwrap().ino();
    drop(stale); // the file stays; connecting to it is refused

    let exchange = exchange(&path);
    exchange.start().unwrap();
    let meta = fs::symlink_metadata(&path).unwrap();
    assert_ne!(meta.ino(), stale_ino, "the stale socket was not replaced");
    assert_eq!(meta.mode() & 0o777, 0o600);

    let server = serve(&exchange);
    let mut client = Client::connect(&path);
    client.send(b"fresh\n");
    assert_eq!(client.recv(), "hserf");
    exchange.shutdown();
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn what_is_not_a_socket_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "precious\n").unwrap();

    let exchange = exchange(&path);
    let error = exchange.start().unwrap_err();
    assert_eq!(
        error.message(),
        format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious\n");
    // A failed start can be retried once the path is cleared.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert!(
        exchange.start().is_err(),
        "a directory is not a socket either"
    );
    fs::remove_dir(&path).unwrap();
    exchange.start().unwrap();
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    exchange.shutdown();
    assert!(!path.exists());
}

#[test]
fn shutdown_wakes_everyone_and_removes_the_socket() {
    let (_dir, path, exchange) = start_exchange();

    // A client whose request is taken and answered only after shutdown, and
    // an idle one.
    let (mut pending, taken) = send_and_take(&exchange, &path, b"answered late\n");
    let mut idle = Client::connect(&path);

    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let exchange = Arc::clone(&exchange);
            thread::spawn(move || exchange.next().unwrap().is_none())
        })
        .collect();
    thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    exchange.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    for waiter in waiters {
        assert!(waiter.join().unwrap(), "next after shutdown is not None");
    }
    assert!(exchange.next().unwrap().is_none());
    assert!(!path.exists(), "socket file left behind");
    idle.assert_closed();

    // The answer owed still goes out, and closes its connection; a second
    // shutdown and a restart are harmless.
    exchange.respond(&taken.id, b"late").unwrap();
    assert_eq!(pending.recv(), "late");
    pending.assert_closed();
    exchange.shutdown();
    assert!(exchange.start().is_err(), "shutdown is final");
    assert!(!path.exists());
}

#[test]
fn shutdown_leaves_a_socket_that_is_no_longer_ours() {
    let (_dir, path, exchange) = start_exchange();
    fs::remove_file(&path).unwrap();
    let _other = UnixListener::bind(&path).unwrap();
    exchange.shutdown();
    assert!(path.exists(), "someone else's socket was removed");
}

#[test]
fn unknown_ids_and_departed_clients_are_not_errors() {
    let (_dir, path, exchange) = start_exchange();
    exchange.respond("99/1", b"x").unwrap();
    exchange.respond("nonsense", b"x").unwrap();

    // The client hangs up before its answer.
    let (gone, request) = send_and_take(&exchange, &path, b"q\n");
    drop(gone);
    exchange.respond(&request.id, b"late").unwrap();

    // An id answered twice: the second answer goes nowhere.
    let (mut client, first) = send_and_take(&exchange, &path, b"one\n");
    exchange.respond(&first.id, b"answer").unwrap();
    exchange.respond(&first.id, b"again").unwrap();
    assert_eq!(client.recv(), "answer");
    client.send(b"two\n");
    let second = exchange.next().unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert_ne!(request.id, second.id);
    exchange.respond(&second.id, b"second answer").unwrap();
    assert_eq!(client.recv(), "second answer");
    exchange.shutdown();
}

#[test]
fn metadata_comes_from_the_configured_directory() {
    let dir = tempfile::tempdir().unwrap();
    let metadata_dir = dir.path().join("metadata");
    fs::create_dir_all(metadata_dir.join("vm-data/networking")).unwrap();
    fs::write(metadata_dir.join("vm-data/hostname"), "web01\n").unwrap();
    fs::write(metadata_dir.join("vm-data/networking/BC764E000001"), "{}").unwrap();
    let exchange = UnixSocketExchange::new(Config {
        path: socket_path(&dir),
        metadata_dir: Some(metadata_dir),
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
    });
    // No start needed: metadata does not go through the socket.
    assert_eq!(
        exchange
            .metadata_read("vm-data/hostname")
            .unwrap()
            .as_deref(),
        Some("web01")
    );
    assert_eq!(
        exchange.metadata_list("vm-data/networking").unwrap(),
        ["BC764E000001"]
    );
    assert!(exchange
        .metadata_read("../metadata/vm-data/hostname")
        .is_err());
    assert_eq!(exchange.max_response_len(), None);
}
