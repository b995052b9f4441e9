//! The services the agent gives plugins (`FfiHost`): the log bridge, the
//! agent's version, root and `apply`, the command list, and the gates.
//!
//! These run inside a plugin's call stack, behind `extern "C"` frames: a panic
//! here would abort the agent, so each method is guarded.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use nova_agent_plugin_api::ffi::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString, RVec},
};
use nova_agent_plugin_api::ffi::{
    FfiCommandInfo, FfiError, FfiHost, FfiHost_TO, FfiResult, HostBox,
};
use nova_agent_plugin_api::LogLevel;

use crate::logging;
use crate::plugins::dispatch::Policy;
use crate::plugins::registry::Table;
use crate::plugins::wake::Waker;

pub(crate) const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every plugin is told about the agent.
#[derive(Clone)]
pub(crate) struct AgentHost {
    root: String,
    state_dir: String,
    apply: bool,
    policy: Arc<Policy>,
    /// The serving table. Weak: plugins hold their host, and the table holds
    /// the plugins.
    table: Weak<ArcSwap<Table>>,
    /// Loads the plugin of a gate only a plugin not loaded declares.
    waker: Arc<Waker>,
}

impl AgentHost {
    pub(crate) fn new(
        root: &std::path::Path,
        state_dir: &std::path::Path,
        apply: bool,
        policy: &Arc<Policy>,
        table: &Arc<ArcSwap<Table>>,
        waker: &Arc<Waker>,
    ) -> Self {
        AgentHost {
            root: root.to_string_lossy().into_owned(),
            state_dir: state_dir.to_string_lossy().into_owned(),
            apply,
            policy: Arc::clone(policy),
            table: Arc::downgrade(table),
            waker: Arc::clone(waker),
        }
    }

    pub(crate) fn to_ffi(&self) -> HostBox {
        FfiHost_TO::from_value(self.clone(), TD_Opaque)
    }

    /// The serving table; an empty one once the agent has let go of it.
    fn table(&self) -> Arc<Table> {
        self.table
            .upgrade()
            .map(|table| table.load_full())
            .unwrap_or_default()
    }

    /// Every command, loaded or not: one not loaded yet is enabled unless
    /// the policy refuses it or its plugin failed to load, and is assumed
    /// to answer its successes (a plugin declares only names).
    fn command_list(&self) -> Vec<FfiCommandInfo> {
        let table = self.table();
        let loaded = table.commands.iter().map(|(name, command)| {
            let enabled = self.policy.refusal(&table, name).is_none();
            (name, enabled, command.object.success_response)
        });
        let asleep = table.asleep.iter().map(|(name, asleep)| {
            let enabled = asleep.error.is_none() && self.policy.refusal(&table, name).is_none();
            (name, enabled, true)
        });
        let mut list: Vec<FfiCommandInfo> = loaded
            .chain(asleep)
            .map(|(name, enabled, success_response)| FfiCommandInfo {
                name: name.as_str().into(),
                enabled,
                success_response,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The serving table, with the plugin declaring `gate` loaded if only a
    /// plugin not loaded declares it.
    fn table_declaring(&self, gate: &str) -> Arc<Table> {
        let table = self.table();
        match table.asleep_gates.get(gate) {
            Some(plugin) => self.waker.wake(plugin).unwrap_or(table),
            None => table,
        }
    }
}

fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn agent_panicked() -> FfiError {
    FfiError::Panicked("the agent panicked while serving a host request".into())
}

impl FfiHost for AgentHost {
    fn log_enabled(&self, level: u8, target: RStr<'_>) -> bool {
        guarded(false, || {
            logging::plugin_event_enabled(LogLevel(level).to_tracing(), target.as_str())
        })
    }

    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        guarded((), || {
            logging::plugin_event(
                LogLevel(level).to_tracing(),
                target.as_str(),
                message.as_str(),
            )
        })
    }

    fn agent_version(&self) -> RString {
        guarded(RString::new(), || AGENT_VERSION.into())
    }

    fn commands(&self) -> RVec<FfiCommandInfo> {
        guarded(RVec::new(), || self.command_list().into())
    }

    fn root(&self) -> RString {
        guarded(RString::new(), || self.root.as_str().into())
    }

    fn apply(&self) -> bool {
        guarded(false, || self.apply)
    }

    fn set_gate(&self, gate: RStr<'_>, closed: bool) -> FfiResult<()> {
        guarded(RResult::RErr(agent_panicked()), || {
            self.policy
                .set_gate(&self.table_declaring(gate.as_str()), gate.as_str(), closed)
                .map_err(|e| FfiError::Failed(e.into()))
                .into()
        })
    }

    fn gate_closed(&self, gate: RStr<'_>) -> bool {
        guarded(false, || {
            self.policy.gate_closed(&self.table(), gate.as_str())
        })
    }

    fn state_dir(&self) -> RString {
        guarded(RString::new(), || self.state_dir.as_str().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_agent_plugin_api::Gate;

    #[test]
    fn gates_are_set_through_the_serving_table() {
        let policy = Arc::new(Policy::default());
        let serving = Arc::new(ArcSwap::from_pointee(Table::default()));
        let host = AgentHost::new(
            std::path::Path::new("/guest"),
            std::path::Path::new("/guest/state"),
            false,
            &policy,
            &serving,
            &Arc::default(),
        );
        assert_eq!(host.root().as_str(), "/guest");
        assert!(!FfiHost::apply(&host));
        let refused = host.set_gate(RStr::from_str("frozen"), true).into_result();
        assert_eq!(
            refused.unwrap_err(),
            FfiError::Failed("no loaded plugin declares gate 'frozen'".into())
        );

        let mut table = Table::default();
        table.gates.insert("frozen".into(), Gate::new("frozen"));
        serving.store(Arc::new(table));
        host.set_gate(RStr::from_str("frozen"), true).unwrap();
        assert!(host.gate_closed(RStr::from_str("frozen")));
        assert!(policy.refusal(&serving.load(), "anything").is_some());

        // Once the agent lets go of its table, the host answers as empty.
        drop(serving);
        assert!(!host.gate_closed(RStr::from_str("frozen")));
        assert!(FfiHost::commands(&host).is_empty());
    }

    #[test]
    fn plugins_see_every_command_with_whether_it_may_run() {
        let agent = crate::plugins::testing::ToyAgent::new(&crate::plugins::testing::config(
            "lines",
            &["big"],
        ));
        let listed = |host: &AgentHost| -> Vec<(String, bool, bool)> {
            FfiHost::commands(host)
                .iter()
                .map(|c| (c.name.to_string(), c.enabled, c.success_response))
                .collect()
        };
        let entry = |name: &str, enabled, answered| (name.to_owned(), enabled, answered);
        assert_eq!(
            listed(&agent.host),
            [
                entry("big", false, true),
                entry("echo", true, true),
                entry("freeze", true, true),
                entry("panics", true, true),
                entry("quiet", true, false),
            ]
        );
        agent.host.set_gate(RStr::from_str("frozen"), true).unwrap();
        assert_eq!(
            listed(&agent.host),
            [
                entry("big", false, true),
                entry("echo", true, true),
                entry("freeze", true, true),
                entry("panics", false, true),
                entry("quiet", false, false),
            ]
        );
        assert_eq!(agent.host.agent_version().as_str(), AGENT_VERSION);
    }
}
