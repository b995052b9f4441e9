//! The registry: every exchange, parser, command and gate by name, each with
//! the plugin generation it came from, and the record of every plugin file.
//!
//! A registry is immutable once built. Its [`Table`] (parsers, commands,
//! gates) is what the request path reads: the agent publishes it behind an
//! `ArcSwap`, and a request holds one snapshot for its whole life, which
//! keeps the generations serving it alive. The exchanges are not in it: only
//! a channel uses an exchange, and holds it while its workers run.
//!
//! Architecture invariant: a name has exactly one provider here; conflicts are
//! resolved (by `[commands] prefer`, else first in file-name order) and
//! recorded when the registry is built, never at dispatch time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use nova_agent_plugin_api::ffi::{ExchangeBox, ParserBox};
use nova_agent_plugin_api::Gate;

use crate::config::Config;
use crate::plugins::instance::{CommandEntry, Instance};
use crate::plugins::record::PluginRecord;

/// An object and the plugin generation that provides it.
pub(crate) struct Provided<T> {
    pub(crate) instance: Arc<Instance>,
    pub(crate) object: Arc<T>,
}

impl<T> Provided<T> {
    pub(crate) fn plugin(&self) -> &str {
        self.instance.name()
    }
}

impl<T> Clone for Provided<T> {
    fn clone(&self) -> Self {
        Provided {
            instance: Arc::clone(&self.instance),
            object: Arc::clone(&self.object),
        }
    }
}

/// Two or more plugins providing one name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Conflict {
    pub(crate) kind: String,
    pub(crate) name: String,
    /// In file-name order.
    pub(crate) plugins: Vec<String>,
    pub(crate) chosen: String,
    /// "prefer" when `[commands] prefer` decided, "first" otherwise.
    pub(crate) decided_by: String,
}

/// Earlier generations of one plugin, retired but still mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Superseded {
    pub(crate) generations: u64,
    pub(crate) mapped_bytes: u64,
    pub(crate) served: u64,
    pub(crate) failed: u64,
}

/// What the request path reads: parsers, commands and gates by name.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) parsers: BTreeMap<String, Provided<ParserBox>>,
    pub(crate) commands: BTreeMap<String, Provided<CommandEntry>>,
    /// The gates the serving plugins declare, by name.
    pub(crate) gates: BTreeMap<String, Gate>,
    /// Commands of plugins installed but not loaded: the first call loads
    /// the plugin.
    pub(crate) asleep: BTreeMap<String, Asleep>,
    /// Gates only plugins not loaded declare, with the plugin to load for
    /// each.
    pub(crate) asleep_gates: BTreeMap<String, String>,
}

/// A command whose plugin is not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asleep {
    pub(crate) plugin: String,
    /// Why its plugin could not be loaded; until a reload tries again, its
    /// commands answer this.
    pub(crate) error: Option<String>,
}

/// Who provides a command name: a loaded plugin, or one that loads at first
/// use.
enum Route {
    Loaded(Provided<CommandEntry>),
    Asleep(Asleep),
}

pub(crate) struct Registry {
    /// Every plugin file, in load order; a serving file's record holds its
    /// instance.
    pub(crate) plugins: Vec<PluginRecord>,
    pub(crate) exchanges: BTreeMap<String, Provided<ExchangeBox>>,
    pub(crate) table: Arc<Table>,
    pub(crate) conflicts: Vec<Conflict>,
    /// By plugin name (running agent only).
    pub(crate) superseded: BTreeMap<String, Superseded>,
    /// Plugin directories that cannot be read, with the reason.
    pub(crate) dir_problems: Vec<(PathBuf, String)>,
}

