//! What `plugins list` and `plugins reload` show, as data: the view of a
//! registry (the running agent's, sent over the control socket, or one
//! loaded by the command itself) and a reload's report. The command line
//! only renders them.
//!
//! The live view has, per plugin, the generation serving, the version on
//! disk, when it was loaded, the requests it served, and the superseded
//! generations still mapped; plus each channel. A view without an agent has
//! the files as one pass of the loader found them: `loaded` then means
//! trusted, ABI checked and initialised (no transport opened).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::plugins::loader::{self, process_memory, Resident, Smaps, State};
use crate::plugins::record::PluginRecord;
use crate::plugins::registry::{Conflict, Registry, Superseded};

/// One plugin file, as printed and as sent over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) name: String,
    /// The version serving (live), or the file's (offline).
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) file: String,
    pub(crate) state: State,
    /// Whether its code is loaded. A plugin in state `loaded` that is not is
    /// installed: trusted and its manifest read, and it loads when one of
    /// its objects is first needed.
    #[serde(default)]
    pub(crate) in_memory: bool,
    pub(crate) error: Option<String>,
    pub(crate) exchanges: Vec<String>,
    pub(crate) parsers: Vec<String>,
    pub(crate) commands: Vec<String>,
    /// Names this plugin provides that another plugin serves.
    pub(crate) shadowed: Vec<String>,
    /// Set when its commands run in a child process (`[isolation] process`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) isolation: Option<IsolationView>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub(crate) live: Option<Live>,
}

/// An isolated plugin's child process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IsolationView {
    /// `process`.
    pub(crate) mode: String,
    /// The child's pid while one runs.
    pub(crate) pid: Option<u32>,
    /// Children started after the first.
    pub(crate) restarts: u64,
    /// Why the last child that failed ended.
    pub(crate) last_failure: Option<String>,
    /// RFC 3339, UTC.
    pub(crate) last_failure_at: Option<String>,
    /// The child's memory while one runs.
    #[serde(default)]
    pub(crate) memory: Option<Resident>,
}

/// What only a running agent knows about a plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Live {
    /// The version in the file's current content; `None` when it cannot be
    /// read (see `error`).
    pub(crate) version_on_disk: Option<String>,
    /// The file changed since the agent last read it (a reload is due).
    pub(crate) changed_on_disk: bool,
    pub(crate) generation: Option<u64>,
    /// RFC 3339, UTC.
    pub(crate) loaded_at: Option<String>,
    pub(crate) mapped_bytes: u64,
    /// How much of that is in memory now.
    #[serde(default)]
    pub(crate) resident: Resident,
    pub(crate) requests: Requests,
    pub(crate) superseded: Superseded,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Requests {
    pub(crate) served: u64,
    pub(crate) failed: u64,
}

/// Everything `plugins list` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct View {
    pub(crate) plugins: Vec<Entry>,
    pub(crate) conflicts: Vec<Conflict>,
    /// `plugin directory X: reason`.
    pub(crate) dir_problems: Vec<String>,
    /// Live only.
    pub(crate) channels: Option<Vec<ChannelView>>,
    /// Live only: every superseded generation, including removed plugins'.
    pub(crate) superseded_total: Option<Superseded>,
    /// Offline only: the directories searched, for "no plugins in ...".
    pub(crate) plugin_dirs: Vec<String>,
}

/// A channel as `plugins list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelView {
    pub(crate) name: String,
    /// `plugin generation N` of its exchange while it serves.
    pub(crate) exchange: Option<String>,
    /// Why it does not serve.
    pub(crate) error: Option<String>,
}

/// What a reload did, for the log and `plugins reload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReloadReport {
    /// `name version (generation N)` of plugins that were not serving before.
    pub(crate) loaded: Vec<String>,
    /// `name version (file)` of new or changed files left installed: they
    /// load at first use.
    #[serde(default)]
    pub(crate) installed: Vec<String>,
    /// `name old → new (generation N)`.
    pub(crate) replaced: Vec<String>,
    pub(crate) removed: Vec<String>,
    /// `file: reason`.
    pub(crate) failed: Vec<String>,
    pub(crate) unchanged: usize,
    /// Channels stopped and started again on a new exchange.
    pub(crate) restarted: Vec<String>,
    pub(crate) duration_ms: f64,
}

