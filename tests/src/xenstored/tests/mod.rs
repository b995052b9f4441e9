//! Tests of the fake xenstored: through Debian's `xenstore-*` tools (the C
//! client library the real world uses) and through raw protocol messages.

mod raw;
mod tools;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::wire::{self, Header};
use super::FakeXenstored;

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A server on a socket in a fresh temporary directory. Bind the directory
/// first (`let (_dir, server) = ...`) so that it outlives the server.
pub fn start() -> (TempDir, FakeXenstored) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = FakeXenstored::start(&dir.path().join("xenstored.sock")).expect("start");
    (dir, server)
}

/// A command for one of the `xenstore-*` tools, pointed at `server` through
/// its own environment only.
pub fn tool(server: &FakeXenstored, name: &str) -> Command {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    assert!(
        on_path,
        "{name} is not on PATH: these tests need Debian's xenstore-utils \
         (apt-get install -y xenstore-utils)"
    );
    let mut command = Command::new(name);
    command.env("XENSTORED_PATH", server.socket());
    command
}

pub fn run(server: &FakeXenstored, name: &str, args: &[&str]) -> Output {
    tool(server, name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"))
}

/// Runs a tool that must succeed; its stdout.
pub fn run_ok(server: &FakeXenstored, name: &str, args: &[&str]) -> Vec<u8> {
    let output = run(server, name, args);
    assert!(
        output.status.success(),
        "{name} {args:?}: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub fn run_text(server: &FakeXenstored, name: &str, args: &[&str]) -> String {
    String::from_utf8(run_ok(server, name, args)).expect("UTF-8 output")
}

/// A running tool whose stdout lines arrive on a channel (`xenstore-watch`);
/// killed on drop.
pub struct Lines {
    child: Child,
    lines: Receiver<String>,
}

impl Lines {
    pub fn spawn(mut command: Command) -> Lines {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the tool");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { child, lines }
    }

    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line from the tool in time")
    }

    /// Nothing more printed within `wait`.
    pub fn assert_quiet(&self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!("unexpected line {line:?}");
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client speaking the wire protocol directly.
pub struct Raw {
    pub stream: UnixStream,
    next_req: u32,
}

impl Raw {
    pub fn connect(server: &FakeXenstored) -> Raw {
        let stream = UnixStream::connect(server.socket()).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Raw {
            stream,
            next_req: 100,
        }
    }

    /// Sends a request; its req_id.
    pub fn send(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> u32 {
        self.next_req += 1;
        let message = wire::message(ty, self.next_req, tx_id, payload);
        self.stream.write_all(&message).expect("send");
        self.next_req
    }

    pub fn recv(&mut self) -> (Header, Vec<u8>) {
        wire::read_reply(&mut self.stream).expect("a message in time")
    }

    /// Sends a request and reads the next message, which must be its reply
    /// (req_id and tx_id echoed): (type, payload).
    pub fn call(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        let req_id = self.send(ty, tx_id, payload);
        let (header, payload) = self.recv();
        assert_eq!(
            (header.req_id, header.tx_id),
            (req_id, tx_id),
            "reply to type {ty}"
        );
        (header.ty, payload)
    }

    /// A call that must answer `OK\0` with the request's type.
    pub fn ok(&mut self, ty: u32, payload: &[u8]) {
        assert_eq!(self.call(ty, 0, payload), (ty, b"OK\0".to_vec()));
    }

    /// A call that must fail with `errno`.
    pub fn error(&mut self, ty: u32, tx_id: u32, payload: &[u8], errno: &str) {
        let expected = (wire::ERROR, format!("{errno}\0").into_bytes());
        assert_eq!(
            self.call(ty, tx_id, payload),
            expected,
            "type {ty} {payload:?}"
        );
    }

    /// The next message must be a WATCH_EVENT for (path, token).
    pub fn event(&mut self, path: &str, token: &str) {
        let (header, payload) = self.recv();
        assert_eq!(header.ty, wire::WATCH_EVENT, "{payload:?}");
        assert_eq!(header.req_id, 0);
        assert_eq!(
            String::from_utf8_lossy(&payload),
            format!("{path}\0{token}\0")
        );
    }
}
