//! The registry: every exchange, parser and command by name, each with the
//! plugin it came from, and the record of every plugin file.
//!
//! A registry is immutable once built; the agent publishes it behind an
//! `ArcSwap` and a request holds one snapshot for its whole life.
//!
//! Architecture invariant: a name has exactly one provider here; conflicts are
//! resolved (by `[commands] prefer`, else first in file-name order) and
//! recorded when the registry is built, never at dispatch time.

use std::collections::BTreeMap;
use std::sync::Arc;

use nova_agent_plugin_api::abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use nova_agent_plugin_api::ffi::{CommandBox, ExchangeBox, LifecycleBox, ParserBox};

use crate::config::Config;
use crate::host::AgentHost;
use crate::loader::{Inspection, PluginRecord, State};

/// An object and the plugin that provides it.
pub struct Provided<T> {
    pub plugin: String,
    pub object: Arc<T>,
}

impl<T> Clone for Provided<T> {
    fn clone(&self) -> Self {
        Provided {
            plugin: self.plugin.clone(),
            object: Arc::clone(&self.object),
        }
    }
}

/// Two or more plugins providing one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kind: &'static str,
    pub name: String,
    /// In file-name order.
    pub plugins: Vec<String>,
    pub chosen: String,
    /// "prefer" when `[commands] prefer` decided, "first" otherwise.
    pub decided_by: &'static str,
}

pub struct Registry {
    pub plugins: Vec<PluginRecord>,
    pub exchanges: BTreeMap<String, Provided<ExchangeBox>>,
    pub parsers: BTreeMap<String, Provided<ParserBox>>,
    pub commands: BTreeMap<String, Provided<CommandBox>>,
    pub conflicts: Vec<Conflict>,
    lifecycles: Vec<(String, LifecycleBox)>,
}

impl Registry {
    /// Initialises every opened, enabled plugin with its config table and
    /// resolves name conflicts.
    pub fn build(inspection: Inspection, config: &Config, host: &AgentHost) -> Registry {
        let Inspection {
            mut records,
            opened,
            ..
        } = inspection;
        let mut exchanges = Candidates::default();
        let mut parsers = Candidates::default();
        let mut commands = Candidates::default();
        let mut lifecycles = Vec::new();

        for (index, root) in opened {
            let record = &mut records[index];
            let name = record.manifest.name.clone();
            if !config.plugin_enabled(&name) {
                record.state = State::Disabled;
                record.error = Some(format!("disabled by [plugins.{name}] enabled = false"));
                continue;
            }
            let json = config.plugin_json(&name);
            let instance = match (root.init())(host.to_ffi(), RStr::from_str(json)) {
                RResult::ROk(instance) => instance,
                RResult::RErr(e) => {
                    tracing::warn!(plugin = %name, "plugin init failed: {e}");
                    record.set_error(format!("init failed: {e}"));
                    continue;
                }
            };
            let mismatch = [
                (
                    "exchanges",
                    names(&instance.exchanges),
                    &record.manifest.exchanges,
                ),
                (
                    "parsers",
                    names(&instance.parsers),
                    &record.manifest.parsers,
                ),
                (
                    "commands",
                    names(&instance.commands),
                    &record.manifest.commands,
                ),
            ]
            .into_iter()
            .find(|(_, got, declared)| !same_names(got, declared));
            if let Some((kind, got, declared)) = mismatch {
                let reason = format!(
                    "init provided {kind} [{}] but the manifest declares [{}]",
                    got.join(", "),
                    declared.join(", ")
                );
                tracing::warn!(plugin = %name, "plugin skipped: {reason}");
                record.set_error(reason);
                instance.lifecycle.shutdown();
                continue;
            }
            for t in instance.exchanges {
                exchanges.add(t.0.into(), &name, t.1);
            }
            for t in instance.parsers {
                parsers.add(t.0.into(), &name, t.1);
            }
            for t in instance.commands {
                commands.add(t.0.into(), &name, t.1);
            }
            lifecycles.push((name, instance.lifecycle));
        }

        let mut conflicts = Vec::new();
        let no_preference = BTreeMap::new();
        let registry = Registry {
            exchanges: exchanges.resolve("exchange", &no_preference, &mut conflicts),
            parsers: parsers.resolve("parser", &no_preference, &mut conflicts),
            commands: commands.resolve("command", &config.prefer, &mut conflicts),
            conflicts,
            plugins: records,
            lifecycles,
        };
        registry.warn_about_config(config);
        registry
    }

