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
//! It starts no thread of its own: the agent's workers, blocked in `next`,
//! wait on the sockets themselves (one epoll instance), so the thread that
//! reads a request is the one that processes and answers it. Each line is
//! one [`Incoming`] (a line over 1 MiB is handed out as unreadable), and
//! `respond` queues its answer and a newline, sending what the socket takes
//! at once (it never waits for a client); an empty answer sends nothing. A
//! connection idle for `idle_timeout` is closed, and so is the one idle the
//! longest when a new client finds all 64 slots taken.
//!
//! It holds no `unsafe` code: the system calls go through nix's safe
//! wrappers (epoll, eventfd, poll, the socket calls) and std.
//!
//! Layout: this file holds the config and the [`Exchange`] object; `server`
//! the epoll loop that `next` runs (accepting, reading, re-arming, closing
//! idle connections) and `respond`/`shutdown`; `conn` one connection's state,
//! reading a request and queueing and sending answers; `poller` the epoll,
//! eventfd, timerfd and poll(2) calls;
//! `lines` the bounded, resumable line splitter (the socket file itself is
//! made by `nova_agent_support::socket`); `metadata` the metadata directory; `tests`
//! the end-to-end tests of the exchange, `drain_tests` those of its shutdown
//! with requests in flight, `limit_tests` those of idle connections and
//! clients that do not read.
//!
//! ```toml
//! [plugins.unix-socket]
//! path = "/run/nova-agent/agent.sock"            # the default
//! metadata_dir = "/var/lib/nova-agent/metadata"  # optional
//! idle_timeout = 60                              # seconds; the default
//! ```

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use nova_agent_plugin_api::{export_plugin, Exchange, Host, Incoming, PluginError, Provides};
use nova_agent_support::config;
use serde::Deserialize;
use serde_json::Value;

mod conn;
mod lines;
mod metadata;
mod poller;
mod server;

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;

/// The socket's path when the config names none.
pub const DEFAULT_PATH: &str = "/run/nova-agent/agent.sock";

/// How long a connection may sit idle when the config does not say.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The plugin's name, as its config table is named.
const PLUGIN: &str = "unix-socket";

/// The plugin's `[plugins.unix-socket]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Where the socket lives; absolute, and short enough for `sun_path`.
    pub(crate) path: PathBuf,
    /// Metadata as files: the key `vm-data/hostname` is the file
    /// `<metadata_dir>/vm-data/hostname`.
    pub(crate) metadata_dir: Option<PathBuf>,
    /// A connection on which nothing moved this long is closed.
    pub(crate) idle_timeout: Duration,
}

/// The table as written, before the checks serde cannot express.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    metadata_dir: Option<String>,
    /// Seconds.
    #[serde(default = "default_idle_timeout")]
    idle_timeout: u64,
}

fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}

fn default_idle_timeout() -> u64 {
    DEFAULT_IDLE_TIMEOUT.as_secs()
}

impl Config {
    /// Checks the `[plugins.unix-socket]` table. Touches nothing on disk.
    pub(crate) fn parse(table: Value) -> Result<Config, PluginError> {
        let raw: RawConfig = config::parse_table(PLUGIN, table)?;

        let path = PathBuf::from(raw.path);
        check_absolute(&path, "path")?;
        if path.file_name().is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(key_error(
                "path",
                &format!("must name a file, not a directory: {}", path.display()),
            ));
        }
        let len = path.as_os_str().len();
        if len > nova_agent_support::socket::MAX_PATH_LEN {
            return Err(key_error(
                "path",
                &format!(
                    "is too long for a unix socket ({len} bytes, at most {})",
                    nova_agent_support::socket::MAX_PATH_LEN
                ),
            ));
        }

        let metadata_dir = raw.metadata_dir.map(PathBuf::from);
        if let Some(dir) = &metadata_dir {
            check_absolute(dir, "metadata_dir")?;
        }
        if raw.idle_timeout == 0 {
            return Err(key_error("idle_timeout", "must be at least 1 (seconds)"));
        }
        Ok(Config {
            path,
            metadata_dir,
            idle_timeout: Duration::from_secs(raw.idle_timeout),
        })
    }
}

fn check_absolute(path: &Path, key: &str) -> Result<(), PluginError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(key_error(key, "must be an absolute path"))
    }
}

/// `[plugins.unix-socket] <key>: <problem>`, the one format of a config error.
fn key_error(key: &str, problem: &str) -> PluginError {
    config::table_error(PLUGIN, &format!("{key}: {problem}"))
}

