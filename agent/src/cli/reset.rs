//! `nova-agent resetnetwork`: run the `resetnetwork` command once, locally
//! (at boot, before or instead of the host asking), with the metadata of the
//! configured channels' exchanges.
//!
//! No channel is started: exchanges answer metadata without serving (the
//! xenstore exchange opens a connection of its own), so this runs beside a
//! running agent too. The first channel whose exchange has
//! `vm-data/networking` entries is used; without any, the first channel.

use anyhow::{bail, Result};
use nova_agent_plugin_api::abi_stable::std_types::{RResult, RStr};
use nova_agent_plugin_api::ffi::FfiDispatch;

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::host::{AgentHost, RequestContext};
use crate::loader;
use crate::registry::Registry;

/// Prints the response JSON; `Ok(true)` when it is "0".
pub fn reset_network(config: &Config) -> Result<bool> {
    let host = AgentHost::new(config.root.clone(), config.apply);
    let inspection = loader::inspect(&config.plugin_dirs);
    let registry = Registry::build(inspection, config, &host);
    let result = run(config, &registry);
    registry.shutdown();
    let (code, message) = result?;
    println!(
        "{}",
        serde_json::json!({"returncode": code, "message": message})
    );
    Ok(code == "0")
}

fn run(config: &Config, registry: &Registry) -> Result<(String, String)> {
    if !registry.commands.contains_key("resetnetwork") {
        bail!("no loaded plugin provides the resetnetwork command");
    }
    let mut candidates = Vec::new();
    for channel in &config.channels {
        if let Some(exchange) = registry.exchanges.get(&channel.exchange) {
            candidates.push((channel.name(), &exchange.object));
        }
    }
    let Some(first) = candidates.first() else {
        bail!("no configured channel has a loaded exchange to read metadata from");
    };
    let chosen = candidates
        .iter()
        .find(|(_, exchange)| {
            matches!(
                exchange.metadata_list(RStr::from_str("vm-data/networking")),
                RResult::ROk(ref keys) if !keys.is_empty()
            )
        })
        .unwrap_or(first);
    tracing::info!("resetnetwork with the metadata of channel {}", chosen.0);
    let dispatcher = Dispatcher {
        registry,
        deny: &config.deny,
        context: RequestContext {
            channel: &chosen.0,
            exchange: chosen.1,
        },
    };
    match dispatcher
        .run(RStr::from_str("resetnetwork"), RStr::from_str("\"\""))
        .into_option()
    {
        Some(reply) => Ok((reply.code.into(), reply.message.into())),
        None => bail!("resetnetwork is denied by [commands] deny"),
    }
}
