//! `nova-agent resetnetwork`: run the `resetnetwork` command once, locally
//! (at boot, before or instead of the host asking), with the metadata of the
//! configured channels' exchanges, and print its response as that channel's
//! parser encodes it.
//!
//! No channel is started: exchanges answer metadata without serving (the
//! xenstore exchange opens a connection of its own), so this runs beside a
//! running agent too. The first channel whose exchange has
//! `vm-data/networking` entries is used; without any, the first channel.

use anyhow::{anyhow, bail, Result};
use nova_agent_plugin_api::ffi::abi_stable::std_types::{RResult, RStr};
use nova_agent_plugin_api::ffi::FfiParsedCall;
use nova_agent_plugin_api::ErrorKind;

use crate::config::Config;
use crate::plugins::dispatch::{Dispatcher, RequestContext};
use crate::plugins::pipeline::Needed;
use crate::plugins::wake::Waker;
use crate::plugins::{self, Loaded};

const COMMAND: &str = "resetnetwork";

/// Prints the response; `Ok(true)` when the command succeeded.
pub(crate) fn reset_network(config: &Config) -> Result<bool> {
    let loaded = plugins::load_once(config, &Needed::everything());
    let (response, ok) = run(config, &loaded)?;
    drop(loaded);
    if !response.is_empty() {
        println!("{response}");
    }
    Ok(ok)
}

/// The response text and whether the command succeeded.
fn run(config: &Config, loaded: &Loaded) -> Result<(String, bool)> {
    let registry = &loaded.registry;
    let mut candidates = Vec::new();
    for channel in &config.channels {
        if let Some(exchange) = registry.exchanges.get(&channel.exchange) {
            candidates.push((channel, &exchange.object));
        }
    }
    let Some(first) = candidates.first() else {
        bail!("no configured channel has a loaded exchange to read metadata from");
    };
    let (channel, exchange) = candidates
        .iter()
        .find(|(_, exchange)| {
            matches!(
                exchange.metadata_list(RStr::from_str("vm-data/networking")),
                RResult::ROk(ref keys) if !keys.is_empty()
            )
        })
        .unwrap_or(first);
    let name = channel.name();
    let parser = registry.table.parsers.get(&channel.parser).ok_or_else(|| {
        anyhow!(
            "channel {name}: no plugin provides parser '{}'",
            channel.parser
        )
    })?;
    tracing::info!("resetnetwork with the metadata of channel {name}");
    let waker = Waker::default();
    let dispatcher = Dispatcher {
        table: &registry.table,
        policy: &loaded.policy,
        waker: &waker,
        context: RequestContext {
            channel: &name,
            exchange,
        },
    };
    let call = FfiParsedCall {
        command: COMMAND.into(),
        arguments: "\"\"".into(),
        context: "".into(),
    };
    let outcome = dispatcher.dispatch(&call);
    match ErrorKind::from_u8(outcome.kind) {
        _ if outcome.kind == 0 => {}
        ErrorKind::UnknownCommand => bail!("no loaded plugin provides the {COMMAND} command"),
        ErrorKind::Disabled if outcome.text.is_empty() => {
            bail!("{COMMAND} is denied by [commands] deny")
        }
        ErrorKind::Disabled => bail!("{COMMAND} is disabled: {}", outcome.text),
        _ => {}
    }
    let encoded = parser
        .object
        .encode(call.command.as_rstr(), call.context.as_rstr(), &outcome);
    let encoded = match encoded.into_result() {
        Ok(encoded) => encoded.into_option().map(Vec::from).unwrap_or_default(),
        Err(e) => bail!(
            "parser '{}' failed to encode the response: {e}",
            channel.parser
        ),
    };
    Ok((compact(&encoded), outcome.kind == 0))
}

/// The response on one line: compact JSON when it is JSON.
fn compact(response: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(response) {
        Ok(json) => json.to_string(),
        Err(_) => String::from_utf8_lossy(response).trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_responses_print_compact_and_others_as_text() {
        assert_eq!(
            compact(br#"{"message": "", "returncode": "0"}"#),
            r#"{"message":"","returncode":"0"}"#
        );
        assert_eq!(compact(b"OK\n"), "OK");
    }
}
