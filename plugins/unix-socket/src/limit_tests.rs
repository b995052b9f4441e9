//! End-to-end tests of what one client may hold: a connection slot (idle
//! connections are closed, and the one idle the longest makes room for a
//! newcomer) and the answers it does not read (queued, never holding a
//! worker, and bounded). Helpers come from `tests`.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nova_agent_plugin_api::{Exchange, Input};

use crate::conn::MAX_QUEUED;
use crate::server::MAX_CONNECTIONS;
use crate::tests::{exchange_with, send_and_take, serve, socket_path, start_exchange, Client};
use crate::UnixSocketExchange;

/// How long an answer that must come at once may take: far more than it
/// needs, far less than the 10 s a stuck write used to hold a worker.
const PROMPTLY: Duration = Duration::from_secs(5);
/// The size of the answer to `big`.
const BIG: usize = 1 << 20;

/// A fake agent thread answering `big` with `BIG` bytes (and reporting on
/// `taken` before, and on `answered` after it answers), anything else with
/// its bytes reversed.
fn serve_big(
    exchange: &Arc<UnixSocketExchange>,
    taken: mpsc::Sender<()>,
    answered: mpsc::Sender<()>,
) -> JoinHandle<()> {
    let exchange = Arc::clone(exchange);
    thread::spawn(move || {
        while let Some(request) = exchange.next().unwrap() {
            let Input::Request(body) = &request.input else {
                panic!("unreadable")
            };
            if body == b"big" {
                let _ = taken.send(());
                exchange.respond(&request.id, &vec![b'x'; BIG]).unwrap();
                let _ = answered.send(());
            } else {
                let response: Vec<u8> = body.iter().rev().copied().collect();
                exchange.respond(&request.id, &response).unwrap();
            }
        }
    })
}

#[test]
fn a_new_client_takes_the_slot_of_the_connection_idle_the_longest() {
    let (_dir, path, exchange) = start_exchange();
    let server = serve(&exchange);

    let mut silent: Vec<Client> = (0..MAX_CONNECTIONS)
        .map(|_| Client::connect(&path))
        .collect();
    // One more than the limit, and every slot is held by a silent client.
    let mut newcomer = Client::connect(&path);
    newcomer.send(b"version\n");
    assert_eq!(newcomer.recv(), "noisrev");
    silent[0].assert_closed();
    // And again: the next idle the longest is the second.
    let mut another = Client::connect(&path);
    another.send(b"again\n");
    assert_eq!(another.recv(), "niaga");
    silent[1].assert_closed();

    exchange.shutdown();
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn a_newcomer_is_refused_only_when_every_connection_has_a_request_out() {
    let (_dir, path, exchange) = start_exchange();
    let mut busy: Vec<(Client, String)> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let (client, request) = send_and_take(&exchange, &path, format!("{i}\n").as_bytes());
            (client, request.id)
        })
        .collect();
    let server = serve(&exchange);

    let mut refused = Client::connect(&path);
    refused.assert_closed();

    // Answered, the first becomes idle, and its slot goes to a newcomer.
    let (first, id) = &mut busy[0];
    exchange.respond(id, b"answer").unwrap();
    assert_eq!(first.recv(), "answer");
    let mut newcomer = Client::connect(&path);
    newcomer.send(b"hello\n");
    assert_eq!(newcomer.recv(), "olleh");
    first.assert_closed();

    exchange.shutdown();
    for (mut client, id) in busy.drain(1..) {
        exchange.respond(&id, b"late").unwrap();
        assert_eq!(client.recv(), "late");
    }
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn an_idle_connection_is_closed_after_the_timeout_but_not_one_with_a_request_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let exchange = exchange_with(&path, Duration::from_millis(300));
    exchange.start().unwrap();

    // Connected first, so idle first, were its request not being answered.
    let (mut owed, request) = send_and_take(&exchange, &path, b"slow command\n");
    let server = serve(&exchange);
    let mut silent = Client::connect(&path);
    let mut answered = Client::connect(&path);
    answered.send(b"ping\n");
    assert_eq!(answered.recv(), "gnip");

    silent.assert_closed();
    answered.assert_closed();
    // Still open: it gets its answer, and is closed once idle in turn.
    exchange.respond(&request.id, b"done").unwrap();
    assert_eq!(owed.recv(), "done");
    owed.assert_closed();

    // A new client is served as ever.
    let mut fresh = Client::connect(&path);
    fresh.send(b"again\n");
    assert_eq!(fresh.recv(), "niaga");
    exchange.shutdown();
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn clients_that_do_not_read_big_answers_hold_no_worker() {
    let (_dir, path, exchange) = start_exchange();
    let (taken_tx, taken) = mpsc::channel();
    let (answered_tx, _answered) = mpsc::channel();
    let servers: Vec<_> = (0..4)
        .map(|_| serve_big(&exchange, taken_tx.clone(), answered_tx.clone()))
        .collect();

    // As many as there are workers, each asking for an answer several times
    // the socket's buffer, and reading nothing.
    let mut stuck: Vec<Client> = (0..4)
        .map(|_| {
            let mut client = Client::connect(&path);
            client.send(b"big\n");
            client
        })
        .collect();
    for _ in 0..4 {
        taken.recv_timeout(PROMPTLY).unwrap();
    }

    let mut fifth = Client::connect(&path);
    fifth
        .reader
        .get_ref()
        .set_read_timeout(Some(PROMPTLY))
        .unwrap();
    fifth.send(b"version\n");
    assert_eq!(fifth.recv(), "noisrev");

    // The queued answers are whole when their clients do read.
    for client in &mut stuck {
        assert_eq!(client.recv(), "x".repeat(BIG));
    }
    stuck[0].send(b"still served\n");
    assert_eq!(stuck[0].recv(), "devres llits");

    exchange.shutdown();
    for server in servers {
        server.join().unwrap();
    }
}