impl Registry {
    /// The registry of the instances the records hold, with name conflicts
    /// resolved; conflicts already in `known` are not logged again.
    pub(crate) fn assemble(
        plugins: Vec<PluginRecord>,
        superseded: BTreeMap<String, Superseded>,
        known: &[Conflict],
        config: &Config,
    ) -> Registry {
        let mut exchanges = Candidates::default();
        let mut parsers = Candidates::default();
        let mut commands = Candidates::default();
        let mut gates = Candidates::default();
        let mut asleep_gates = BTreeMap::new();
        for record in &plugins {
            if let Some(instance) = &record.instance {
                for (name, object) in &instance.exchanges {
                    exchanges.offer(name, instance, object);
                }
                for (name, object) in &instance.parsers {
                    parsers.offer(name, instance, object);
                }
                for (name, object) in &instance.commands {
                    let provided = Provided {
                        instance: Arc::clone(instance),
                        object: Arc::clone(object),
                    };
                    commands.add(name, instance.name(), Route::Loaded(provided));
                }
                for gate in &instance.gates {
                    gates.add(&gate.name, instance.name(), gate.clone());
                }
            } else if let Some(declared) = record.declared_while_unloaded() {
                let plugin = &record.manifest.name;
                let asleep = Asleep {
                    plugin: plugin.clone(),
                    error: record.error.clone().filter(|_| record.failed_to_load),
                };
                for name in &declared.commands {
                    commands.add(name, plugin, Route::Asleep(asleep.clone()));
                }
                for gate in &declared.gates {
                    asleep_gates
                        .entry(gate.clone())
                        .or_insert_with(|| plugin.clone());
                }
            }
        }
        let mut conflicts = Vec::new();
        let no_preference = BTreeMap::new();
        let exchanges = exchanges.resolve("exchange", &no_preference, known, &mut conflicts);
        let mut table = Table {
            parsers: parsers.resolve("parser", &no_preference, known, &mut conflicts),
            gates: gates.resolve("gate", &no_preference, known, &mut conflicts),
            ..Table::default()
        };
        let routes = commands.resolve("command", &config.prefer, known, &mut conflicts);
        for (name, route) in routes {
            match route {
                Route::Loaded(provided) => {
                    table.commands.insert(name, provided);
                }
                Route::Asleep(asleep) => {
                    table.asleep.insert(name, asleep);
                }
            }
        }
        asleep_gates.retain(|gate, _| !table.gates.contains_key(gate));
        table.asleep_gates = asleep_gates;
        Registry {
            exchanges,
            table: Arc::new(table),
            conflicts,
            plugins,
            superseded,
            dir_problems: Vec::new(),
        }
    }

    /// The serving instances, in load order.
    pub(crate) fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.plugins.iter().filter_map(|p| p.instance.as_ref())
    }

    /// Warns about config tables and preferences no plugin matches.
    pub(crate) fn warn_about_config(&self, config: &Config) {
        for table in config.plugins.keys() {
            if !self.plugins.iter().any(|p| &p.manifest.name == table) {
                tracing::warn!(
                    "[plugins.{table}] configures a plugin that is not installed; ignored"
                );
            }
        }
        for name in &config.isolation.process {
            if !self.plugins.iter().any(|p| &p.manifest.name == name) {
                tracing::warn!(
                    "[isolation] process names plugin '{name}', which is not installed; ignored"
                );
            }
        }
        for (command, plugin) in &config.prefer {
            let provides = self
                .instances()
                .any(|i| i.name() == plugin && i.commands.iter().any(|(name, _)| name == command))
                || self.plugins.iter().any(|r| {
                    &r.manifest.name == plugin
                        && r.declared_while_unloaded()
                            .is_some_and(|d| d.commands.contains(command))
                });
            if !provides {
                tracing::warn!(
                    "[commands] prefer names plugin '{plugin}' for '{command}', which it does not provide"
                );
            }
        }
    }
}

/// Every provider of each name, in load order: `(plugin name, payload)`.
struct Candidates<P>(BTreeMap<String, Vec<(String, P)>>);

impl<P> Default for Candidates<P> {
    fn default() -> Self {
        Candidates(BTreeMap::new())
    }
}

impl<T> Candidates<Provided<T>> {
    fn offer(&mut self, name: &str, instance: &Arc<Instance>, object: &Arc<T>) {
        let provided = Provided {
            instance: Arc::clone(instance),
            object: Arc::clone(object),
        };
        self.add(name, instance.name(), provided);
    }
}

impl<P> Candidates<P> {
    fn add(&mut self, name: &str, plugin: &str, payload: P) {
        self.0
            .entry(name.to_owned())
            .or_default()
            .push((plugin.to_owned(), payload));
    }

    /// One provider per name; conflicts not in `known` are logged.
    fn resolve(
        self,
        kind: &'static str,
        prefer: &BTreeMap<String, String>,
        known: &[Conflict],
        conflicts: &mut Vec<Conflict>,
    ) -> BTreeMap<String, P> {
        let mut chosen = BTreeMap::new();
        for (name, mut providers) in self.0 {
            if providers.len() > 1 {
                let preferred = prefer
                    .get(&name)
                    .and_then(|p| providers.iter().position(|(plugin, _)| plugin == p));
                let conflict = Conflict {
                    kind: kind.to_owned(),
                    name: name.clone(),
                    plugins: providers.iter().map(|(plugin, _)| plugin.clone()).collect(),
                    chosen: providers[preferred.unwrap_or(0)].0.clone(),
                    decided_by: if preferred.is_some() {
                        "prefer"
                    } else {
                        "first"
                    }
                    .to_owned(),
                };
                if known.contains(&conflict) {
                } else if preferred.is_some() {
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
                chosen.insert(name, winner.1);
            } else if let Some(only) = providers.pop() {
                chosen.insert(name, only.1);
            }
        }
        chosen
    }
}
