//! The `unix-socket` plugin: exchange `unix-socket`, local requests over a unix
//! socket, one JSON line each.
//!
//! It is what `nova-agent call` talks to, and the agent's channel where there is
//! no Xen. A client connects to `[plugins.unix-socket] path` (mode 0600, so
//! root only), writes one request per line and reads one response line per
//! request, in order; a connection may carry any number of requests, and
//! clients are served concurrently. It can also serve the metadata a command
//! reads (`vm-data/hostname`, `vm-data/networking/*`) from a directory of files
//! laid out like XenStore's keys (`metadata_dir`), so the whole agent can run
//! and be tested without Xen.
//!
//! What it is not: it does not parse requests (a line is opaque bytes; the
//! channel's parser, normally `json`, reads it and formats the answer), it does
//! no authentication beyond the socket's mode and ownership, and it never logs
//! request or response bytes (they carry passwords and keys).
//!
//! It starts no thread of its own: the agent's workers, blocked in
//! `next_request`, wait on the sockets themselves (one epoll instance), so the
//! thread that reads a request is the one that processes and answers it.
//!
//! Layout: this file holds the config and the [`Exchange`] object; `server`
//! the epoll loop that `next_request` runs (accepting, reading, re-arming)
//! and `put_response`/`shutdown`; `conn` one connection's state, reading a
//! request and writing an answer; `poller` the epoll, eventfd and poll(2)
//! wrappers; `lines` the bounded, resumable line splitter; `socket` the
//! careful opening of the socket file; `metadata` the metadata directory;
//! `tests` the end-to-end tests of the exchange, `drain_tests` those of its
//! shutdown with requests in flight.
//!
//! ```toml
//! [plugins.unix-socket]
//! path = "/run/nova-agent/agent.sock"            # the default
//! metadata_dir = "/var/lib/nova-agent/metadata"  # optional
//! ```

use std::path::{Path, PathBuf};

use nova_agent_plugin_api::{export_plugin, Exchange, Host, PluginError, Provides, Request};
use serde::Deserialize;

mod conn;
mod lines;
mod metadata;
mod poller;
mod server;
mod socket;

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod tests;

/// Locks `mutex`, taking the data over from a thread that panicked holding it
/// (every critical section leaves the data consistent).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The socket's path when the config names none.
pub const DEFAULT_PATH: &str = "/run/nova-agent/agent.sock";

/// The plugin's `[plugins.unix-socket]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Where the socket lives; absolute, and short enough for `sun_path`.
    pub(crate) path: PathBuf,
    /// Metadata as files: the key `vm-data/hostname` is the file
    /// `<metadata_dir>/vm-data/hostname`.
    pub(crate) metadata_dir: Option<PathBuf>,
}

/// The table as written, before the checks serde cannot express.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    metadata_dir: Option<String>,
}

fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}

impl Config {
    /// Parses the table's JSON (`{}` or `""` when the config has none). Touches
    /// nothing on disk.
    pub(crate) fn parse(config_json: &str) -> Result<Config, PluginError> {
        let json = match config_json.trim() {
            "" => "{}",
            json => json,
        };
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| {
            PluginError::failed(format!("[plugins.unix-socket]: {}", without_position(&e)))
        })?;

        let path = PathBuf::from(raw.path);
        check_absolute(&path, "path")?;
        if path.file_name().is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(PluginError::failed(format!(
                "[plugins.unix-socket] path must name a file, not a directory: {}",
                path.display()
            )));
        }
        let len = path.as_os_str().len();
        if len > socket::MAX_PATH_LEN {
            return Err(PluginError::failed(format!(
                "[plugins.unix-socket] path is too long for a unix socket \
                 ({len} bytes, at most {})",
                socket::MAX_PATH_LEN
            )));
        }

        let metadata_dir = raw.metadata_dir.map(PathBuf::from);
        if let Some(dir) = &metadata_dir {
            check_absolute(dir, "metadata_dir")?;
        }
        Ok(Config { path, metadata_dir })
    }
}

fn check_absolute(path: &Path, key: &str) -> Result<(), PluginError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(PluginError::failed(format!(
            "[plugins.unix-socket] {key} must be an absolute path"
        )))
    }
}

