//! QGA test support: a client for the QEMU guest agent protocol over a unix
//! socket, the structural comparison of two agents' replies, and helpers that
//! start the real `qemu-ga` and our agent (virtio-serial exchange, `qga`
//! parser, the qga-* plugins) each on a socket of its own.
//!
//! The client checks the wire rules on every reply it reads (reference §0
//! rules 2 and 9): one line ending in `\n`, printable ASCII only, a JSON
//! object, an optional leading 0xFF. It never waits for silence: where a
//! request must get no reply, a sentinel `guest-ping` with an id of its own
//! follows, and the next line must be the sentinel's.
//!
//! Not here: the libvirt-like client (tests/tests/qga_libvirt.rs keeps it
//! next to the only tests that use it).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::{plugin, Agent, Sandbox, TIMEOUT};

mod compare;
pub use compare::{assert_same, reply_diff, shape_diff, Compare};

/// The plugins that make our QGA side, by crate suffix.
pub const QGA_PLUGINS: [&str; 8] = [
    "virtio-serial",
    "qga",
    "qga-core",
    "qga-fs",
    "qga-hardware",
    "qga-users",
    "qga-file",
    "qga-exec",
];

/// Where Debian's qemu-guest-agent puts the binary.
pub const QEMU_GA: &str = "/usr/sbin/qemu-ga";

/// One reply line, checked against the wire rules and parsed.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The line as received, without its `\n`, with a leading 0xFF if any.
    pub raw: Vec<u8>,
    /// Whether the line began with 0xFF (guest-sync-delimited).
    pub delimited: bool,
    pub json: Value,
}

