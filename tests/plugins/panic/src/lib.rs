//! Test fixture: command `panic` panics, command `calm` answers "0", command
//! `hang` does not return for two minutes. Proves a panic in a plugin becomes
//! a "500" and the agent keeps serving, and that a command that does not
//! return cannot keep the agent from stopping.

use nova_agent_plugin_api::serde_json::{json, Value};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};

struct Panics;

impl Command for Panics {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        panic!("the panic fixture panics on purpose")
    }
}

struct Calm;

impl Command for Calm {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!(format!("calm: {}", call.arguments())))
    }
}

struct Hang;

impl Command for Hang {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::info!("hang: not returning for two minutes");
        std::thread::sleep(std::time::Duration::from_secs(120));
        Ok(json!("done"))
    }
}

fn init(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("panic", Panics)
        .command("calm", Calm)
        .command("hang", Hang))
}

export_plugin! {
    name: "panic-fixture",
    description: "test fixture: `panic` panics, `calm` does not, `hang` hangs",
    provides: { commands: ["panic", "calm", "hang"] },
    init: init,
}
