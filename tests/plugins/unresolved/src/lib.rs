//! Test fixture: a plugin whose command calls a function no library defines.

use nova_agent_plugin_api::serde_json::{json, Value};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};

extern "C" {
    fn nova_agent_test_missing_symbol() -> i32;
}

struct Missing;

impl Command for Missing {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        // SAFETY: it is not; the agent must never get here.
        let n = unsafe { nova_agent_test_missing_symbol() };
        Ok(json!(n.to_string()))
    }
}

fn init(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new().command("missing", Missing))
}

export_plugin! {
    name: "unresolved-fixture",
    description: "test fixture: calls an undefined symbol",
    provides: { commands: ["missing"] },
    init: init,
}
