//! End-to-end tests of shutdown with requests in flight, as in a hot swap: the
//! old exchange is shut down, its workers answer what they hold, and a new
//! one serves the same path meanwhile. Helpers come from `tests`.

use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nova_agent_plugin_api::{Exchange, Input};

use crate::tests::{exchange, reversed, send_and_take, serve, start_exchange, Client, TIMEOUT};

/// How long a connection kept open must stay silent to pass for waiting.
const SILENCE: Duration = Duration::from_millis(200);

/// The connection is open and nothing came on it for `SILENCE`.
fn assert_open_and_silent(client: &mut Client) {
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(SILENCE))
        .unwrap();
    match client.reader.fill_buf() {
        Ok(bytes) => panic!("expected silence, got {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
    }
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(TIMEOUT))
        .unwrap();
}

#[test]
fn an_answer_owed_at_shutdown_is_delivered_then_the_connection_closes() {
    let (_dir, path, exchange) = start_exchange();

    // Two lines read together: the first is handed out, the second waits in
    // the connection's buffer.
    let (mut client, request) = send_and_take(&exchange, &path, b"first\nsecond\n");
    let Input::Request(body) = &request.input else {
        panic!("unreadable")
    };
    assert_eq!(body.as_slice(), b"first");

    exchange.shutdown();
    assert!(!path.exists(), "socket file left behind");
    // The buffered line is never handed out, nor is anything sent later.
    assert!(exchange.next().unwrap().is_none());
    client.send(b"third\n");
    assert_open_and_silent(&mut client);

    exchange.respond(&request.id, b"answer").unwrap();
    assert_eq!(client.recv(), "answer");
    client.assert_closed();
    // The connection is gone: a second answer goes nowhere, harmlessly.
    exchange.respond(&request.id, b"again").unwrap();
    assert!(exchange.next().unwrap().is_none());
}

#[test]
fn idle_and_half_read_connections_see_the_end_promptly() {
    let (_dir, path, exchange) = start_exchange();
    let server = serve(&exchange);

    // One never sent anything, one was answered and is re-armed, one sent
    // half a line that a worker read and keeps buffered.
    let mut idle = Client::connect(&path);
    let mut answered = Client::connect(&path);
    answered.send(b"ping\n");
    assert_eq!(answered.recv(), "gnip");
    let mut half = Client::connect(&path);
    half.send(b"half a line");
    thread::sleep(Duration::from_millis(100));

    let limit = Duration::from_secs(2);
    let started = Instant::now();
    exchange.shutdown();
    for client in [&mut idle, &mut answered, &mut half] {
        client
            .reader
            .get_ref()
            .set_read_timeout(Some(limit))
            .unwrap();
        client.assert_closed();
    }
    assert!(
        started.elapsed() < limit,
        "the end took {:?}",
        started.elapsed()
    );
    // The half line was dropped, not handed out.
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn a_new_server_serves_the_path_while_the_old_one_drains() {
    let (_dir, path, old) = start_exchange();
    let (mut waiting, request) = send_and_take(&old, &path, b"before the swap\n");

    old.shutdown();
    // Nothing left at the path for the new build to check or to refuse.
    assert!(!path.exists(), "socket file left behind");
    assert!(old.next().unwrap().is_none());

    let new = exchange(&path);
    new.start().unwrap();
    let server = serve(&new);
    let mut fresh = Client::connect(&path);
    fresh.send(b"after the swap\n");
    assert_eq!(fresh.recv(), reversed("after the swap"));
    assert_open_and_silent(&mut waiting);

    // The old build's worker answers last; its client still gets it.
    old.respond(&request.id, b"from the old build").unwrap();
    assert_eq!(waiting.recv(), "from the old build");
    waiting.assert_closed();

    // Dropping the old one leaves the new one's socket alone.
    drop(old);
    assert!(path.exists(), "the new build's socket was removed");
    fresh.send(b"still\n");
    assert_eq!(fresh.recv(), "llits");
    new.shutdown();
    assert_eq!(server.join().unwrap(), 2);
    assert!(!path.exists());
}

#[test]
fn shutdown_during_long_answers_neither_waits_for_them_nor_cuts_them() {
    const BIG: usize = 4 << 20;
    let (_dir, path, exchange) = start_exchange();
    let (mut queued, first) = send_and_take(&exchange, &path, b"big\n");
    let (mut owed, second) = send_and_take(&exchange, &path, b"big too\n");

    // Several times the socket's buffer, and the client reads nothing yet:
    // answered before shutdown, the answer is queued, half sent.
    exchange.respond(&first.id, &vec![b'x'; BIG]).unwrap();

    let started = Instant::now();
    exchange.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(!path.exists(), "socket file left behind");

    // Answered after shutdown, the other is sent whole before `respond`
    // returns; a worker's last `next` sends the queued one.
    let answering = {
        let (exchange, id) = (Arc::clone(&exchange), second.id.clone());
        thread::spawn(move || exchange.respond(&id, &vec![b'y'; BIG]).unwrap())
    };
    let worker = {
        let exchange = Arc::clone(&exchange);
        thread::spawn(move || exchange.next().unwrap().is_none())
    };

    for (client, byte) in [(&mut queued, b'x'), (&mut owed, b'y')] {
        let mut line = Vec::new();
        client.reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line.len(), BIG + 1, "the answer was cut");
        assert!(line[..BIG].iter().all(|&b| b == byte));
        assert_eq!(line.last(), Some(&b'\n'));
        client.assert_closed();
    }
    answering.join().unwrap();
    assert!(worker.join().unwrap(), "next after shutdown is not None");
}

