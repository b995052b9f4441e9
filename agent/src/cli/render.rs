//! `plugins list` as text: one block per plugin file, then conflicts, then
//! (live) the channels and what superseded generations keep mapped.

use std::fmt::Write as _;

use crate::plugins::loader::State;
use crate::plugins::view::{Entry, ReloadReport, View};

/// The first line of the text listing when an agent answered.
pub(crate) const LIVE_NOTE: &str = "the running agent's live view; a plugin's generation \
     goes up by one each time a new build of it is swapped in";
/// Ends the first line of the listing (text) or the note on stderr (JSON)
/// when no agent answered.
pub(crate) const OFFLINE_NOTE: &str =
    "these are the plugin files on disk as this command read them, without loading them \
     (`installed`: trusted, manifest read; the agent loads it at first use)";

/// `1 channel`, `2 channels`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `plugins reload`'s report.
pub(crate) fn reload(report: &ReloadReport) -> String {
    let mut out = String::new();
    for (what, lines) in [
        ("loaded", &report.loaded),
        ("installed (loads at first use)", &report.installed),
        ("replaced", &report.replaced),
        ("removed", &report.removed),
        ("failed", &report.failed),
    ] {
        for line in lines {
            let _ = writeln!(out, "{what}: {line}");
        }
    }
    for channel in &report.restarted {
        let _ = writeln!(out, "restarted channel: {channel}");
    }
    let _ = writeln!(
        out,
        "{} unchanged; reloaded in {:.1} ms",
        report.unchanged, report.duration_ms
    );
    out
}

pub(crate) fn text(view: &View) -> String {
    let mut out = String::new();
    for problem in &view.dir_problems {
        let _ = writeln!(out, "{problem}");
    }
    if view.plugins.is_empty() {
        let _ = writeln!(out, "no plugins in {}", view.plugin_dirs.join(", "));
    }
    for e in &view.plugins {
        plugin(&mut out, e);
    }
    for c in &view.conflicts {
        let how = if c.decided_by == "prefer" {
            "as [commands] prefer says"
        } else {
            "first in file-name order"
        };
        let _ = writeln!(
            out,
            "conflict: {} '{}' is provided by {}; '{}' serves it ({how})",
            c.kind,
            c.name,
            c.plugins.join(", "),
            c.chosen
        );
    }
    for channel in view.channels.iter().flatten() {
        match (&channel.exchange, &channel.error) {
            (Some(exchange), _) => {
                let _ = writeln!(out, "channel {}: serving ({exchange})", channel.name);
            }
            (None, error) => {
                let _ = writeln!(
                    out,
                    "channel {}: not serving: {}",
                    channel.name,
                    error.as_deref().unwrap_or("unknown")
                );
            }
        }
    }
    if let Some(total) = view.superseded_total.filter(|t| t.mapped_bytes > 0) {
        let _ = writeln!(
            out,
            "superseded: {} generations keep {} mapped; restarting the agent reclaims it",
            total.generations,
            bytes(total.mapped_bytes)
        );
    }
    out
}

fn plugin(out: &mut String, e: &Entry) {
    let version = if e.version.is_empty() {
        "-"
    } else {
        &e.version
    };
    let state = match e.state {
        State::Loaded if !e.in_memory => "installed",
        other => other.as_str(),
    };
    let _ = writeln!(out, "{} {version} [{state}] {}", e.name, e.file);
    for (kind, names) in [
        ("exchanges", &e.exchanges),
        ("parsers", &e.parsers),
        ("commands", &e.commands),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "    {kind}: {}", names.join(", "));
        }
    }
    if !e.shadowed.is_empty() {
        let _ = writeln!(
            out,
            "    served by another plugin: {}",
            e.shadowed.join(", ")
        );
    }
    if let Some(isolation) = &e.isolation {
        let pid = isolation
            .pid
            .map_or("no process running".to_owned(), |pid| format!("pid {pid}"));
        let memory = isolation.memory.map_or(String::new(), |m| {
            format!(
                " ({} resident, {} proportional)",
                bytes(m.rss_bytes),
                bytes(m.pss_bytes)
            )
        });
        let _ = writeln!(
            out,
            "    isolated ({}): {pid}{memory}, {}",
            isolation.mode,
            count(isolation.restarts as usize, "restart")
        );
        if let Some(failure) = &isolation.last_failure {
            let _ = writeln!(
                out,
                "    last failure {}: {failure}",
                isolation.last_failure_at.as_deref().unwrap_or("-")
            );
        }
    }
    if let Some(live) = &e.live {
        if let Some(generation) = live.generation {
            let _ = writeln!(
                out,
                "    generation {generation}, loaded {}, {} mapped ({} resident); {} requests, {} failed",
                live.loaded_at.as_deref().unwrap_or("-"),
                bytes(live.mapped_bytes),
                bytes(live.resident.rss_bytes),
                live.requests.served,
                live.requests.failed
            );
        }
        let on_disk = live.version_on_disk.as_deref();
        if live.generation.is_some() && on_disk != Some(e.version.as_str()) {
            let _ = writeln!(out, "    on disk: {}", on_disk.unwrap_or("unreadable"));
        }
        if live.changed_on_disk {
            let _ = writeln!(
                out,
                "    the file changed since it was read; a reload is due"
            );
        }
        if live.superseded.generations > 0 {
            let _ = writeln!(
                out,
                "    superseded: {} generations, {} mapped",
                live.superseded.generations,
                bytes(live.superseded.mapped_bytes)
            );
        }
    }
    if let Some(error) = &e.error {
        let _ = writeln!(out, "    {error}");
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", n.div_ceil(1024))
    }
}