impl Reply {
    /// Checks one line as read from the wire (its `\n` included).
    pub fn from_line(line: &[u8]) -> Result<Reply, String> {
        let shown = || String::from_utf8_lossy(line).into_owned();
        let body = line
            .strip_suffix(b"\n")
            .ok_or_else(|| format!("reply not ended by \\n: {:?}", shown()))?;
        if body.ends_with(b"\r") {
            return Err(format!("reply ended by \\r\\n: {:?}", shown()));
        }
        let (delimited, text) = match body.strip_prefix(&[0xFF]) {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        if let Some(bad) = text.iter().find(|b| !(0x20..=0x7E).contains(*b)) {
            return Err(format!(
                "reply holds byte {bad:#04x}, not printable ASCII: {:?}",
                shown()
            ));
        }
        let json: Value = serde_json::from_slice(text)
            .map_err(|e| format!("reply is not JSON ({e}): {:?}", shown()))?;
        if !json.is_object() {
            return Err(format!("reply is not a JSON object: {:?}", shown()));
        }
        Ok(Reply {
            raw: body.to_vec(),
            delimited,
            json,
        })
    }

    /// The line as text, for messages (0xFF shown as `\xff`).
    pub fn text(&self) -> String {
        let mut text = String::new();
        if self.delimited {
            text.push_str("\\xff");
        }
        let start = usize::from(self.delimited);
        text.push_str(&String::from_utf8_lossy(&self.raw[start..]));
        text
    }

    /// `return`, or a panic naming the reply.
    pub fn ret(&self) -> &Value {
        self.json
            .get("return")
            .unwrap_or_else(|| panic!("no return in {}", self.text()))
    }

    pub fn is_return(&self) -> bool {
        self.json.get("return").is_some()
    }

    pub fn error_class(&self) -> Option<&str> {
        self.json["error"]["class"].as_str()
    }

    pub fn desc(&self) -> Option<&str> {
        self.json["error"]["desc"].as_str()
    }

    /// A guest-info reply's entry for command `name`.
    pub fn info_entry(&self, name: &str) -> Option<Value> {
        self.ret()["supported_commands"]
            .as_array()
            .unwrap_or_else(|| panic!("not a guest-info reply: {}", self.text()))
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    /// The `id` member, `None` when absent (an `id` of `null` is `Some`).
    pub fn id(&self) -> Option<&Value> {
        self.json.get("id")
    }
}

/// A QGA connection over a unix socket. Reads fail after [`TIMEOUT`]: a
/// guard against a hung agent, not a measurement.
pub struct QgaClient {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    sentinels: u64,
}

impl QgaClient {
    pub fn connect(socket: &Path) -> QgaClient {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        QgaClient {
            stream,
            reader,
            sentinels: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the agent");
    }

    /// The next line as it came, `\n` included; panics on EOF or timeout.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("reading a reply: {e}"));
        assert!(
            line.ends_with(b"\n"),
            "connection closed after {:?}",
            String::from_utf8_lossy(&line)
        );
        line
    }

    /// The next reply, checked against the wire rules.
    pub fn reply(&mut self) -> Reply {
        let line = self.read_line();
        Reply::from_line(&line).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `count` replies.
    pub fn replies(&mut self, count: usize) -> Vec<Reply> {
        (0..count).map(|_| self.reply()).collect()
    }

    /// Sends `text` and reads one reply.
    pub fn request(&mut self, text: &str) -> Reply {
        self.send(text.as_bytes());
        self.reply()
    }

    /// `{"execute": name, "arguments": args}` (arguments left out when
    /// `None`), with a newline, and its reply.
    pub fn execute(&mut self, name: &str, arguments: Option<Value>) -> Reply {
        self.request(&execute_line(name, arguments, None))
    }

    /// Proves nothing is pending: a `guest-ping` with an id of its own, whose
    /// reply must be the very next line.
    pub fn assert_nothing_pending(&mut self) {
        self.sentinels += 1;
        let id = format!("sentinel-{}", self.sentinels);
        let reply = self.request(&execute_line("guest-ping", None, Some(Value::from(&*id))));
        assert_eq!(
            reply.json,
            serde_json::json!({"return": {}, "id": id}),
            "a reply came before the sentinel's: {}",
            reply.text()
        );
    }

    /// Half-closes the connection: the agent reads EOF.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// A request line: compact JSON and `\n`.
pub fn execute_line(name: &str, arguments: Option<Value>, id: Option<Value>) -> String {
    let mut request = serde_json::Map::new();
    request.insert("execute".to_owned(), Value::from(name));
    if let Some(arguments) = arguments {
        request.insert("arguments".to_owned(), arguments);
    }
    if let Some(id) = id {
        request.insert("id".to_owned(), id);
    }
    format!("{}\n", Value::Object(request))
}

/// Waits until something accepts connections at `socket`; the probe
/// connection is closed at once (both agents then serve the next client).
pub fn wait_until_listening(socket: &Path, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} never listened on {}",
            socket.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Either agent, as the comparison tests see it.
pub trait Peer {
    fn name(&self) -> &'static str;
    fn socket(&self) -> &Path;
    fn connect(&self) -> QgaClient {
        QgaClient::connect(self.socket())
    }
}

/// The real `qemu-ga -m unix-listen`, killed when dropped.
pub struct QemuGa {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl QemuGa {
    /// Whether qemu-ga is installed (Debian's `qemu-guest-agent`).
    pub fn installed() -> bool {
        Path::new(QEMU_GA).exists()
    }

    /// Starts qemu-ga with `block` disabled (`-b`) and a verbose log, or says
    /// why not and gives `None` when it is not installed, so the caller can
    /// skip.
    pub fn start(block: &[&str]) -> Option<QemuGa> {
        QemuGa::spawn(block, true)
    }

    /// qemu-ga as a package runs it, logging at its default level: for
    /// benchmarks.
    pub fn start_quiet() -> Option<QemuGa> {
        QemuGa::spawn(&[], false)
    }

    fn spawn(block: &[&str], verbose: bool) -> Option<QemuGa> {
        if !QemuGa::installed() {
            eprintln!(
                "skipped: {QEMU_GA} is not installed (apt-get install qemu-guest-agent); \
                 nothing to compare with"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qga.sock");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let mut command = Command::new(QEMU_GA);
        command
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .arg("-f")
            .arg(dir.path().join("qemu-ga.pid"))
            .arg("-l")
            .arg(dir.path().join("qemu-ga.log"));
        if verbose {
            command.arg("-v");
        }
        if !block.is_empty() {
            command.arg("-b").arg(block.join(","));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting qemu-ga");
        let qga = QemuGa { child, dir, socket };
        wait_until_listening(&qga.socket, "qemu-ga");
        Some(qga)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What `qemu-ga --version` says its version is (`""` if it cannot).
    pub fn version() -> String {
        Command::new(QEMU_GA)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.split_whitespace().last().map(str::to_owned))
            .unwrap_or_default()
    }

    /// qemu-ga's log (`-l`, with `-v` unless started quiet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qemu-ga.log")).unwrap_or_default()
    }
}

impl Peer for QemuGa {
    fn name(&self) -> &'static str {
        "qemu-ga"
    }
    fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our agent with the QGA plugins, listening on `<sandbox>/qga.sock`.
pub struct Ours {
    /// Dropped first: the agent dies before its sandbox goes.
    pub agent: Agent,
    pub sandbox: Sandbox,
    socket: PathBuf,
}

/// A sandbox holding the built-in plugins and every QGA plugin, with the
/// QGA channel configured: `deny` goes to `[commands] deny`, `extra` TOML
/// is appended.
pub fn qga_sandbox(deny: &[&str], extra: &str) -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    for name in QGA_PLUGINS {
        sandbox.add_plugin(&plugin(name));
    }
    write_qga_config(&sandbox, deny, extra);
    sandbox
}

/// Rewrites `sandbox`'s config: the standard one, the QGA channel on
/// `<sandbox>/qga.sock` (unix-listen), `deny`, then `extra`.
pub fn write_qga_config(sandbox: &Sandbox, deny: &[&str], extra: &str) {
    let deny: Vec<String> = deny.iter().map(|c| format!("{c:?}")).collect();
    sandbox.write_config(&format!(
        "\n[[channel]]\nexchange = \"virtio-serial\"\nparser = \"qga\"\n\n\
         [plugins.virtio-serial]\npath = \"{}\"\nmethod = \"unix-listen\"\n\n\
         [commands]\ndeny = [{}]\n{extra}",
        qga_socket(sandbox).display(),
        deny.join(", ")
    ));
}

pub fn qga_socket(sandbox: &Sandbox) -> PathBuf {
    sandbox.path().join("qga.sock")
}

impl Ours {
    /// A new sandbox ([`qga_sandbox`]) and the agent serving it.
    pub fn start(deny: &[&str], extra: &str) -> Ours {
        Ours::serve(qga_sandbox(deny, extra))
    }

    /// Starts the agent on an existing sandbox and waits until both of its
    /// sockets accept connections. Not on a log line: an agent that starts
    /// frozen (the flag kept in `state_dir`) writes no log, as qemu-ga.
    pub fn serve(sandbox: Sandbox) -> Ours {
        let mut agent = sandbox.spawn();
        let socket = qga_socket(&sandbox);
        let deadline = Instant::now() + TIMEOUT;
        while [&socket, &sandbox.socket]
            .iter()
            .any(|s| UnixStream::connect(s).is_err())
        {
            if let Some(status) = agent.wait_exit(std::time::Duration::ZERO) {
                panic!("the agent exited ({status}); log:\n{}", agent.log());
            }
            assert!(
                Instant::now() < deadline,
                "the agent's sockets never listened; log:\n{}",
                agent.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ours {
            agent,
            sandbox,
            socket,
        }
    }

    /// Stops the agent (SIGTERM) and starts a new one on the same sandbox.
    pub fn restart(self) -> Ours {
        let Ours {
            mut agent, sandbox, ..
        } = self;
        let (status, _) = agent.stop_with(libc::SIGTERM);
        assert!(status.success(), "agent exit: {status:?}\n{}", agent.log());
        drop(agent);
        Ours::serve(sandbox)
    }
}

impl Peer for Ours {
    fn name(&self) -> &'static str {
        "nova-agent"
    }
    fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Both agents with the same commands disabled (`-b` for qemu-ga, `deny` for
/// ours), ours reading copies of the files qemu-ga reads; `None` when
/// qemu-ga is not installed.
pub fn both(disabled: &[&str]) -> Option<(Ours, QemuGa)> {
    let theirs = QemuGa::start(disabled)?;
    let sandbox = qga_sandbox(disabled, "");
    mirror_host_files(&sandbox.root);
    Some((Ours::serve(sandbox), theirs))
}

/// Ours reads files under its root where qemu-ga reads `/`: copies of the
/// ones the read-only commands read, so both read the same thing.
fn mirror_host_files(root: &Path) {
    for file in [
        "etc/os-release",
        "usr/lib/os-release",
        "var/run/utmp",
        "etc/hostname",
    ] {
        let from = Path::new("/").join(file);
        if from.exists() {
            let to = root.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// One request on a fresh connection; its reply, after proving nothing else
/// was pending.
pub fn one(peer: &dyn Peer, request: &str) -> Reply {
    let mut client = peer.connect();
    let reply = client.request(request);
    client.assert_nothing_pending();
    reply
}

/// One request to each agent: (ours, theirs).
pub fn ask(ours: &dyn Peer, theirs: &dyn Peer, request: &str) -> (Reply, Reply) {
    let theirs_reply = one(theirs, request);
    (one(ours, request), theirs_reply)
}

/// [`ask`], then [`assert_same`] under `mode`.
pub fn ask_same(
    ours: &dyn Peer,
    theirs: &dyn Peer,
    request: &str,
    mode: Compare,
) -> (Reply, Reply) {
    let (o, t) = ask(ours, theirs, request);
    assert_same(request.trim_end(), &o, &t, mode);
    (o, t)
}
