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

use nova_agent_plugin_api::ffi::{CommandBox, ExchangeBox, ParserBox};

use crate::config::Config;
use crate::host::AgentHost;
use crate::instance::{Instance, Origin};
use crate::loader::{Inspection, PluginRecord, State};

/// An object and the plugin generation that provides it.
pub struct Provided<T> {
    pub instance: Arc<Instance>,
    pub object: Arc<T>,
}

impl<T> Provided<T> {
    pub fn plugin(&self) -> &str {
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
pub struct Conflict {
    pub kind: String,
    pub name: String,
    /// In file-name order.
    pub plugins: Vec<String>,
    pub chosen: String,
    /// "prefer" when `[commands] prefer` decided, "first" otherwise.
    pub decided_by: String,
}

/// Earlier generations of one plugin, retired but still mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Superseded {
    pub generations: u64,
    pub mapped_bytes: u64,
    pub served: u64,
    pub failed: u64,
}

pub struct Registry {
    /// Every plugin file, in load order; a serving file's record holds its
    /// instance.
    pub plugins: Vec<PluginRecord>,
    pub exchanges: BTreeMap<String, Provided<ExchangeBox>>,
    pub parsers: BTreeMap<String, Provided<ParserBox>>,
    pub commands: BTreeMap<String, Provided<CommandBox>>,
    pub conflicts: Vec<Conflict>,
    /// By plugin name (running agent only).
    pub superseded: BTreeMap<String, Superseded>,
    /// Plugin directories that cannot be read, with the reason.
    pub dir_problems: Vec<(std::path::PathBuf, String)>,
}

impl Registry {
    /// Initialises every opened, enabled plugin with its config table and
    /// resolves name conflicts (for the commands that do not serve:
    /// `config check`, `resetnetwork`).
    pub fn build(inspection: Inspection, config: &Config, host: &AgentHost) -> Registry {
        let Inspection {
            mut records,
            opened,
            dir_problems,
        } = inspection;
        for (index, root) in opened {
            let record = &mut records[index];
            if !record.enable(config) {
                continue;
            }
            let origin = Origin {
                file: record.file.clone(),
                ..Origin::default()
            };
            // Offline: the module comes from the file itself.
            match Instance::init(root, record.manifest.clone(), origin, 1, config, host) {
                Ok(instance) => record.instance = Some(Arc::new(instance)),
                Err(e) => {
                    tracing::warn!(plugin = %record.manifest.name, "plugin skipped: {e}");
                    record.set_error(e);
                }
            }
        }
        let mut registry = Registry::assemble(records, BTreeMap::new(), &[], config);
        registry.dir_problems = dir_problems;
        registry.warn_about_config(config);
        registry
    }

    /// The registry of the instances the records hold, with name conflicts
    /// resolved; conflicts already in `known` are not logged again.
    pub fn assemble(
        plugins: Vec<PluginRecord>,
        superseded: BTreeMap<String, Superseded>,
        known: &[Conflict],
        config: &Config,
    ) -> Registry {
        let mut exchanges = Candidates::default();
        let mut parsers = Candidates::default();
        let mut commands = Candidates::default();
        for instance in plugins.iter().filter_map(|p| p.instance.as_ref()) {
            for (name, object) in &instance.exchanges {
                exchanges.offer(name, instance, object);
            }
            for (name, object) in &instance.parsers {
                parsers.offer(name, instance, object);
            }
            for (name, object) in &instance.commands {
                commands.offer(name, instance, object);
            }
        }
        let mut conflicts = Vec::new();
        let no_preference = BTreeMap::new();
        Registry {
            exchanges: exchanges.resolve("exchange", &no_preference, known, &mut conflicts),
            parsers: parsers.resolve("parser", &no_preference, known, &mut conflicts),
            commands: commands.resolve("command", &config.prefer, known, &mut conflicts),
            conflicts,
            plugins,
            superseded,
            dir_problems: Vec::new(),
        }
    }

    /// The serving instances, in load order.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.plugins.iter().filter_map(|p| p.instance.as_ref())
    }

    /// Command names a request may call: all but the denied ones, sorted.
    pub fn callable_commands(&self, config: &Config) -> Vec<String> {
        self.commands
            .keys()
            .filter(|name| !config.deny.contains(*name))
            .cloned()
            .collect()
    }

    /// Tells every plugin instance it is retired.
    pub fn shutdown(&self) {
        for instance in self.instances() {
            instance.shutdown();
        }
    }

    /// Warns about config tables and preferences no plugin matches.
    pub fn warn_about_config(&self, config: &Config) {
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
            .for_each(|n| exchanges.add(n, &m.name, ()));
        m.parsers.iter().for_each(|n| parsers.add(n, &m.name, ()));
        m.commands.iter().for_each(|n| commands.add(n, &m.name, ()));
    }
    let mut conflicts = Vec::new();
    exchanges.resolve("exchange", &BTreeMap::new(), &[], &mut conflicts);
    parsers.resolve("parser", &BTreeMap::new(), &[], &mut conflicts);
    commands.resolve("command", &config.prefer, &[], &mut conflicts);
    conflicts
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
