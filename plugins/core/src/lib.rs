//! The `core` plugin: commands `version` and `features`.
//!
//! It answers from what the agent tells it and touches nothing else.

use nova_agent_plugin_api::{export_plugin, Call, Command, Host, PluginError, Provides, Reply};

/// `version`: the agent's version; the value (hosts send `"agent"`) is ignored.
struct Version {
    host: Host,
}

impl Command for Version {
    fn run(&self, _call: &Call<'_>) -> Result<Reply, PluginError> {
        Ok(Reply::ok(self.host.agent_version()))
    }
}

/// `features`: every command a request may call, joined by "," without spaces
/// (the host splits on "," and does not strip).
struct Features {
    host: Host,
}

impl Command for Features {
    fn run(&self, _call: &Call<'_>) -> Result<Reply, PluginError> {
        Ok(Reply::ok(self.host.command_names().join(",")))
    }
}

fn init(host: Host, config_json: &str) -> Result<Provides, PluginError> {
    if !matches!(config_json.trim(), "{}" | "") {
        return Err(PluginError::failed("[plugins.core] takes no keys"));
    }
    Ok(Provides::new()
        .command("version", Version { host: host.clone() })
        .command("features", Features { host }))
}

export_plugin! {
    name: "core",
    description: "the agent's version and the list of its commands",
    exchanges: [],
    parsers: [],
    commands: ["version", "features"],
    init: init,
}
