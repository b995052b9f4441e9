//! `nova-agent config check`: the config, and every plugin initialised with
//! its table, the way `run` would do it, without opening any transport.

use std::fmt::Write as _;

use anyhow::Result;

use crate::cli::render;
use crate::config::Config;
use crate::plugins::pipeline::Needed;
use crate::plugins::{self, loader::State};

/// The report, and whether everything is in order.
pub(crate) fn check(config: &Config) -> Result<(String, bool)> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    // The embedded default's sandbox is created by `run`.
    if !config.is_embedded() && !config.root.is_dir() {
        problems.push(format!("root {} is not a directory", config.root.display()));
    }
    let loaded = plugins::load_once(config, &Needed::everything());
    let registry = &loaded.registry;
    for (dir, problem) in &registry.dir_problems {
        problems.push(format!("plugin directory {}: {problem}", dir.display()));
    }
    for plugin in &registry.plugins {
        let error = plugin.error.as_deref().unwrap_or("");
        match plugin.state {
            State::Loaded => {}
            State::Disabled => notes.push(format!("plugin {}: {error}", plugin.manifest.name)),
            State::Error | State::Refused => {
                problems.push(format!("plugin file {}: {error}", plugin.file.display()))
            }
        }
    }
    for channel in &config.channels {
        if !registry.exchanges.contains_key(&channel.exchange) {
            problems.push(format!(
                "channel {}: no plugin provides exchange '{}'",
                channel.name(),
                channel.exchange
            ));
        }
        if !registry.table.parsers.contains_key(&channel.parser) {
            problems.push(format!(
                "channel {}: no plugin provides parser '{}'",
                channel.name(),
                channel.parser
            ));
        }
    }
    for table in config.plugins.keys() {
        if !registry.plugins.iter().any(|p| &p.manifest.name == table) {
            notes.push(format!(
                "[plugins.{table}] configures a plugin that is not installed"
            ));
        }
    }
    for name in &config.isolation.process {
        if !registry.plugins.iter().any(|p| &p.manifest.name == name) {
            notes.push(format!(
                "[isolation] process names plugin '{name}', which is not installed"
            ));
        }
    }
    for c in &registry.conflicts {
        notes.push(format!(
            "{} '{}' is provided by {}; '{}' serves it",
            c.kind,
            c.name,
            c.plugins.join(", "),
            c.chosen
        ));
    }
    let mut out = String::new();
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    for problem in &problems {
        writeln!(out, "error: {problem}")?;
    }
    let serving = registry
        .plugins
        .iter()
        .filter(|p| p.state == State::Loaded)
        .count();
    let commands = registry
        .table
        .commands
        .keys()
        .filter(|name| loaded.policy.refusal(&registry.table, name).is_none())
        .count();
    writeln!(
        out,
        "{}: {} ({} loaded, {}, {})",
        config.source,
        if problems.is_empty() {
            "ok"
        } else {
            "has errors"
        },
        render::count(serving, "plugin"),
        render::count(commands, "command"),
        render::count(config.channels.len(), "channel")
    )?;
    Ok((out, problems.is_empty()))
}
