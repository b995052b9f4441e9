//! `nova-agent plugins list`: what is in the plugin directories and its state.
//!
//! With an agent running (its control socket answers) this is the agent's
//! live view: per plugin the generation serving, the version on disk, when it
//! was loaded, the requests it served, and the superseded generations still
//! mapped; plus each channel. Without one, the files are inspected here:
//! `loaded` then means trusted, ABI checked and manifest read (no `init`).

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::control;
use crate::loader::{self, PluginRecord, State};
use crate::registry::{manifest_conflicts, Conflict, Registry, Superseded};
use crate::swap::{ChannelView, ReloadReport};

mod render;

/// One plugin file, as printed and as sent over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// The version serving (live), or the file's (offline).
    pub version: String,
    pub description: String,
    pub file: String,
    pub state: State,
    pub error: Option<String>,
    pub exchanges: Vec<String>,
    pub parsers: Vec<String>,
    pub commands: Vec<String>,
    /// Names this plugin provides that another plugin serves.
    pub shadowed: Vec<String>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
}

/// What only a running agent knows about a plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    /// The version in the file's current content; `None` when it cannot be
    /// read (see `error`).
    pub version_on_disk: Option<String>,
    /// The file changed since the agent last read it (a reload is due).
    pub changed_on_disk: bool,
    pub generation: Option<u64>,
    /// RFC 3339, UTC.
    pub loaded_at: Option<String>,
    pub mapped_bytes: u64,
    pub requests: Requests,
    pub superseded: Superseded,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Requests {
    pub served: u64,
    pub failed: u64,
}

/// Everything `plugins list` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct View {
    pub plugins: Vec<Entry>,
    pub conflicts: Vec<Conflict>,
    /// `plugin directory X: reason`.
    pub dir_problems: Vec<String>,
    /// Live only.
    pub channels: Option<Vec<ChannelView>>,
    /// Live only: every superseded generation, including removed plugins'.
    pub superseded_total: Option<Superseded>,
    /// Offline only: the directories searched, for "no plugins in ...".
    pub plugin_dirs: Vec<String>,
}

pub fn list(config: &Config, json: bool) -> Result<String> {
    let live = control::request(
        &config.run_dir,
        control::Request::List,
        Duration::from_secs(10),
    );
    let view = match live {
        Ok(Some(value)) => serde_json::from_value(value)?,
        Ok(None) => offline_view(config),
        Err(e) if permission_denied(&e) => {
            eprintln!(
                "nova-agent: the running agent's live view needs root ({e:#}); inspecting the files"
            );
            offline_view(config)
        }
        Err(e) => return Err(e),
    };
    if json {
        return Ok(serde_json::to_string_pretty(&view.plugins)? + "\n");
    }
    Ok(render::text(&view))
}

/// `plugins reload`: asks the running agent; its report, and `true` when
/// nothing failed. `None` when no agent is running.
pub fn reload(config: &Config, json: bool) -> Result<Option<(String, bool)>> {
    let Some(value) = control::request(
        &config.run_dir,
        control::Request::Reload,
        Duration::from_secs(300),
    )?
    else {
        return Ok(None);
    };
    let report: ReloadReport = serde_json::from_value(value)?;
    let ok = report.failed.is_empty();
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render::reload(&report)
    };
    Ok(Some((text, ok)))
}

fn permission_denied(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// The files inspected by this process.
pub fn offline_view(config: &Config) -> View {
    let mut inspection = loader::inspect(&config.plugin_dirs);
    for record in &mut inspection.records {
        if record.state == State::Loaded {
            record.enable(config);
        }
    }
    let conflicts = manifest_conflicts(&inspection.records, config);
    View {
        plugins: inspection
            .records
            .iter()
            .map(|record| entry(record, &conflicts))
            .collect(),
        conflicts,
        dir_problems: problems(&inspection.dir_problems),
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
pub fn live_view(registry: &Registry, channels: Vec<ChannelView>) -> View {
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
                entry.exchanges = m.exchanges.clone();
                entry.parsers = m.parsers.clone();
                entry.commands = m.commands.clone();
                let (served, failed) = instance.requests();
                live.generation = Some(instance.generation);
                live.loaded_at =
                    Some(humantime::format_rfc3339_seconds(instance.loaded_at).to_string());
                live.mapped_bytes = instance.origin.mapped_bytes;
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

fn problems(dir_problems: &[(std::path::PathBuf, String)]) -> Vec<String> {
    dir_problems
        .iter()
        .map(|(dir, problem)| format!("plugin directory {}: {problem}", dir.display()))
        .collect()
}

fn entry(record: &PluginRecord, conflicts: &[Conflict]) -> Entry {
    let m = &record.manifest;
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
        error: record.error.clone(),
        exchanges: m.exchanges.clone(),
        parsers: m.parsers.clone(),
        commands: m.commands.clone(),
        shadowed,
        live: None,
    }
}
