// The hot-swap fixture, shared by its builds: each build's lib.rs defines
// `BUILD` (the answer's tag) and `INIT_ERROR` and includes this file.
//
// Config: `ready_file = "PATH"` makes `init` fail while PATH does not exist,
// so a test can fail and fix an init without touching the plugin directory.

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use serde_json::{json, Value};

struct Version;

impl Command for Version {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!(format!("swap-{BUILD}")))
    }
}

struct Features;

impl Command for Features {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!(format!("version,features from swap-{BUILD}")))
    }
}

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    if let Some(reason) = INIT_ERROR {
        return Err(PluginError::failed(reason));
    }
    if let Some(ready) = config["ready_file"].as_str() {
        if !std::path::Path::new(ready).exists() {
            return Err(PluginError::failed(format!("waiting for {ready}")));
        }
    }
    Ok(Provides::new()
        .command("version", Version)
        .command("features", Features))
}

export_plugin! {
    name: "swap-fixture",
    description: "test fixture: answers version and features with its build's tag",
    provides: { commands: ["version", "features"] },
    init: init,
}