#[test]
fn a_client_that_keeps_asking_and_does_not_read_is_closed_at_the_bound() {
    let (_dir, path, exchange) = start_exchange();
    let (taken_tx, taken) = mpsc::channel();
    let (answered_tx, answered) = mpsc::channel();
    let server = serve_big(&exchange, taken_tx, answered_tx);

    // One request at a time, each answered (queued) before the next.
    let mut client = Client::connect(&path);
    let most = 2 * MAX_QUEUED / BIG;
    let (mut asked, mut closed) = (0, false);
    while !closed && asked < most {
        client.send(b"big\n");
        asked += 1;
        let deadline = Instant::now() + PROMPTLY;
        loop {
            if answered.recv_timeout(Duration::from_millis(10)).is_ok() {
                break;
            }
            if hung_up(&client) {
                closed = true;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "request {asked} neither answered nor refused"
            );
        }
    }
    assert!(closed, "{asked} answers queued and still open");
    assert!(asked > MAX_QUEUED / BIG, "closed after {asked} requests");
    // The last request was not taken: its client may send it again.
    assert_eq!(taken.try_iter().count(), asked - 1);

    // What the socket had taken comes out, then the end.
    let mut received = Vec::new();
    if let Err(e) = client.reader.read_to_end(&mut received) {
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(
        received.len() < BIG * (asked - 1),
        "{} bytes",
        received.len()
    );

    // Others are served as ever.
    let mut other = Client::connect(&path);
    other.send(b"ping\n");
    assert_eq!(other.recv(), "gnip");
    exchange.shutdown();
    server.join().unwrap();
}

/// The server has shut the connection down both ways.
fn hung_up(client: &Client) -> bool {
    let mut fds = [PollFd::new(client.writer.as_fd(), PollFlags::empty())];
    poll(&mut fds, PollTimeout::ZERO).unwrap();
    fds[0]
        .revents()
        .is_some_and(|events| events.contains(PollFlags::POLLHUP))
}