impl ReloadReport {
    pub(crate) fn changed(&self) -> bool {
        !(self.loaded.is_empty()
            && self.installed.is_empty()
            && self.replaced.is_empty()
            && self.removed.is_empty()
            && self.failed.is_empty()
            && self.restarted.is_empty())
    }
}

/// The view of a registry loaded without an agent.
pub(crate) fn offline_view(registry: &Registry, config: &Config) -> View {
    View {
        plugins: registry
            .plugins
            .iter()
            .map(|record| entry(record, &registry.conflicts))
            .collect(),
        conflicts: registry.conflicts.clone(),
        dir_problems: problems(&registry.dir_problems),
        channels: None,
        superseded_total: None,
        plugin_dirs: config
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
    }
}

/// The running agent's view.
pub(crate) fn live_view(registry: &Registry, channels: Vec<ChannelView>) -> View {
    let smaps = Smaps::read();
    let plugins = registry
        .plugins
        .iter()
        .map(|record| {
            let mut entry = entry(record, &registry.conflicts);
            let mut live = Live {
                version_on_disk: record
                    .manifest_from_disk
                    .then(|| record.manifest.version.clone()),
                changed_on_disk: record.seen.is_some()
                    && loader::current_id(&record.file) != record.seen,
                superseded: registry
                    .superseded
                    .get(&entry.name)
                    .copied()
                    .unwrap_or_default(),
                ..Live::default()
            };
            if let Some(instance) = &record.instance {
                let m = &instance.manifest;
                entry.version = m.version.clone();
                entry.description = m.description.clone();
                let (served, failed) = instance.requests();
                live.generation = Some(instance.generation);
                live.loaded_at =
                    Some(humantime::format_rfc3339_seconds(instance.loaded_at).to_string());
                live.mapped_bytes = instance.origin.mapped_bytes;
                live.resident = instance
                    .origin
                    .descriptor
                    .map(|fd| smaps.resident(fd))
                    .unwrap_or_default();
                live.requests = Requests { served, failed };
            }
            entry.live = Some(live);
            entry
        })
        .collect();
    let superseded_total = registry
        .superseded
        .values()
        .fold(Superseded::default(), |total, s| Superseded {
            generations: total.generations + s.generations,
            mapped_bytes: total.mapped_bytes + s.mapped_bytes,
            served: total.served + s.served,
            failed: total.failed + s.failed,
        });
    View {
        plugins,
        conflicts: registry.conflicts.clone(),
        dir_problems: problems(&registry.dir_problems),
        channels: Some(channels),
        superseded_total: Some(superseded_total),
        plugin_dirs: Vec::new(),
    }
}

fn problems(dir_problems: &[(PathBuf, String)]) -> Vec<String> {
    dir_problems
        .iter()
        .map(|(dir, problem)| format!("plugin directory {}: {problem}", dir.display()))
        .collect()
}

/// A file's entry: what it provides is what its serving generation's `init`
/// returned, or, while it is not loaded, what its manifest declares.
fn entry(record: &PluginRecord, conflicts: &[Conflict]) -> Entry {
    let m = &record.manifest;
    let [exchanges, parsers, commands] = match (&record.instance, &m.declared) {
        (Some(instance), _) => instance.provided(),
        (None, Some(declared)) => [
            declared.exchanges.clone(),
            declared.parsers.clone(),
            declared.commands.clone(),
        ],
        (None, None) => Default::default(),
    };
    let shadowed = conflicts
        .iter()
        .filter(|c| c.chosen != m.name && c.plugins.contains(&m.name))
        .map(|c| format!("{} {}", c.kind, c.name))
        .collect();
    Entry {
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone(),
        file: record.file.display().to_string(),
        state: record.state,
        in_memory: record.instance.is_some(),
        error: record.error.clone(),
        exchanges,
        parsers,
        commands,
        shadowed,
        isolation: record
            .instance
            .as_ref()
            .and_then(|i| i.isolation.as_ref())
            .map(|supervisor| {
                let status = supervisor.status();
                let (at, failure) = status.last_failure.unzip();
                IsolationView {
                    mode: "process".to_owned(),
                    memory: status.pid.and_then(process_memory),
                    pid: status.pid,
                    restarts: status.restarts,
                    last_failure: failure,
                    last_failure_at: at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                }
            }),
        live: None,
    }
}
