//! The `core` plugin: commands `version` and `features`.
//!
//! It answers from what the agent tells it and touches nothing else. It takes
//! no config keys.

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::config::no_keys;
use serde_json::{json, Value};

/// `version`: the agent's version; the arguments (hosts send `"agent"`) are
/// ignored.
struct Version {
    host: Host,
}

impl Command for Version {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!(self.host.agent_version()))
    }
}

/// `features`: every command a request may call, sorted and joined by ","
/// without spaces (the host splits on "," and does not strip).
struct Features {
    host: Host,
}

impl Command for Features {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!(self.host.enabled_commands().join(",")))
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("core", &config)?;
    Ok(Provides::new()
        .command("version", Version { host: host.clone() })
        .command("features", Features { host }))
}

export_plugin! {
    name: "core",
    description: "the agent's version and the list of its commands",
    provides: { commands: ["version", "features"] },
    init: init,
}

#[cfg(test)]
mod tests {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};
    use serde_json::json;

    fn agent(host: TestHost) -> TestAgent {
        TestAgent::new(host)
            .with_plugin(super::init, json!({}))
            .unwrap()
    }

    #[test]
    fn version_answers_the_agent_version_whatever_the_arguments() {
        let agent = agent(TestHost::new("/").with_agent_version("2.0.0"));
        for arguments in [r#""agent""#, r#""""#, "{}"] {
            assert_eq!(
                agent.run("version", arguments).result,
                Ok(r#""2.0.0""#.to_owned())
            );
        }
    }

    #[test]
    fn features_lists_the_enabled_commands_sorted_without_spaces_or_denied_ones() {
        let host = TestHost::new("/")
            .with_commands(["password", "keyinit", "kmsactivate"])
            .with_deny(["kmsactivate"]);
        let agent = agent(host);
        assert_eq!(
            agent.run("features", r#""""#).result,
            Ok(r#""features,keyinit,password,version""#.to_owned())
        );
    }

    #[test]
    fn any_config_key_is_refused() {
        let error = TestAgent::new(TestHost::new("/"))
            .with_plugin(super::init, json!({"verbose": true}))
            .err()
            .unwrap();
        assert_eq!(
            error.message(),
            "[plugins.core] takes no keys; found 'verbose'"
        );
    }
}
