//! The protocol's own commands: `guest-sync`, `guest-sync-delimited`,
//! `guest-ping` and `guest-info`.

use nova_agent_plugin_api::{Call, Command, CommandError, Host, Provides};
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

use crate::no_arguments;

pub(crate) fn provide(provides: Provides, host: &Host) -> Provides {
    provides
        .command("guest-sync", Sync)
        .command("guest-sync-delimited", Sync)
        .command("guest-ping", Ping)
        .command("guest-info", Info { host: host.clone() })
}

/// `guest-sync {id}` and `guest-sync-delimited {id}`: `id`, unchanged. The
/// `qga` parser puts the 0xFF before the delimited one's reply.
struct Sync;

impl Command for Sync {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let id = args.int("id")?;
        args.finish()?;
        Ok(json!(id))
    }
}

/// `guest-ping`: `{}`.
struct Ping;

impl Command for Ping {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        Ok(json!({}))
    }
}

/// `guest-info`: the agent's version and every registered command, with
/// whether a request may call it now (`[commands] deny` and the frozen state
/// turn it off) and whether its success is answered. The Nova commands and
/// vendors' commands are listed too: QGA's `execute` reaches them all.
struct Info {
    host: Host,
}

impl Command for Info {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let commands: Vec<Value> = self
            .host
            .commands()
            .into_iter()
            .map(|command| {
                json!({
                    "name": command.name,
                    "enabled": command.enabled,
                    "success-response": command.success_response,
                })
            })
            .collect();
        Ok(json!({
            "version": self.host.agent_version(),
            "supported_commands": commands,
        }))
    }
}
