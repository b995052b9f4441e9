//! The exchange driven directly, no agent: over a pty (the test holds the
//! master in raw mode, as QEMU holds the host side of a virtio port; the
//! exchange opens the slave), with the test playing the agent's workers.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::time::{clock_gettime, ClockId};
use nova_agent_plugin_api::{Exchange, Incoming, Input};

use crate::capture::captured_log;
use crate::config::{Config, Method};
use crate::device::Dirs;
use crate::port::Timing;
use crate::wire::Patience;
use crate::VirtioSerialExchange;

/// A read the test waits for longer than this fails instead of hanging.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A pseudo-terminal: the test is the host on the master side.
pub(crate) struct Pty {
    pub(crate) master: Option<OwnedFd>,
    /// The slave's path, which the exchange opens.
    pub(crate) slave: PathBuf,
    _slave: OwnedFd,
}

impl Pty {
    /// A pty in raw mode: bytes pass unchanged both ways.
    pub(crate) fn new() -> Pty {
        let pty = Pty::cooked();
        let master = pty.master.as_ref().unwrap();
        let mut termios = tcgetattr(master).unwrap();
        cfmakeraw(&mut termios);
        tcsetattr(master, SetArg::TCSANOW, &termios).unwrap();
        pty
    }

    /// A pty as it comes (canonical mode, echo, CR to NL).
    pub(crate) fn cooked() -> Pty {
        let pair = openpty(None, None).unwrap();
        let slave = nix::unistd::ttyname(&pair.slave).unwrap();
        Pty {
            master: Some(pair.master),
            slave,
            _slave: pair.slave,
        }
    }

    fn master(&self) -> &OwnedFd {
        self.master.as_ref().expect("master is open")
    }