#[test]
fn a_shutdown_amid_traffic_loses_no_answer() {
    const CLIENTS: usize = 8;
    const LINES: usize = 2000;
    let (_dir, path, exchange) = start_exchange();

    // Workers that take a while over each request, as a command does, so
    // that shutdown finds requests handed out and not yet answered. Each
    // counts its answers, and those owed when shutdown began.
    let shutting = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let (exchange, shutting) = (Arc::clone(&exchange), Arc::clone(&shutting));
            thread::spawn(move || {
                let (mut answered, mut owed) = (0, 0);
                while let Some(request) = exchange.next().unwrap() {
                    let taken_before = !shutting.load(Ordering::SeqCst);
                    let Input::Request(body) = &request.input else {
                        panic!("unreadable")
                    };
                    let response: Vec<u8> = body.iter().rev().copied().collect();
                    thread::sleep(Duration::from_millis(5));
                    if taken_before && shutting.load(Ordering::SeqCst) {
                        owed += 1;
                    }
                    exchange.respond(&request.id, &response).unwrap();
                    answered += 1;
                }
                (answered, owed)
            })
        })
        .collect();

    // Each client writes lines one at a time until the server hangs up, and
    // reads what comes back until the end of the stream.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let Client { mut reader, writer } = Client::connect(&path);
            let reading = thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Err(e) = reader.read_to_end(&mut bytes) {
                    // Lines it sent went unread: the end is a reset.
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
                }
                bytes
            });
            thread::spawn(move || {
                for j in 0..LINES {
                    if (&writer)
                        .write_all(format!("{c}-{j:04}\n").as_bytes())
                        .is_err()
                    {
                        break;
                    }
                    thread::sleep(Duration::from_micros(200));
                }
                let text = String::from_utf8(reading.join().unwrap()).unwrap();
                assert!(
                    text.is_empty() || text.ends_with('\n'),
                    "a cut answer: {text:?}"
                );
                // Answers in order, none skipped, none repeated.
                let lines: Vec<&str> = text.lines().collect();
                for (j, line) in lines.iter().enumerate() {
                    assert_eq!(*line, reversed(&format!("{c}-{j:04}")));
                }
                lines.len()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    shutting.store(true, Ordering::SeqCst);
    exchange.shutdown();

    let (answered, owed) = servers
        .into_iter()
        .map(|s| s.join().unwrap())
        .fold((0, 0), |(a, o), (answered, owed)| (a + answered, o + owed));
    let received: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(owed > 0, "no answer was owed at shutdown");
    assert!(
        answered < CLIENTS * LINES,
        "shutdown came after all the traffic"
    );
    assert_eq!(received, answered, "answers were lost");
}