/// serde_json's message without its " at line 1 column 6" (the JSON is the
/// agent's rendering of a TOML table, so its positions mean nothing to people).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if e.line() == 0 {
        return message;
    }
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// The exchange `unix-socket`.
///
/// `start` opens the socket; each `next_request` then serves the sockets until
/// one yields a complete line, and `put_response` writes the answer straight
/// to its connection and lets that connection be read again. `shutdown` frees
/// the path at once but still lets `put_response` deliver the answers to
/// requests already handed out, so that a hot swap loses no answer.
pub struct UnixSocketExchange {
    server: server::Server,
    metadata: metadata::Metadata,
}

impl UnixSocketExchange {
    /// Builds the exchange; opens nothing until `start`.
    pub(crate) fn new(config: Config) -> Self {
        UnixSocketExchange {
            server: server::Server::new(config.path),
            metadata: metadata::Metadata::new(config.metadata_dir),
        }
    }
}

impl Exchange for UnixSocketExchange {
    fn start(&self) -> Result<(), PluginError> {
        self.server.start().map_err(PluginError::failed)
    }

    fn next_request(&self) -> Result<Option<Request>, PluginError> {
        self.server.next_request().map_err(PluginError::failed)
    }

    fn put_response(&self, id: &str, response: &[u8]) -> Result<(), PluginError> {
        self.server.put_response(id, response);
        Ok(())
    }

    fn max_response_len(&self) -> Option<u64> {
        None
    }

    fn metadata_read(&self, key: &str) -> Result<Option<String>, PluginError> {
        self.metadata.read(key)
    }

    fn metadata_list(&self, dir: &str) -> Result<Vec<String>, PluginError> {
        self.metadata.list(dir)
    }

    fn shutdown(&self) {
        self.server.shutdown();
    }
}

fn init(_host: Host, config_json: &str) -> Result<Provides, PluginError> {
    let config = Config::parse(config_json)?;
    Ok(Provides::new().exchange("unix-socket", UnixSocketExchange::new(config)))
}

export_plugin! {
    name: "unix-socket",
    description: "local requests over a unix socket, one JSON line each",
    exchanges: ["unix-socket"],
    parsers: [],
    commands: [],
    init: init,
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn error(json: &str) -> String {
        Config::parse(json).unwrap_err().message().to_owned()
    }

    #[test]
    fn defaults() {
        for json in ["{}", "", "  { }\n"] {
            let config = Config::parse(json).unwrap();
            assert_eq!(config.path, PathBuf::from("/run/nova-agent/agent.sock"));
            assert_eq!(config.metadata_dir, None);
        }
    }

    #[test]
    fn both_keys() {
        let config =
            Config::parse(r#"{"path": "/tmp/x/a.sock", "metadata_dir": "/var/lib/m"}"#).unwrap();
        assert_eq!(config.path, PathBuf::from("/tmp/x/a.sock"));
        assert_eq!(config.metadata_dir, Some(PathBuf::from("/var/lib/m")));
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(
            error(r#"{"pth": "/run/a.sock"}"#),
            "[plugins.unix-socket]: unknown field `pth`, expected `path` or `metadata_dir`"
        );
    }

    #[test]
    fn wrong_type_is_refused() {
        let message = error(r#"{"path": 5}"#);
        assert!(
            message.starts_with("[plugins.unix-socket]: invalid type"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(
            error(r#"{"path": "agent.sock"}"#),
            "[plugins.unix-socket] path must be an absolute path"
        );
        assert_eq!(
            error(r#"{"path": ""}"#),
            "[plugins.unix-socket] path must be an absolute path"
        );
        assert_eq!(
            error(r#"{"metadata_dir": "meta"}"#),
            "[plugins.unix-socket] metadata_dir must be an absolute path"
        );
    }

    #[test]
    fn directory_and_overlong_paths_are_refused() {
        assert!(error(r#"{"path": "/"}"#).contains("must name a file"));
        assert!(error(r#"{"path": "/run/nova-agent/"}"#).contains("must name a file"));
        let long = format!(r#"{{"path": "/{}"}}"#, "a".repeat(200));
        assert!(error(&long).contains("too long for a unix socket"));
        let fits = format!(r#"{{"path": "/{}"}}"#, "a".repeat(socket::MAX_PATH_LEN - 1));
        assert!(Config::parse(&fits).is_ok());
    }

    #[test]
    fn init_touches_nothing() {
        // A path whose parent does not exist: init must still succeed, since it
        // may neither create directories nor bind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/agent.sock");
        let json = serde_json::json!({ "path": path }).to_string();
        let exchange = UnixSocketExchange::new(Config::parse(&json).unwrap());
        assert!(!dir.path().join("missing").exists());
        drop(exchange);
        assert!(!dir.path().join("missing").exists());
    }
}
