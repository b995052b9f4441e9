//! The dispatcher a parser calls to run a command.
//!
//! Architecture invariant: this is the only place that decides whether a
//! command may run (`[commands] deny`); a denied command reads as unknown.
//! It never logs a request's value or a reply's message: they carry
//! passwords, keys and ciphertexts.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use nova_agent_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr},
};
use nova_agent_plugin_api::ffi::{FfiCall_TO, FfiDispatch};
use nova_agent_plugin_api::{PluginError, Reply};

use crate::host::RequestContext;
use crate::registry::Registry;

pub struct Dispatcher<'a> {
    pub registry: &'a Registry,
    pub deny: &'a BTreeSet<String>,
    pub context: RequestContext<'a>,
}

impl Dispatcher<'_> {
    fn run_command(&self, name: &str, value_json: &str) -> Option<Reply> {
        if self.deny.contains(name) {
            tracing::info!(
                channel = self.context.channel,
                "command {name:?} is denied by [commands] deny"
            );
            return None;
        }
        let Some(command) = self.registry.commands.get(name) else {
            tracing::info!(channel = self.context.channel, "unknown command {name:?}");
            return None;
        };
        let started = Instant::now();
        let call = FfiCall_TO::from_ptr(&self.context, TD_Opaque);
        let reply = match command.object.run(call, RStr::from_str(value_json)) {
            RResult::ROk(reply) => reply,
            RResult::RErr(PluginError::Failed(message)) => Reply::error(message),
            RResult::RErr(PluginError::Panicked(message)) => {
                tracing::error!(
                    channel = self.context.channel,
                    plugin = command.plugin(),
                    command = name,
                    "command {name:?} panicked: {message}"
                );
                Reply::error(format!(
                    "command '{name}' failed unexpectedly; see the agent's log"
                ))
            }
        };
        command
            .instance
            .count(matches!(reply.code.as_str(), "0" | "D0"));
        tracing::info!(
            channel = self.context.channel,
            plugin = command.plugin(),
            command = name,
            "command {name:?} answered {} in {:.1?}",
            reply.code,
            started.elapsed()
        );
        Some(reply)
    }
}

impl FfiDispatch for Dispatcher<'_> {
    fn run(&self, command: RStr<'_>, value_json: RStr<'_>) -> ROption<Reply> {
        // Runs inside the parser's call stack, behind an extern "C" frame.
        catch_unwind(AssertUnwindSafe(|| {
            self.run_command(command.as_str(), value_json.as_str())
        }))
        .unwrap_or_else(|_| Some(Reply::error("internal error in the agent's dispatcher")))
        .into()
    }
}