    pub(crate) fn send(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = nix::unistd::write(self.master(), bytes).unwrap();
            bytes = &bytes[n..];
        }
    }

    /// Reads until `n` bytes came; fails after `TIMEOUT` without any.
    pub(crate) fn recv(&self, n: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < n {
            let mut fds = [PollFd::new(self.master().as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::try_from(TIMEOUT).unwrap()).unwrap();
            assert!(ready > 0, "no bytes from the exchange; got {got:?} so far");
            let len = (n - got.len()).min(buf.len());
            let read = nix::unistd::read(self.master(), &mut buf[..len]).unwrap();
            got.extend_from_slice(&buf[..read]);
        }
        got
    }

    /// Whether the master has anything to read within `wait`.
    pub(crate) fn has_bytes(&self, wait: Duration) -> bool {
        let mut fds = [PollFd::new(self.master().as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::try_from(wait).unwrap()).unwrap() > 0
    }

    /// The host goes away.
    pub(crate) fn close_master(&mut self) {
        self.master = None;
    }
}

pub(crate) fn fast_timing() -> Timing {
    Timing {
        absent_retry: Duration::from_millis(50),
        failed_retry: Duration::from_millis(50),
        ..Timing::default()
    }
}

pub(crate) fn exchange_at(
    path: &Path,
    method: Method,
    timing: Timing,
) -> Arc<VirtioSerialExchange> {
    let config = Config {
        path: path.to_path_buf(),
        method,
    };
    Arc::new(VirtioSerialExchange::with(config, Dirs::default(), timing))
}

/// An exchange started on `pty`'s slave as a virtio port.
fn started(pty: &Pty) -> Arc<VirtioSerialExchange> {
    let exchange = exchange_at(&pty.slave, Method::VirtioSerial, Timing::default());
    exchange.start().unwrap();
    exchange
}

/// The stream and bytes of a chunk; panics on anything else.
pub(crate) fn chunk(item: &Incoming) -> (&str, &[u8]) {
    match &item.input {
        Input::Stream { stream, bytes } => (stream, bytes),
        other => panic!("not a chunk: {other:?}"),
    }
}

pub(crate) fn stream_end(item: &Incoming) -> &str {
    match &item.input {
        Input::StreamEnd { stream } => stream,
        other => panic!("not a stream end: {other:?}"),
    }
}

/// `next` on a thread of its own, its result sent back.
pub(crate) fn next_on_thread(
    exchange: &Arc<VirtioSerialExchange>,
) -> mpsc::Receiver<Option<Incoming>> {
    let (tx, rx) = mpsc::channel();
    let exchange = Arc::clone(exchange);
    thread::spawn(move || {
        let _ = tx.send(exchange.next().unwrap());
    });
    rx
}

#[test]
fn chunks_come_in_and_answers_go_out_on_one_stream() {
    let pty = Pty::new();
    let exchange = started(&pty);
    pty.send(b"{\"execute\":\"guest-ping\"}");
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(
        chunk(&item),
        ("host-1", &b"{\"execute\":\"guest-ping\"}"[..])
    );
    exchange.respond(&item.id, b"{\"return\": {}}\n").unwrap();
    assert_eq!(pty.recv(15), b"{\"return\": {}}\n");

    // An answer with nothing to say writes nothing; the stream goes on.
    pty.send(b"\r\n  ");
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(chunk(&item), ("host-1", &b"\r\n  "[..]));
    exchange.respond(&item.id, b"").unwrap();
    assert!(!pty.has_bytes(Duration::from_millis(100)));
    assert_eq!(exchange.max_response_len(), Some(10 * 1024 * 1024));
}

#[test]
fn the_next_chunk_waits_until_the_previous_one_is_answered() {
    let pty = Pty::new();
    let exchange = started(&pty);
    pty.send(b"first");
    let first = exchange.next().unwrap().unwrap();
    let waiting = next_on_thread(&exchange);
    pty.send(b"second");
    // Another worker may not take the stream's next bytes yet.
    assert!(waiting.recv_timeout(Duration::from_millis(300)).is_err());
    exchange.respond(&first.id, b"1\n").unwrap();
    let second = waiting.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(chunk(&second), ("host-1", &b"second"[..]));
    assert_eq!(pty.recv(2), b"1\n");
    // Answering the same item twice, or one never handed out, does nothing.
    exchange.respond(&first.id, b"again\n").unwrap();
    exchange.respond("no such item", b"x\n").unwrap();
    exchange.respond(&second.id, b"2\n").unwrap();
    assert_eq!(pty.recv(2), b"2\n");
}

#[test]
fn a_response_larger_than_the_port_takes_at_once_goes_out_whole() {
    let pty = Pty::new();
    let exchange = started(&pty);
    pty.send(b"big");
    let item = exchange.next().unwrap().unwrap();
    // A pty takes about 12 KiB before a write blocks: many partial writes
    // and EAGAINs, while the host reads at its own pace.
    let response: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let writer = {
        let (exchange, response, id) = (Arc::clone(&exchange), response.clone(), item.id.clone());
        thread::spawn(move || exchange.respond(&id, &response))
    };
    assert_eq!(pty.recv(response.len()), response);
    writer.join().unwrap().unwrap();
}

#[test]
fn the_host_closing_its_end_ends_the_stream_and_waiting_costs_no_cpu() {
    let mut pty = Pty::new();
    let exchange = started(&pty);
    let (items_tx, items_rx) = mpsc::channel();
    let worker = {
        let exchange = Arc::clone(&exchange);
        thread::spawn(move || {
            let cpu = || clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
            let before = cpu();
            while let Some(item) = exchange.next().unwrap() {
                exchange.respond(&item.id, b"").unwrap();
                items_tx.send(item).unwrap();
            }
            Duration::from(cpu() - before)
        })
    };
    pty.send(b"{\"execute\":\"guest-");
    let partial = items_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(chunk(&partial), ("host-1", &b"{\"execute\":\"guest-"[..]));
    pty.close_master();
    let end = items_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(stream_end(&end), "host-1");
    // POLLHUP and read() == 0 now repeat for as long as nobody is attached.
    thread::sleep(Duration::from_secs(2));
    exchange.shutdown();
    let used = worker.join().unwrap();
    assert!(
        items_rx.try_recv().is_err(),
        "nothing but the end was handed out"
    );
    assert!(
        used < Duration::from_millis(50),
        "the waiting worker used {used:?} of CPU"
    );
}

#[test]
fn an_answer_owed_when_the_host_leaves_is_dropped_and_the_stream_ends_after_it() {
    let mut pty = Pty::new();
    let exchange = started(&pty);
    pty.send(b"{\"execute\":\"guest-get-time\"}");
    let item = exchange.next().unwrap().unwrap();
    // A second worker watches the port meanwhile and sees the host leave.
    let watcher = next_on_thread(&exchange);
    pty.close_master();
    // The stream's end waits for the owed answer.
    assert!(watcher.recv_timeout(Duration::from_millis(300)).is_err());
    let log = captured_log(|| exchange.respond(&item.id, b"{\"return\": 1}\n").unwrap());
    assert!(
        log.contains("dropped a 14-byte response owed to a host that went away"),
        "{log}"
    );
    let end = watcher.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert_eq!(stream_end(&end), "host-1");
    exchange.respond(&end.id, b"").unwrap();
    exchange.shutdown();
}

#[test]
fn shutdown_wakes_every_next_and_later_calls_answer_none() {
    let pty = Pty::new();
    let exchange = started(&pty);
    let waiting: Vec<_> = (0..3).map(|_| next_on_thread(&exchange)).collect();
    thread::sleep(Duration::from_millis(100));
    exchange.shutdown();
    for rx in waiting {
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), None);
    }
    assert_eq!(exchange.next().unwrap(), None);
    assert!(exchange.start().is_err(), "a shut down exchange stays down");
}

