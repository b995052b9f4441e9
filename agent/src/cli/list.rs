//! `nova-agent plugins list` and `plugins reload`: the running agent's view
//! or report, asked over its control socket, rendered; without an agent,
//! `plugins list` loads the plugin files itself.

use std::time::Duration;

use anyhow::Result;

use crate::cli::render;
use crate::config::Config;
use crate::daemon::control;
use crate::plugins;
use crate::plugins::view::{self, ReloadReport, View};

pub(crate) fn list(config: &Config, json: bool) -> Result<String> {
    let live = control::request(
        &config.run_dir,
        control::Request::List,
        Duration::from_secs(10),
    );
    let view: View = match live {
        Ok(Some(value)) => serde_json::from_value(value)?,
        Ok(None) => offline(config),
        Err(e) if permission_denied(&e) => {
            eprintln!(
                "nova-agent: the running agent's live view needs root ({e:#}); inspecting the files"
            );
            offline(config)
        }
        Err(e) => return Err(e),
    };
    if json {
        return Ok(serde_json::to_string_pretty(&view.plugins)? + "\n");
    }
    Ok(render::text(&view))
}

/// The files, loaded by this process (and retired again).
fn offline(config: &Config) -> View {
    let loaded = plugins::load_once(config);
    view::offline_view(&loaded.registry, config)
}

/// `plugins reload`: asks the running agent; its report, and `true` when
/// nothing failed. `None` when no agent is running.
pub(crate) fn reload(config: &Config, json: bool) -> Result<Option<(String, bool)>> {
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
