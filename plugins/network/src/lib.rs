//! The `network` plugin: command `resetnetwork`, which configures the
//! guest's network from the host's metadata (`vm-data/networking/*`, one
//! JSON object per NIC, and `vm-data/hostname`), read through the request's
//! channel (XenStore, or the unix-socket channel's `metadata_dir`).
//!
//! The flow: detect the distro family and its back-end from files under the
//! root (`detect`); discover the NICs (`nics`); parse and validate everything
//! into one model (`parse`, `model`) before any file is touched; render the
//! back-end's files (`backends`, one module per family: the original's six,
//! byte-compatible with its templates, plus netplan, systemd-networkd and
//! NetworkManager); write them atomically with bounded backups and run the
//! distro's sequence through the runner (`apply`); hand DNS to whatever
//! manages `/etc/resolv.conf`.
//!
//! What it is not: it never runs a program to decide anything (detection is
//! by files), never writes a host string unchecked into a config file, and
//! with `apply = false` runs nothing (files under the root are still
//! written; programs and sethostname are logged).
//!
//! ```toml
//! [plugins.network]
//! os = "debian"        # optional override: debian | redhat | suse | arch | gentoo | freebsd
//! backend = "ifupdown" # optional override, see `backends::NAMES`
//! ```

use std::sync::Mutex;

use nova_agent_plugin_api::{export_plugin, Host, PluginError, Provides};
use nova_agent_support::runner::Runner;
use serde_json::Value;

pub mod apply;
pub mod backend;
pub mod backends;
pub mod command;
pub mod current;
pub mod detect;
pub mod hosts;
pub mod model;
pub mod nics;
pub mod parse;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod testutil;

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    let settings = command::Settings::parse(config)?;
    Ok(Provides::new().command(
        "resetnetwork",
        command::ResetNetwork {
            settings,
            root: host.root(),
            runner: Runner::new(host.apply()),
            running: Mutex::new(()),
        },
    ))
}

export_plugin! {
    name: "network",
    description: "the guest's network, hostname, /etc/hosts and DNS from the host's vm-data",
    provides: { commands: ["resetnetwork"] },
    init: init,
}
