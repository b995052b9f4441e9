//! The plugin core, which knows no protocol and opens no transport:
//!
//! - [`loader`]: plugin directories → trusted, ABI-checked, opened modules;
//! - [`instance`]: one initialised generation of a plugin, retired when its
//!   last reference drops; [`record`]: what became of one file;
//! - [`pipeline`]: the one loader pipeline (open, name rule, `enabled`,
//!   `init`), for a running agent's reloads and for the one-shot commands
//!   alike ([`load_once`]);
//! - [`registry`]: the serving generations by name, conflicts resolved, and
//!   the table the request path reads;
//! - [`dispatch`]: runs a decoded call, and the policy (`deny`, gates) it
//!   alone applies; [`gates`]: the gates' state, kept across restarts;
//!   [`host`]: what plugins get from the agent;
//! - [`view`]: what `plugins list` and `plugins reload` show, as data;
//! - [`wake`]: how a command's first call reaches the agent to load its
//!   plugin.

pub(crate) mod dispatch;
pub(crate) mod gates;
pub(crate) mod host;
pub(crate) mod instance;
pub(crate) mod isolated;
pub(crate) mod loader;
pub(crate) mod pipeline;
pub(crate) mod record;
pub(crate) mod registry;
pub(crate) mod view;
pub(crate) mod wake;

#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use dispatch::Policy;
use host::AgentHost;
use pipeline::{Inputs, Memory, Needed};
use registry::{Registry, Table};

/// The plugins as one pass of the loader left them, in a process that does
/// not serve (`plugins list` without an agent, `config check`,
/// `resetnetwork`). Dropping it retires every generation.
pub(crate) struct Loaded {
    pub(crate) registry: Registry,
    pub(crate) policy: Arc<Policy>,
    /// What the plugins' host reads; it holds the registry's table.
    _serving: Arc<ArcSwap<Table>>,
}

/// One pass of the loader over the plugin files, in place (without staged
/// copies), loading what `needed` says and leaving the rest installed; then
/// names resolved. Nothing loads later: this process sets no waker.
pub(crate) fn load_once(config: &Config, needed: &Needed) -> Loaded {
    let gates = gates::Gates::recorded_read_only(&config.state_dir);
    let policy = Arc::new(Policy::with_gates(config.deny.clone(), gates));
    let serving = Arc::new(ArcSwap::from_pointee(Table::default()));
    let host = AgentHost::new(
        &config.root,
        &config.state_dir,
        config.apply,
        &policy,
        &serving,
        &Arc::default(),
    );
    let inputs = Inputs {
        config,
        host: &host,
        staging: None,
        retry: false,
        needed,
    };
    let nothing = Registry::assemble(Vec::new(), BTreeMap::new(), &[], config);
    let found = pipeline::pass(&nothing, &inputs, &mut Memory::default());
    for line in &found.report.failed {
        tracing::warn!("plugin not loaded: {line}");
    }
    let mut registry = Registry::assemble(found.records, BTreeMap::new(), &[], config);
    registry.dir_problems = found.dir_problems;
    registry.warn_about_config(config);
    serving.store(Arc::clone(&registry.table));
    Loaded {
        registry,
        policy,
        _serving: serving,
    }
}
