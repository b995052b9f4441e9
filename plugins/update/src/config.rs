//! `[plugins.update]`: the settings, checked at `init`, and the guest paths
//! they name resolved under the agent's root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nova_agent_plugin_api::PluginError;
use nova_agent_support::config::{parse_table, table_error};
use nova_agent_support::files::under_root;
use serde::Deserialize;
use serde_json::Value;

const PLUGIN: &str = "update";

/// `[plugins.update]`; every key is optional.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Refuse `http://` URLs, and redirects to them.
    pub require_https: bool,
    /// A pin: the package must also have this SHA-256 (hex).
    pub sha256: Option<String>,
    /// The largest package accepted, in bytes; it may unpack to
    /// [`UNPACK_FACTOR`] times that.
    pub max_size: u64,
    /// Seconds the whole download may take (connecting: at most
    /// [`CONNECT_TIMEOUT`] of them).
    pub timeout: u64,
    /// The agent's binary, replaced by the package's `bin/nova-agent`.
    pub binary: String,
    /// Where the package's `plugins/*.so` go.
    pub plugin_dir: String,
    /// The systemd unit restarted after an install.
    pub service: String,
    /// Where packages are downloaded and unpacked; a fresh directory in it
    /// per update, removed afterwards.
    pub staging_dir: String,
}

/// A package may unpack to this many times `max_size`.
pub const UNPACK_FACTOR: u64 = 4;

/// The longest a connection may take to open (less when `timeout` is less).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            require_https: false,
            sha256: None,
            max_size: 64 * 1024 * 1024,
            timeout: 300,
            binary: "/usr/sbin/nova-agent".to_owned(),
            plugin_dir: "/usr/lib/nova-agent/plugins".to_owned(),
            service: "nova-agent".to_owned(),
            staging_dir: "/var/lib/nova-agent/update".to_owned(),
        }
    }
}

impl Settings {
    /// The `[plugins.update]` table as `init` receives it, checked.
    pub fn parse(table: Value) -> Result<Settings, PluginError> {
        let mut settings: Settings = parse_table(PLUGIN, table)?;
        settings.check().map_err(|e| table_error(PLUGIN, &e))?;
        if let Some(pin) = &mut settings.sha256 {
            pin.make_ascii_lowercase();
        }
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(pin) = &self.sha256 {
            if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("sha256: must be 64 hexadecimal digits".to_owned());
            }
        }
        if self.max_size == 0 {
            return Err("max_size: must be at least 1 (bytes)".to_owned());
        }
        if self.timeout == 0 {
            return Err("timeout: must be at least 1 (seconds)".to_owned());
        }
        let service = &self.service;
        if service.is_empty()
            || service.starts_with('-')
            || !service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@:\\".contains(&b))
        {
            return Err(format!(
                "service: {service:?} is not a systemd unit name (letters, digits and -_.@:\\)"
            ));
        }
        for (key, path) in [
            ("binary", &self.binary),
            ("plugin_dir", &self.plugin_dir),
            ("staging_dir", &self.staging_dir),
        ] {
            // The root does not matter for the check: it is lexical.
            under_root(Path::new("/"), path).map_err(|e| format!("{key}: {e}"))?;
        }
        if self.binary.ends_with('/') || Path::new(&self.binary).file_name().is_none() {
            return Err(format!("binary: {:?} does not name a file", self.binary));
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// The most the unpacked package (the tar stream) may hold.
    pub fn unpack_cap(&self) -> u64 {
        self.max_size.saturating_mul(UNPACK_FACTOR)
    }
}

/// A guest path (`/usr/sbin/nova-agent`, as messages and logs show it) and
/// where it is under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPath {
    pub guest: String,
    pub real: PathBuf,
}

impl GuestPath {
    pub fn new(root: &Path, guest: &str) -> std::io::Result<GuestPath> {
        Ok(GuestPath {
            guest: guest.to_owned(),
            real: under_root(root, guest)?,
        })
    }

    /// `name` inside this directory.
    pub fn join(&self, name: &str) -> GuestPath {
        GuestPath {
            guest: format!("{}/{name}", self.guest.trim_end_matches('/')),
            real: self.real.join(name),
        }
    }
}

/// The paths of the settings, under the root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub binary: GuestPath,
    pub plugin_dir: GuestPath,
    pub staging_dir: GuestPath,
}

impl Paths {
    pub fn new(root: &Path, settings: &Settings) -> Result<Paths, PluginError> {
        let resolve = |key: &str, path: &str| {
            GuestPath::new(root, path).map_err(|e| table_error(PLUGIN, &format!("{key}: {e}")))
        };
        Ok(Paths {
            root: root.to_path_buf(),
            binary: resolve("binary", &settings.binary)?,
            plugin_dir: resolve("plugin_dir", &settings.plugin_dir)?,
            staging_dir: resolve("staging_dir", &settings.staging_dir)?,
        })
    }
}