#[test]
fn an_answer_owed_at_shutdown_is_still_delivered() {
    let pty = Pty::new();
    let exchange = started(&pty);
    pty.send(b"req");
    let item = exchange.next().unwrap().unwrap();
    let waiting = next_on_thread(&exchange);
    exchange.shutdown();
    assert_eq!(waiting.recv_timeout(TIMEOUT).unwrap(), None);
    exchange.respond(&item.id, b"late\n").unwrap();
    assert_eq!(pty.recv(5), b"late\n");
}

#[test]
fn a_host_that_reads_nothing_cannot_hold_a_worker_for_ever() {
    let pty = Pty::new();
    let timing = Timing {
        write: Patience {
            stall: Duration::from_millis(200),
            after_stop: Duration::from_millis(100),
        },
        ..Timing::default()
    };
    let exchange = exchange_at(&pty.slave, Method::VirtioSerial, timing);
    exchange.start().unwrap();
    pty.send(b"req");
    let item = exchange.next().unwrap().unwrap();
    let error = exchange
        .respond(&item.id, &vec![b'x'; 1 << 20])
        .unwrap_err();
    assert!(
        error.message().starts_with(&format!(
            "the host took nothing from {} for 0 s; dropped the last",
            pty.slave.display()
        )),
        "{error}"
    );
    // What follows is another session: the garbled one ended.
    let end = exchange.next().unwrap().unwrap();
    assert_eq!(stream_end(&end), "host-1");
}

#[test]
fn an_absent_device_is_waited_for_quietly_then_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.qemu.guest_agent.0");
    let exchange = exchange_at(&path, Method::VirtioSerial, fast_timing());
    let pty = Pty::new();
    let served = {
        let exchange = Arc::clone(&exchange);
        thread::spawn(move || {
            captured_log(|| {
                exchange.start().unwrap();
                let item = exchange.next().unwrap().unwrap();
                assert_eq!(chunk(&item), ("host-1", &b"hello"[..]));
                exchange.respond(&item.id, b"hi\n").unwrap();
            })
        })
    };
    // Several looks find nothing.
    thread::sleep(Duration::from_millis(400));
    std::os::unix::fs::symlink(&pty.slave, &path).unwrap();
    pty.send(b"hello");
    assert_eq!(pty.recv(3), b"hi\n");
    let log = served.join().unwrap();
    let waiting = format!("waiting for {}", path.display());
    assert_eq!(log.matches(&waiting).count(), 1, "{log}");
    assert!(log.contains(&format!("opened {}", path.display())), "{log}");
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn a_device_that_cannot_be_opened_is_retried_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("port");
    std::fs::create_dir(&path).unwrap();
    let exchange = exchange_at(&path, Method::VirtioSerial, fast_timing());
    let pty = Pty::new();
    let served = {
        let exchange = Arc::clone(&exchange);
        thread::spawn(move || {
            captured_log(|| {
                exchange.start().unwrap();
                let item = exchange.next().unwrap().unwrap();
                assert_eq!(chunk(&item), ("host-1", &b"x"[..]));
            })
        })
    };
    // Several attempts fail meanwhile, then one succeeds.
    thread::sleep(Duration::from_millis(400));
    std::fs::remove_dir(&path).unwrap();
    std::os::unix::fs::symlink(&pty.slave, &path).unwrap();
    pty.send(b"x");
    let log = served.join().unwrap();
    let warning = format!("cannot open {}: Is a directory", path.display());
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert!(log.contains(&format!("opened {}", path.display())), "{log}");
}

#[test]
fn a_serial_line_is_raw_so_bytes_pass_unchanged() {
    // Cooked, the pty would hold "\r"-ended input back as an unfinished
    // line and turn "\r" into "\n".
    let pty = Pty::cooked();
    let exchange = exchange_at(&pty.slave, Method::IsaSerial, Timing::default());
    exchange.start().unwrap();
    pty.send(b"{\"execute\":\"guest-ping\"}\r");
    let item = exchange.next().unwrap().unwrap();
    assert_eq!(chunk(&item).1, b"{\"execute\":\"guest-ping\"}\r");
    exchange.respond(&item.id, b"{\"return\": {}}\n").unwrap();
    assert_eq!(pty.recv(15), b"{\"return\": {}}\n");
}

#[test]
fn init_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    let table = serde_json::json!({"method": "unix-listen", "path": path});
    let host = nova_agent_plugin_api::testing::TestHost::new("/").host();
    let provides = crate::init(host, table);
    assert!(provides.is_ok());
    drop(provides);
    assert!(!path.exists());
}
