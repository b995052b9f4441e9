//! The `update` plugin: command `agentupdate`, which downloads a new agent
//! and its plugins, verifies and installs them, and restarts the service.
//!
//! The value is the string `"<url>,<md5hex>"` (split at the first comma) or
//! the older object `{"url": ..., "md5sum": ...}`. The package is fetched over
//! http or https (rustls, the Mozilla roots; at most `max_size` bytes, within
//! `timeout`; redirects only to http(s)), its MD5 must be the host's
//! (compared case-insensitively) and, when `[plugins.update] sha256` is set,
//! its SHA-256 that pin. The package is then unpacked, installed and the
//! agent restarted. Any failure is answered as failed with the reason (Nova:
//! `"500"`), or as not found with "No init script found to restart" (Nova:
//! `"404"`) when the system offers no way to restart, checked before
//! anything is installed; either leaves the running install as it was. A
//! proxy is taken from the agent's environment (`ALL_PROXY`,
//! `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, or their lowercase forms).
//!
//! # Package format
//!
//! A gzip'd tar with exactly one top directory:
//!
//! ```text
//! nova-agent-<version>/bin/nova-agent      -> binary (mode 0755)
//! nova-agent-<version>/plugins/<name>.so   -> plugin_dir/<name>.so (mode 0644)
//! nova-agent-<version>/VERSION             optional, logged
//! ```
//!
//! Nothing else is installed (other regular files and directories in the top
//! directory are skipped); plugins already installed that the package does
//! not carry stay. Members may be only regular files and directories: a
//! symbolic or hard link, a device, a FIFO, an absolute name, a `..`
//! component, a member outside the top directory or a second top directory
//! refuses the package, as does a missing `bin/nova-agent` or more than
//! 4 × `max_size` bytes unpacked. `packaging/make-update-tarball.sh` builds
//! one.
//!
//! # Install and restart
//!
//! Every file is copied next to its target as a temporary, given its mode and
//! owner root, synced, and only when all are written renamed over the
//! targets, plugins first and the binary last (see `install`). The restart
//! is `systemctl --no-block restart <service>` when `<root>/run/systemd/system`
//! is a directory, else `sh <script> restart` with the first of
//! `/etc/init.d/nova-agent`, `/etc/rc.d/nova-agent`, `/etc/nova-agent.init`.
//! `--no-block` queues the restart and returns, so this request's response is
//! written during the agent's graceful stop; the seed ran the init script as
//! its own child and waited for it, so the script's stop raced the agent's
//! exit and the response could be lost (B-UPD-4), which still holds for init
//! scripts here. With `apply = false` the download and every check still
//! happen; the install and the restart are only logged (`would install ...
//! to ...`, `not running (apply = false): systemctl ...`) and the answer is
//! `"0"` when the package verified.
//!
//! # Configuration: `[plugins.update]`, all optional
//!
//! ```toml
//! require_https = false                        # refuse http:// URLs and redirects to them
//! sha256 = "<64 hex digits>"                   # the package must also have this SHA-256
//! max_size = 67108864                          # bytes downloaded at most
//! timeout = 300                                # seconds for the whole download
//! binary = "/usr/sbin/nova-agent"
//! plugin_dir = "/usr/lib/nova-agent/plugins"
//! service = "nova-agent"                       # the systemd unit
//! staging_dir = "/var/lib/nova-agent/update"   # a fresh directory per update, removed after
//! ```
//!
//! Every path is a guest path, resolved under the agent's `root`.
//!
//! What it is not: it runs no installer script from the package (the seed ran
//! `installer.sh` as root, SEC-5), extracts no member under the member's own
//! name, fetches nothing but http(s) (the seed's urllib took ftp and file),
//! and never logs the URL's userinfo (`user:password@`), which it does send as
//! Basic authorization.
//!
//! Layout: `value` the request's value, `location` the URL, `download` the
//! fetch, `unpack` the tar, `install` the atomic install, `restart` the
//! restart, `update` one whole update, `config` the settings.

use std::sync::Arc;

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::runner::Runner;
use serde_json::{json, Value};

mod config;
mod download;
mod install;
mod location;
mod restart;
mod unpack;
mod update;
mod value;

#[cfg(test)]
mod install_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod unpack_prop_tests;
#[cfg(test)]
mod unpack_tests;

use config::{Paths, Settings};
use update::Updater;

struct AgentUpdate(Arc<Updater>);

impl Command for AgentUpdate {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        match self.0.update(call.arguments()) {
            Ok(()) => Ok(json!("")),
            Err(failure) => {
                tracing::warn!("agentupdate failed: {}", failure.message);
                Err(failure.into())
            }
        }
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    let settings = Settings::parse(config)?;
    let paths = Paths::new(&host.root(), &settings)?;
    let updater = Updater::new(
        settings,
        paths,
        Runner::new(host.apply()),
        format!("nova-agent/{}", host.agent_version()),
    );
    Ok(Provides::new().command("agentupdate", AgentUpdate(Arc::new(updater))))
}

export_plugin! {
    name: "update",
    description: "the agent's self-update: download, verify, install, restart",
    provides: { commands: ["agentupdate"] },
    init: init,
}
