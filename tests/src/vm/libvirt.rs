//! The host side of the guest agent channel as libvirt drives it
//! (reference §2.1): a connection to QEMU's chardev socket, a reader that
//! splits on `\n` and fails on any line that is not a JSON object, a
//! `guest-sync` handshake with an epoch-ms id that skips stale replies, and
//! commands in libvirt's wire form (compact JSON, no `id`, `arguments`
//! left out when there are none).
//!
//! As libvirt (`qemuAgentIOProcessLine`), a line that is not JSON is
//! tolerated during the first sync of a connection ("receiving garbage on
//! first sync is regular situation") and fails everything later. Stricter
//! than libvirt in one way: every line read is kept (the tolerated garbage
//! too), so a test can assert what came through.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::qga::Reply;

/// libvirt's sync timeout (`QEMU_AGENT_WAIT_TIME`).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// How a sync went: the id sent and the stale lines skipped before its reply.
#[derive(Debug)]
pub struct Synced {
    pub id: u64,
    pub skipped: Vec<Value>,
    /// Lines that were not JSON, passed over as libvirt does on a
    /// connection's first sync.
    pub garbage: Vec<Vec<u8>>,
    /// 1, or 2 when the first try got no answer and libvirt's second went out.
    pub attempts: u32,
}

pub struct LibvirtAgent {
    stream: UnixStream,
    pending: Vec<u8>,
    /// Every line read on this connection, in order.
    pub received: Vec<Value>,
    /// No sync has succeeded on this connection yet.
    first_sync: bool,
}

impl LibvirtAgent {
    pub fn connect(socket: &Path) -> Result<LibvirtAgent, String> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        Ok(LibvirtAgent {
            stream,
            pending: Vec::new(),
            received: Vec::new(),
            first_sync: true,
        })
    }

    /// Sends raw bytes (for what libvirt never sends: partial objects, ids).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("writing to the agent socket: {e}"))
    }

    /// `qemuAgentGuestSync`: `{"execute":"guest-sync","arguments":{"id":ms}}`,
    /// then lines until one whose `return` is that id; other replies are
    /// "delayed" and skipped. A second sync goes out when the first gets
    /// nothing within [`SYNC_TIMEOUT`].
    pub fn sync(&mut self) -> Result<Synced, String> {
        let mut skipped = Vec::new();
        let mut garbage = Vec::new();
        for attempt in 1..=2 {
            let id = epoch_ms();
            let line = json!({"execute": "guest-sync", "arguments": {"id": id}});
            self.send_raw(format!("{line}\n").as_bytes())?;
            let deadline = Instant::now() + SYNC_TIMEOUT;
            loop {
                let tolerate = self.first_sync.then_some(&mut garbage);
                match self.read_reply(deadline, tolerate)? {
                    Some(reply) if reply["return"].as_u64() == Some(id) => {
                        self.first_sync = false;
                        return Ok(Synced {
                            id,
                            skipped,
                            garbage,
                            attempts: attempt,
                        });
                    }
                    Some(reply) => skipped.push(reply),
                    None => break,
                }
            }
        }
        Err(format!(
            "guest agent didn't respond to synchronization within '5' seconds (skipped: {skipped:?})"
        ))
    }

    /// One command as libvirt sends it; the whole reply object (`return` or
    /// `error`). `timeout` stands in for libvirt's "block forever" default.
    pub fn command(
        &mut self,
        name: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let mut request = json!({ "execute": name });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        self.send_raw(format!("{request}\n").as_bytes())?;
        self.read_reply(Instant::now() + timeout, None)?
            .ok_or_else(|| format!("no reply to {name} within {timeout:?}"))
    }

    /// Reads until at least `count` bytes of replies are buffered (a reply
    /// may be left half read), for a host that leaves mid-answer.
    pub fn wait_for_bytes(&mut self, count: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < count {
            if !self.fill(deadline)? {
                return Err(format!("{count} bytes not received within {timeout:?}"));
            }
        }
        Ok(())
    }

    /// The next reply line (`return` or `error`), `None` at the deadline.
    /// `QMP` greetings and events are passed over as libvirt does; any other
    /// line is an error, as it sets libvirt's `agentError`, except that a
    /// line that is not JSON goes to `garbage` when given (a first sync).
    fn read_reply(
        &mut self,
        deadline: Instant,
        mut garbage: Option<&mut Vec<Vec<u8>>>,
    ) -> Result<Option<Value>, String> {
        loop {
            let Some(line) = self.read_line(deadline)? else {
                return Ok(None);
            };
            let reply = match (Reply::from_line(&line), garbage.as_deref_mut()) {
                (Ok(reply), _) => reply,
                (Err(_), Some(garbage)) if serde_json::from_slice::<Value>(&line).is_err() => {
                    garbage.push(line);
                    continue;
                }
                (Err(e), _) => return Err(clip(&e)),
            };
            let json = reply.json;
            self.received.push(json.clone());
            if json.get("QMP").is_some() || json.get("event").is_some() {
                continue;
            }
            if json.get("return").is_some() || json.get("error").is_some() {
                return Ok(Some(json));
            }
            return Err(format!("Unknown JSON reply: {json}"));
        }
    }

    /// One `\n`-terminated line, `\n` included.
    fn read_line(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.pending.drain(..=end).collect()));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// One read into `pending`; false at the deadline.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the agent socket was closed".to_owned()),
                Ok(n) => {
                    self.pending.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading from the agent socket: {e}")),
            }
        }
    }
}

/// `message` cut to a readable length: a bad line may be megabytes long.
fn clip(message: &str) -> String {
    const SHOWN: usize = 400;
    match message.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &message[..at], message.len()),
        None => message.to_owned(),
    }
}

/// `virTimeMillisNow()`.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