/// The exchange `unix-socket`.
///
/// `start` opens the socket; each `next` then serves the sockets until one
/// yields a complete line, and `respond` queues the answer on its connection
/// (sending what the socket takes at once) and lets that connection be read
/// again. `shutdown` frees the
/// path at once but still lets `respond` deliver the answers to requests
/// already handed out, so that a hot swap loses no answer.
pub struct UnixSocketExchange {
    server: server::Server,
    metadata: metadata::Metadata,
}

impl UnixSocketExchange {
    /// Builds the exchange; opens nothing until `start`.
    pub(crate) fn new(config: Config) -> Self {
        UnixSocketExchange {
            server: server::Server::new(config.path, config.idle_timeout),
            metadata: metadata::Metadata::new(config.metadata_dir),
        }
    }
}

impl Exchange for UnixSocketExchange {
    fn start(&self) -> Result<(), PluginError> {
        self.server.start().map_err(PluginError::failed)
    }

    fn next(&self) -> Result<Option<Incoming>, PluginError> {
        self.server.next().map_err(PluginError::failed)
    }

    fn respond(&self, id: &str, response: &[u8]) -> Result<(), PluginError> {
        self.server.respond(id, response);
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

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    let config = Config::parse(config)?;
    Ok(Provides::new().exchange("unix-socket", UnixSocketExchange::new(config)))
}

export_plugin! {
    name: "unix-socket",
    description: "local requests over a unix socket, one JSON line each",
    provides: { exchanges: ["unix-socket"] },
    init: init,
}

#[cfg(test)]
mod config_tests {
    use serde_json::json;

    use super::*;

    fn error(table: Value) -> String {
        Config::parse(table).unwrap_err().message().to_owned()
    }

    #[test]
    fn defaults() {
        let config = Config::parse(json!({})).unwrap();
        assert_eq!(config.path, PathBuf::from("/run/nova-agent/agent.sock"));
        assert_eq!(config.metadata_dir, None);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
    }

    #[test]
    fn every_key() {
        let config = Config::parse(json!({
            "path": "/tmp/x/a.sock",
            "metadata_dir": "/var/lib/m",
            "idle_timeout": 5,
        }))
        .unwrap();
        assert_eq!(config.path, PathBuf::from("/tmp/x/a.sock"));
        assert_eq!(config.metadata_dir, Some(PathBuf::from("/var/lib/m")));
        assert_eq!(config.idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_zero_or_negative_idle_timeout_is_refused() {
        assert_eq!(
            error(json!({"idle_timeout": 0})),
            "[plugins.unix-socket] idle_timeout: must be at least 1 (seconds)"
        );
        let message = error(json!({"idle_timeout": -1}));
        assert!(
            message.starts_with("[plugins.unix-socket] idle_timeout: invalid value"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(
            error(json!({"pth": "/run/a.sock"})),
            "[plugins.unix-socket] pth: unknown field `pth`, expected one of `path`, \
             `metadata_dir`, `idle_timeout`"
        );
    }

    #[test]
    fn wrong_type_is_refused() {
        let message = error(json!({"path": 5}));
        assert!(
            message.starts_with("[plugins.unix-socket] path: invalid type"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(
            error(json!({"path": "agent.sock"})),
            "[plugins.unix-socket] path: must be an absolute path"
        );
        assert_eq!(
            error(json!({"path": ""})),
            "[plugins.unix-socket] path: must be an absolute path"
        );
        assert_eq!(
            error(json!({"metadata_dir": "meta"})),
            "[plugins.unix-socket] metadata_dir: must be an absolute path"
        );
    }

    #[test]
    fn directory_and_overlong_paths_are_refused() {
        assert_eq!(
            error(json!({"path": "/"})),
            "[plugins.unix-socket] path: must name a file, not a directory: /"
        );
        assert!(error(json!({"path": "/run/nova-agent/"})).contains("must name a file"));
        let long = format!("/{}", "a".repeat(200));
        assert_eq!(
            error(json!({ "path": long })),
            "[plugins.unix-socket] path: is too long for a unix socket (201 bytes, at most 107)"
        );
        let fits = format!(
            "/{}",
            "a".repeat(nova_agent_support::socket::MAX_PATH_LEN - 1)
        );
        assert!(Config::parse(json!({ "path": fits })).is_ok());
    }

    #[test]
    fn init_touches_nothing() {
        // A path whose parent does not exist: init must still succeed, since it
        // may neither create directories nor bind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/agent.sock");
        let host = nova_agent_plugin_api::testing::TestHost::new("/");
        let agent = nova_agent_plugin_api::testing::TestAgent::new(host)
            .with_plugin(init, json!({ "path": path }))
            .unwrap();
        assert!(!dir.path().join("missing").exists());
        drop(agent);
        assert!(!dir.path().join("missing").exists());
    }
}
