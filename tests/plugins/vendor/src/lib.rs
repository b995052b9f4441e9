//! Test fixture: a vendor plugin providing `version` (which `core` provides
//! too) and `vendor-info`, which reports what the host told the plugin.

use nova_agent_plugin_api::serde_json::{json, Value};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};

struct VendorVersion;

impl Command for VendorVersion {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!("vendor"))
    }
}

/// Answers `root=<root> apply=<apply> config=<its table> hostname=<metadata>`.
struct Info {
    host: Host,
    config: String,
}

impl Command for Info {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::info!(target: "vendor_fixture", "vendor-info called");
        let hostname = call.metadata_read("vm-data/hostname")?.unwrap_or_default();
        Ok(json!(format!(
            "root={} apply={} config={} hostname={hostname}",
            self.host.root().display(),
            self.host.apply(),
            self.config
        )))
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new().command("version", VendorVersion).command(
        "vendor-info",
        Info {
            host,
            config: config.to_string(),
        },
    ))
}

export_plugin! {
    name: "vendor-fixture",
    description: "test fixture: a second `version`",
    provides: { commands: ["version", "vendor-info"] },
    init: init,
}