    /// Command names a request may call: all but the denied ones, sorted.
    pub fn callable_commands(&self, config: &Config) -> Vec<String> {
        self.commands
            .keys()
            .filter(|name| !config.deny.contains(*name))
            .cloned()
            .collect()
    }

    /// Tells every plugin instance it is retired (their exchanges first).
    pub fn shutdown(&self) {
        for (plugin, lifecycle) in &self.lifecycles {
            tracing::debug!(plugin = %plugin, "shutting down plugin");
            lifecycle.shutdown();
        }
    }

    fn warn_about_config(&self, config: &Config) {
        for table in config.plugins.keys() {
            if !self.plugins.iter().any(|p| &p.manifest.name == table) {
                tracing::warn!(
                    "[plugins.{table}] configures a plugin that is not installed; ignored"
                );
            }
        }
        for (command, plugin) in &config.prefer {
            let provides = self
                .plugins
                .iter()
                .any(|p| &p.manifest.name == plugin && p.manifest.commands.contains(command));
            if !provides {
                tracing::warn!(
                    "[commands] prefer names plugin '{plugin}' for '{command}', which it does not provide"
                );
            }
        }
    }
}

/// The conflicts among the plugins' manifests, for listing without `init`.
pub fn manifest_conflicts(plugins: &[PluginRecord], config: &Config) -> Vec<Conflict> {
    let mut exchanges = Candidates::default();
    let mut parsers = Candidates::default();
    let mut commands = Candidates::default();
    for plugin in plugins.iter().filter(|p| p.state == State::Loaded) {
        let m = &plugin.manifest;
        m.exchanges
            .iter()
            .for_each(|n| exchanges.add(n.clone(), &m.name, ()));
        m.parsers
            .iter()
            .for_each(|n| parsers.add(n.clone(), &m.name, ()));
        m.commands
            .iter()
            .for_each(|n| commands.add(n.clone(), &m.name, ()));
    }
    let mut conflicts = Vec::new();
    exchanges.resolve("exchange", &BTreeMap::new(), &mut conflicts);
    parsers.resolve("parser", &BTreeMap::new(), &mut conflicts);
    commands.resolve("command", &config.prefer, &mut conflicts);
    conflicts
}

fn names<T>(list: &RVec<Tuple2<RString, T>>) -> Vec<String> {
    list.iter().map(|t| t.0.to_string()).collect()
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Every provider of each name, in load order.
struct Candidates<T>(BTreeMap<String, Vec<Provided<T>>>);

impl<T> Default for Candidates<T> {
    fn default() -> Self {
        Candidates(BTreeMap::new())
    }
}

impl<T> Candidates<T> {
    fn add(&mut self, name: String, plugin: &str, object: T) {
        self.0.entry(name).or_default().push(Provided {
            plugin: plugin.to_owned(),
            object: Arc::new(object),
        });
    }

    fn resolve(
        self,
        kind: &'static str,
        prefer: &BTreeMap<String, String>,
        conflicts: &mut Vec<Conflict>,
    ) -> BTreeMap<String, Provided<T>> {
        let mut chosen = BTreeMap::new();
        for (name, mut providers) in self.0 {
            if providers.len() > 1 {
                let preferred = prefer
                    .get(&name)
                    .and_then(|p| providers.iter().position(|c| &c.plugin == p));
                let conflict = Conflict {
                    kind,
                    name: name.clone(),
                    plugins: providers.iter().map(|p| p.plugin.clone()).collect(),
                    chosen: providers[preferred.unwrap_or(0)].plugin.clone(),
                    decided_by: if preferred.is_some() {
                        "prefer"
                    } else {
                        "first"
                    },
                };
                if preferred.is_some() {
                    tracing::info!(
                        "{kind} '{name}' is provided by plugins {}; using '{}' as [commands] prefer says",
                        conflict.plugins.join(", "),
                        conflict.chosen
                    );
                } else {
                    tracing::warn!(
                        "{kind} '{name}' is provided by plugins {}; using '{}' (first in file-name order); \
                         choose with [commands] prefer = {{ {name} = \"<plugin>\" }}",
                        conflict.plugins.join(", "),
                        conflict.chosen
                    );
                }
                conflicts.push(conflict);
                let winner = providers.swap_remove(preferred.unwrap_or(0));
                chosen.insert(name, winner);
            } else if let Some(only) = providers.pop() {
                chosen.insert(name, only);
            }
        }
        chosen
    }
}
