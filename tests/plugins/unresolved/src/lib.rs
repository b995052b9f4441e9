//! Test fixture: a plugin whose command calls a function no library defines.

use nova_agent_plugin_api::{export_plugin, Call, Command, Host, PluginError, Provides, Reply};

extern "C" {
    fn nova_agent_test_missing_symbol() -> i32;
}

struct Missing;

impl Command for Missing {
    fn run(&self, _call: &Call<'_>) -> Result<Reply, PluginError> {
        // SAFETY: it is not; the agent must never get here.
        let n = unsafe { nova_agent_test_missing_symbol() };
        Ok(Reply::ok(n.to_string()))
    }
}

fn init(_host: Host, _config_json: &str) -> Result<Provides, PluginError> {
    Ok(Provides::new().command("missing", Missing))
}

export_plugin! {
    name: "unresolved-fixture",
    description: "test fixture: calls an undefined symbol",
    exchanges: [],
    parsers: [],
    commands: ["missing"],
    init: init,
}
