//! Test fixture: `read-metadata` answers the metadata value of the key it is
//! given (a JSON string), `list-metadata` the names under a directory joined
//! by ",", both through the request's own channel; `nap` sleeps the given
//! number of milliseconds (at most 10 000) before answering. Lets the
//! end-to-end tests see an exchange's metadata and hold a request in flight.

use std::time::Duration;

use nova_agent_plugin_api::{export_plugin, Call, Command, Host, PluginError, Provides, Reply};

fn string_value(call: &Call<'_>) -> Result<String, PluginError> {
    let text = call.value_json().trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains(['"', '\\']))
        .map(str::to_owned)
        .ok_or_else(|| PluginError::failed("the value must be a plain JSON string"))
}

struct ReadMetadata;

impl Command for ReadMetadata {
    fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
        let key = string_value(call)?;
        Ok(match call.metadata_read(&key)? {
            Some(value) => Reply::ok(value),
            None => Reply::new("404", format!("no metadata key {key}")),
        })
    }
}

struct ListMetadata;

impl Command for ListMetadata {
    fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
        let dir = string_value(call)?;
        Ok(Reply::ok(call.metadata_list(&dir)?.join(",")))
    }
}

struct Nap;

impl Command for Nap {
    fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
        let millis: u64 = call
            .value_json()
            .trim()
            .parse()
            .map_err(|_| PluginError::failed("the value must be a number of milliseconds"))?;
        std::thread::sleep(Duration::from_millis(millis.min(10_000)));
        tracing::info!("nap of {millis} ms done");
        Ok(Reply::ok(format!("slept {millis} ms")))
    }
}

fn init(_host: Host, _config_json: &str) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("read-metadata", ReadMetadata)
        .command("list-metadata", ListMetadata)
        .command("nap", Nap))
}

export_plugin! {
    name: "probe-fixture",
    description: "test fixture: metadata through the channel, and a slow command",
    exchanges: [],
    parsers: [],
    commands: ["read-metadata", "list-metadata", "nap"],
    init: init,
}
