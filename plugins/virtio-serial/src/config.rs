//! The `[plugins.virtio-serial]` table: where the port is and how to open it.

use std::path::PathBuf;

use nova_agent_plugin_api::PluginError;
use nova_agent_support::config;
use serde::Deserialize;
use serde_json::Value;

use crate::PLUGIN;

/// The virtio-serial port QEMU names for its guest agent, as udev links it.
pub const DEFAULT_VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
/// The first ISA serial port, qemu-ga's default for `-m isa-serial`.
pub const DEFAULT_ISA_PATH: &str = "/dev/ttyS0";

use nova_agent_support::socket::MAX_PATH_LEN as MAX_SOCKET_PATH;

/// How the port is reached, as qemu-ga's `-m` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Method {
    /// A virtio-serial character device, opened once for the agent's life.
    VirtioSerial,
    /// A serial line, set raw at 38400 baud.
    IsaSerial,
    /// A unix socket we listen on, serving one client at a time.
    UnixListen,
}

/// The table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// The device or socket; never resolved under the agent's root (it is
    /// the host's channel, not a file a command acts on).
    pub(crate) path: PathBuf,
    pub(crate) method: Method,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    path: Option<String>,
    #[serde(default = "default_method")]
    method: Method,
}

fn default_method() -> Method {
    Method::VirtioSerial
}

impl Config {
    /// Checks the table. Touches nothing on disk.
    pub(crate) fn parse(table: Value) -> Result<Config, PluginError> {
        let raw: RawConfig = config::parse_table(PLUGIN, table)?;
        // Each method defaults as qemu-ga does; a socket has no usual place.
        let path = match (raw.path, raw.method) {
            (Some(path), _) => PathBuf::from(path),
            (None, Method::VirtioSerial) => PathBuf::from(DEFAULT_VIRTIO_PATH),
            (None, Method::IsaSerial) => PathBuf::from(DEFAULT_ISA_PATH),
            (None, Method::UnixListen) => {
                return Err(key_error(
                    "path",
                    "is required with method = \"unix-listen\"",
                ))
            }
        };
        if !path.is_absolute() {
            return Err(key_error("path", "must be an absolute path"));
        }
        if path.file_name().is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            let problem = format!("must name a file, not a directory: {}", path.display());
            return Err(key_error("path", &problem));
        }
        let len = path.as_os_str().len();
        if raw.method == Method::UnixListen && len > MAX_SOCKET_PATH {
            let problem =
                format!("is too long for a unix socket ({len} bytes, at most {MAX_SOCKET_PATH})");
            return Err(key_error("path", &problem));
        }
        Ok(Config {
            path,
            method: raw.method,
        })
    }
}

/// `[plugins.virtio-serial] <key>: <problem>`.
fn key_error(key: &str, problem: &str) -> PluginError {
    config::table_error(PLUGIN, &format!("{key}: {problem}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(table: Value) -> String {
        Config::parse(table).unwrap_err().message().to_owned()
    }

    #[test]
    fn defaults_to_the_guest_agent_port() {
        let config = Config::parse(json!({})).unwrap();
        assert_eq!(config.path, PathBuf::from(DEFAULT_VIRTIO_PATH));
        assert_eq!(config.method, Method::VirtioSerial);
    }

    #[test]
    fn each_method_parses_and_isa_serial_defaults_to_ttys0() {
        let isa = Config::parse(json!({"method": "isa-serial"})).unwrap();
        assert_eq!(
            (isa.path, isa.method),
            (PathBuf::from("/dev/ttyS0"), Method::IsaSerial)
        );
        let unix = Config::parse(json!({"method": "unix-listen", "path": "/tmp/q.sock"})).unwrap();
        assert_eq!(
            (unix.path, unix.method),
            (PathBuf::from("/tmp/q.sock"), Method::UnixListen)
        );
        let pty = Config::parse(json!({"method": "virtio-serial", "path": "/dev/pts/3"})).unwrap();
        assert_eq!(pty.path, PathBuf::from("/dev/pts/3"));
    }

    #[test]
    fn an_unknown_method_names_the_key_and_the_choices() {
        assert_eq!(
            error(json!({"method": "vsock-listen"})),
            "[plugins.virtio-serial] method: unknown variant `vsock-listen`, \
             expected one of `virtio-serial`, `isa-serial`, `unix-listen`"
        );
        let message = error(json!({"method": 1}));
        assert!(
            message.starts_with("[plugins.virtio-serial] method: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_paths_are_refused() {
        assert!(error(json!({"pth": "/dev/x"}))
            .starts_with("[plugins.virtio-serial] pth: unknown field `pth`"));
        assert_eq!(
            error(json!({"path": "dev/vport0p1"})),
            "[plugins.virtio-serial] path: must be an absolute path"
        );
        assert_eq!(
            error(json!({"path": "/dev/virtio-ports/"})),
            "[plugins.virtio-serial] path: must name a file, not a directory: /dev/virtio-ports/"
        );
        assert_eq!(
            error(json!({"method": "unix-listen"})),
            "[plugins.virtio-serial] path: is required with method = \"unix-listen\""
        );
        let long = format!("/{}", "s".repeat(200));
        assert_eq!(
            error(json!({"method": "unix-listen", "path": long})),
            "[plugins.virtio-serial] path: is too long for a unix socket (201 bytes, at most 107)"
        );
        // Only a socket path is bound by sun_path.
        assert!(Config::parse(json!({ "path": long })).is_ok());
    }
}
