//! Test fixture: `read-metadata` answers the metadata value of the key it is
//! given (a JSON string), `list-metadata` the names under a directory joined
//! by ",", both through the request's own channel; `nap` sleeps the given
//! number of milliseconds (at most 10 000) before answering. Lets the
//! end-to-end tests see an exchange's metadata and hold a request in flight.

use std::time::Duration;

use nova_agent_plugin_api::serde_json::{json, Value};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};

fn string_value(call: &Call<'_>) -> Result<String, CommandError> {
    call.parse_arguments()
        .map_err(|_| CommandError::bad_arguments("the value must be a JSON string"))
}

struct ReadMetadata;

impl Command for ReadMetadata {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let key = string_value(call)?;
        match call.metadata_read(&key)? {
            Some(value) => Ok(json!(value)),
            None => Err(CommandError::not_found(format!("no metadata key {key}"))),
        }
    }
}

struct ListMetadata;

impl Command for ListMetadata {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let dir = string_value(call)?;
        Ok(json!(call.metadata_list(&dir)?.join(",")))
    }
}

struct Nap;

impl Command for Nap {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let millis: u64 = call.parse_arguments().map_err(|_| {
            CommandError::bad_arguments("the value must be a number of milliseconds")
        })?;
        std::thread::sleep(Duration::from_millis(millis.min(10_000)));
        tracing::info!("nap of {millis} ms done");
        Ok(json!(format!("slept {millis} ms")))
    }
}

fn init(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("read-metadata", ReadMetadata)
        .command("list-metadata", ListMetadata)
        .command("nap", Nap))
}

export_plugin! {
    name: "probe-fixture",
    description: "test fixture: metadata through the channel, and a slow command",
    provides: { commands: ["read-metadata", "list-metadata", "nap"] },
    init: init,
}
