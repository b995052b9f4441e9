//! The host's side of the XenStore protocol, done as Nova's dom0 plugin does
//! it: Debian's `xenstore-write` puts a request at
//! `/local/domain/<domid>/data/host/<uuid>`, `xenstore-read` polls
//! `/local/domain/<domid>/data/guest/<uuid>` until the answer is there.
//!
//! Every tool runs with `XENSTORED_PATH` set on its own command line, so a
//! test talks to its own (fake) xenstored and nothing else.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest's home, as the agent's connection on the local socket sees it.
pub const HOME: &str = "/local/domain/0";

/// How often the host looks for a response (Nova: every 0.5 s; shorter here
/// to keep the tests quick, the protocol is the same).
const POLL: Duration = Duration::from_millis(20);

pub struct Dom0 {
    socket: PathBuf,
}

impl Dom0 {
    pub fn new(xenstored: &Path) -> Dom0 {
        Dom0 {
            socket: xenstored.to_path_buf(),
        }
    }

    /// One of Debian's xenstore tools, pointed at this host's xenstored.
    pub fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(name);
        command.env("XENSTORED_PATH", &self.socket);
        command
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.tool(name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name} (apt-get install xenstore-utils): {e}"))
    }

    /// `xenstore-write` of pairs of path and value, in one transaction.
    pub fn write(&self, pairs: &[(&str, &str)]) {
        let args: Vec<&str> = pairs.iter().flat_map(|(p, v)| [*p, *v]).collect();
        let out = self.run("xenstore-write", &args);
        assert!(
            out.status.success(),
            "xenstore-write failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `xenstore-read`; `None` when the node does not exist.
    pub fn read(&self, path: &str) -> Option<String> {
        let out = self.run("xenstore-read", &[path]);
        out.status.success().then(|| {
            let text = String::from_utf8(out.stdout).expect("xenstore-read prints text");
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        })
    }

    /// `xenstore-list`: the children's names; empty when the node is missing.
    pub fn list(&self, path: &str) -> Vec<String> {
        let out = self.run("xenstore-list", &[path]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `xenstore-ls` of a subtree, as text.
    pub fn ls(&self, path: &str) -> String {
        String::from_utf8_lossy(&self.run("xenstore-ls", &[path]).stdout).into_owned()
    }

    /// Writes the request `{"name": .., "value": ..}` (`value_json` verbatim)
    /// under a new UUID, as Nova does; returns the UUID.
    pub fn send(&self, name: &str, value_json: &str) -> String {
        self.send_raw(&request(name, value_json))
    }

    /// Writes `raw` as a request value (the tools expand `\xNN` escapes).
    pub fn send_raw(&self, raw: &str) -> String {
        let id = uuid();
        self.write(&[(&request_path(&id), raw)]);
        id
    }

    /// Polls for the response to `id`, as Nova does, until `timeout`.
    pub fn wait_response(&self, id: &str, timeout: Duration) -> Option<String> {
        let path = response_path(id);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(response) = self.read(&path) {
                return Some(response);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends one request and waits (30 s, Nova's timeout) for its response.
    pub fn call(&self, name: &str, value_json: &str) -> String {
        let id = self.send(name, value_json);
        self.wait_response(&id, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no response to {name} ({id}) within 30 s"))
    }

    /// `xenstore-watch PATH`, printing one line per event.
    pub fn watch(&self, path: &str) -> Watch {
        let mut child = self
            .tool("xenstore-watch")
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting xenstore-watch");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }
}

/// A running `xenstore-watch`; killed when dropped.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    /// The next event's path, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The request JSON as Nova's plugin writes it (Python's `json.dumps`).
pub fn request(name: &str, value_json: &str) -> String {
    format!("{{\"name\": \"{name}\", \"value\": {value_json}}}")
}

pub fn request_path(id: &str) -> String {
    format!("{HOME}/data/host/{id}")
}

pub fn response_path(id: &str) -> String {
    format!("{HOME}/data/guest/{id}")
}

/// A random UUID4 in text, as Nova's `uuidutils.generate_uuid()`.
pub fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("reading /proc/sys/kernel/random/uuid")
        .trim()
        .to_owned()
}
