//! `nova-agent plugins list`: what is in the plugin directories and its state.
//!
//! For now it inspects the files itself: `loaded` means trusted, ABI checked
//! and manifest read; no plugin's `init` runs.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::loader::{self, PluginRecord, State};
use crate::registry::{manifest_conflicts, Conflict};

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    file: String,
    state: State,
    error: Option<&'a str>,
    exchanges: &'a [String],
    parsers: &'a [String],
    commands: &'a [String],
    /// Names this plugin provides that another plugin serves.
    shadowed: Vec<String>,
}

pub fn list(config: &Config, json: bool) -> Result<String> {
    let mut inspection = loader::inspect(&config.plugin_dirs);
    for record in &mut inspection.records {
        let name = &record.manifest.name;
        if record.state == State::Loaded && !config.plugin_enabled(name) {
            record.state = State::Disabled;
            record.error = Some(format!("disabled by [plugins.{name}] enabled = false"));
        }
    }
    let conflicts = manifest_conflicts(&inspection.records, config);
    let entries: Vec<Entry> = inspection
        .records
        .iter()
        .map(|record| entry(record, &conflicts))
        .collect();
    if json {
        return Ok(serde_json::to_string_pretty(&entries)? + "\n");
    }
    let mut out = String::new();
    for (dir, problem) in &inspection.dir_problems {
        writeln!(out, "plugin directory {}: {problem}", dir.display())?;
    }
    if entries.is_empty() {
        writeln!(
            out,
            "no plugins in {}",
            config
                .plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    for e in &entries {
        let version = if e.version.is_empty() { "-" } else { e.version };
        writeln!(
            out,
            "{} {version} [{}] {}",
            e.name,
            e.state.as_str(),
            e.file
        )?;
        for (kind, names) in [
            ("exchanges", e.exchanges),
            ("parsers", e.parsers),
            ("commands", e.commands),
        ] {
            if !names.is_empty() {
                writeln!(out, "    {kind}: {}", names.join(", "))?;
            }
        }
        if !e.shadowed.is_empty() {
            writeln!(
                out,
                "    served by another plugin: {}",
                e.shadowed.join(", ")
            )?;
        }
        if let Some(error) = e.error {
            writeln!(out, "    {error}")?;
        }
    }
    for c in &conflicts {
        let how = if c.decided_by == "prefer" {
            "as [commands] prefer says"
        } else {
            "first in file-name order"
        };
        writeln!(
            out,
            "conflict: {} '{}' is provided by {}; '{}' serves it ({how})",
            c.kind,
            c.name,
            c.plugins.join(", "),
            c.chosen
        )?;
    }
    Ok(out)
}

fn entry<'a>(record: &'a PluginRecord, conflicts: &[Conflict]) -> Entry<'a> {
    let m = &record.manifest;
    let shadowed = conflicts
        .iter()
        .filter(|c| c.chosen != m.name && c.plugins.contains(&m.name))
        .map(|c| format!("{} {}", c.kind, c.name))
        .collect();
    Entry {
        name: &m.name,
        version: &m.version,
        description: &m.description,
        file: record.file.display().to_string(),
        state: record.state,
        error: record.error.as_deref(),
        exchanges: &m.exchanges,
        parsers: &m.parsers,
        commands: &m.commands,
        shadowed,
    }
}
