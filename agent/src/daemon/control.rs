//! The control socket, `<run_dir>/control.sock`: how `nova-agent plugins list`
//! and `plugins reload` reach the running agent.
//!
//! One JSON request per connection, `{"op": "list"}` or `{"op": "reload"}`,
//! answered by one JSON line, `{"ok": true, "result": ...}` or
//! `{"ok": false, "error": "..."}`. The socket is mode 0600 and every peer's
//! credentials are checked: only root (or the agent's own user) is served.
//!
//! What it is not: a second channel for host commands. It never runs a
//! command plugin.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::{Deserialize, Serialize};

pub(crate) const SOCKET_NAME: &str = "control.sock";

/// The longest request line read.
const MAX_REQUEST: u64 = 4096;
/// Connections served at once; more wait in the backlog.
const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Request {
    List,
    Reload,
}

pub(crate) fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET_NAME)
}

/// Answers one request; the error is shown to the client.
pub(crate) type Handler = dyn Fn(Request) -> Result<serde_json::Value, String> + Send + Sync;

pub(crate) struct ControlServer {
    path: PathBuf,
    /// Device and inode of our socket file, to remove only our own.
    id: (u64, u64),
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Opens the socket (refusing if another agent answers on it) and serves
    /// it on a thread of its own.
    pub(crate) fn start(run_dir: &Path, handler: Arc<Handler>) -> Result<ControlServer> {
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("creating run_dir {}", run_dir.display()))?;
        let path = socket_path(run_dir);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                bail!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                );
            }
            if UnixStream::connect(&path).is_ok() {
                bail!(
                    "another nova-agent is running: its control socket {} answers",
                    path.display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        let meta = std::fs::symlink_metadata(&path)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || accept_loop(&listener, &stopping, handler))?
        };
        Ok(ControlServer {
            path,
            id: (meta.dev(), meta.ino()),
            stopping,
            thread: Some(thread),
        })
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket file if it is still ours.
    pub(crate) fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wakes the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn accept_loop(listener: &UnixListener, stopping: &AtomicBool, handler: Arc<Handler>) {
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if busy.load(Ordering::Acquire) >= MAX_CLIENTS {
            let _ = answer(&stream, Err("the agent is busy; try again".to_owned()));
            continue;
        }
        busy.fetch_add(1, Ordering::AcqRel);
        let (handler, busy) = (Arc::clone(&handler), Arc::clone(&busy));
        let spawned = std::thread::Builder::new()
            .name("control client".into())
            .spawn(move || {
                serve(stream, &*handler);
                busy.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a thread for a control client");
        }
    }
}

fn serve(stream: UnixStream, handler: &Handler) {
    match getsockopt(&stream, PeerCredentials) {
        Ok(peer) if peer.uid() == 0 || peer.uid() == nix::unistd::geteuid().as_raw() => {}
        Ok(peer) => {
            tracing::warn!("control socket: refused a client with uid {}", peer.uid());
            let _ = answer(&stream, Err("permission denied: root only".to_owned()));
            return;
        }
        Err(e) => {
            tracing::warn!("control socket: cannot read a client's credentials: {e}");
            return;
        }
    }
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new(io::Read::take(&stream, MAX_REQUEST)).read_line(&mut line);
    let outcome = match read {
        Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(request) => {
                tracing::debug!("control request {request:?}");
                handler(request)
            }
            Err(e) => Err(format!("bad control request: {e}")),
        },
        Err(e) => Err(format!("cannot read the control request: {e}")),
    };
    let _ = answer(&stream, outcome);
}

fn answer(mut stream: &UnixStream, outcome: Result<serde_json::Value, String>) -> io::Result<()> {
    let reply = match outcome {
        Ok(result) => serde_json::json!({"ok": true, "result": result}),
        Err(error) => serde_json::json!({"ok": false, "error": error}),
    };
    let mut bytes = serde_json::to_vec(&reply)?;
    bytes.push(b'\n');
    stream.write_all(&bytes)
}

/// Sends `request` to the agent whose run_dir is `run_dir`. `Ok(None)` when
/// no agent is running there (no socket, or nobody listening).
pub(crate) fn request(
    run_dir: &Path,
    request: Request,
    timeout: Duration,
) -> Result<Option<serde_json::Value>> {
    let path = socket_path(run_dir);
    let stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    stream.set_read_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .with_context(|| format!("reading the agent's answer on {}", path.display()))?;
    if reply.is_empty() {
        bail!("the agent closed {} without answering", path.display());
    }
    let reply: serde_json::Value =
        serde_json::from_str(&reply).context("the agent's answer is not JSON")?;
    if reply["ok"] == serde_json::Value::Bool(true) {
        Ok(Some(reply["result"].clone()))
    } else {
        bail!(
            "the agent refused: {}",
            reply["error"].as_str().unwrap_or("no reason given")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(request: Request) -> Result<serde_json::Value, String> {
        match request {
            Request::List => Ok(serde_json::json!(["listed"])),
            Request::Reload => Err("no reload here".to_owned()),
        }
    }

    #[test]
    fn requests_are_answered_and_the_socket_is_private_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let server = ControlServer::start(dir.path(), Arc::new(echo)).unwrap();
        let mode = std::fs::metadata(server.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let listed = request(dir.path(), Request::List, Duration::from_secs(5)).unwrap();
        assert_eq!(listed, Some(serde_json::json!(["listed"])));
        let e = request(dir.path(), Request::Reload, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.to_string(), "the agent refused: no reload here");
        let path = server.path().to_path_buf();
        server.stop();
        assert!(!path.exists());
        assert!(request(dir.path(), Request::List, Duration::from_secs(5))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_second_agent_is_refused_and_a_stale_socket_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = ControlServer::start(dir.path(), Arc::new(echo)).unwrap();
        let e = ControlServer::start(dir.path(), Arc::new(echo))
            .err()
            .unwrap();
        assert!(
            e.to_string().starts_with("another nova-agent is running"),
            "{e}"
        );
        first.stop();
        drop(UnixListener::bind(socket_path(dir.path())).unwrap());
        ControlServer::start(dir.path(), Arc::new(echo))
            .unwrap()
            .stop();
    }

    #[test]
    fn garbage_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let server = ControlServer::start(dir.path(), Arc::new(echo)).unwrap();
        let stream = UnixStream::connect(server.path()).unwrap();
        (&stream).write_all(b"{\"op\":\"format-disk\"}\n").unwrap();
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        assert!(
            reply.starts_with("{\"error\":\"bad control request: unknown variant"),
            "{reply}"
        );
        server.stop();
    }
}
