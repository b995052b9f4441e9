//! `resetnetwork`: read the host's metadata through the request's channel,
//! build and check the whole model, then render, write and apply it with the
//! distro's back-end. Invalid input answers "500" with nothing touched.

use std::path::PathBuf;
use std::sync::Mutex;

use nova_agent_plugin_api::{Call, Command, CommandError, PluginError};
use nova_agent_support::config::{parse_table, table_error};
use nova_agent_support::runner::Runner;
use nova_agent_support::sync::lock;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::apply::{apply_dns, SystemActions};
use crate::backend::{Backend, System};
use crate::backends::by_name;
use crate::detect::{self, Os, UNKNOWN_OS};
use crate::parse::{self, Metadata};
use crate::{current, nics};

/// `[plugins.network]`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// debian | redhat | suse | arch | gentoo | freebsd
    pub os: Option<String>,
    /// ifupdown | redhat-ifcfg | suse-ifcfg | arch-netctl | arch-netcfg |
    /// arch-rcconf | gentoo-netifrc | gentoo-legacy | freebsd-rcconf |
    /// netplan | networkd | networkmanager
    pub backend: Option<String>,
}

impl Settings {
    /// The `[plugins.network]` table as `init` receives it, checked.
    pub fn parse(table: Value) -> Result<Settings, PluginError> {
        const PLUGIN: &str = "network";
        let settings: Settings = parse_table(PLUGIN, table)?;
        if let Some(os) = &settings.os {
            if Os::from_name(os).is_none() {
                return Err(table_error(
                    PLUGIN,
                    &format!("os: {os:?} is not one of {}", Os::NAMES.join(", ")),
                ));
            }
        }
        if let Some(backend) = &settings.backend {
            if by_name(backend).is_none() {
                return Err(table_error(
                    PLUGIN,
                    &format!(
                        "backend: {backend:?} is not one of {}",
                        crate::backends::NAMES.join(", ")
                    ),
                ));
            }
        }
        Ok(settings)
    }
}

pub struct ResetNetwork {
    pub settings: Settings,
    pub root: PathBuf,
    pub runner: Runner,
    /// One reset at a time, whichever channel asks.
    pub running: Mutex<()>,
}

impl Command for ResetNetwork {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let _one_at_a_time = lock(&self.running);
        let metadata = read_metadata(call)?;
        match self.reset(&metadata) {
            Ok(()) => Ok(json!("")),
            Err(message) => {
                tracing::warn!("resetnetwork failed: {message}");
                Err(CommandError::failed(message))
            }
        }
    }
}

impl ResetNetwork {
    /// Everything after reading the metadata; `Err` is the answer's message.
    pub fn reset(&self, metadata: &Metadata) -> Result<(), String> {
        let system = System::new(&self.root);
        let os = match &self.settings.os {
            Some(name) => Os::from_name(name),
            None => detect::os(&system),
        }
        .ok_or_else(|| UNKNOWN_OS.to_owned())?;
        let backend_name = match &self.settings.backend {
            Some(name) => name.as_str(),
            None => detect::backend(os, &system),
        };
        let backend: Box<dyn Backend> = by_name(backend_name)
            .ok_or_else(|| format!("unknown network backend {backend_name}"))?;

        let nics = nics::discover(&system);
        let network = parse::network(metadata, &nics, || current::hostname(os, &system))?;
        let names: Vec<&str> = network.interfaces.iter().map(|i| i.name.as_str()).collect();
        tracing::info!(
            "resetnetwork: {} with {}, interfaces {}, hostname {}",
            os.name(),
            backend.name(),
            names.join(" "),
            network.hostname
        );
        let plan = backend.render(&network, &system)?;
        let mut actions = SystemActions::new(&self.root, &self.runner);
        backend.apply(&network, &system, &plan, &mut actions)?;
        if plan.resolv_conf {
            apply_dns(&network, &system, &mut actions)?;
        }
        Ok(())
    }
}

/// `vm-data/hostname` and every `vm-data/networking/*` of the request's
/// channel.
fn read_metadata(call: &Call<'_>) -> Result<Metadata, PluginError> {
    let hostname = call.metadata_read("vm-data/hostname")?;
    let mut interfaces = Vec::new();
    for key in call.metadata_list("vm-data/networking")? {
        // Gone between the listing and the read: skipped, as the original.
        if let Some(value) = call.metadata_read(&format!("vm-data/networking/{key}"))? {
            interfaces.push((key, value));
        }
    }
    Ok(Metadata {
        hostname,
        interfaces,
    })
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
