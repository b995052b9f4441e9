//! `nova-agent plugins list` and `plugins reload`: the running agent's view
//! or report, asked over its control socket, rendered; without an agent,
//! `plugins list` loads the plugin files itself and says so.

use std::time::Duration;

use anyhow::Result;

use crate::cli::render;
use crate::config::Config;
use crate::daemon::control;
use crate::plugins;
use crate::plugins::loader::State;
use crate::plugins::pipeline::Needed;
use crate::plugins::view::{self, ReloadReport, View};

/// `plugins list`: the listing, and whether every entry is in order (no
/// file refused or in error, no plugin directory refused), for the exit code.
pub(crate) fn list(config: &Config, json: bool) -> Result<(String, bool)> {
    let live = control::request(
        &config.run_dir,
        control::Request::List,
        Duration::from_secs(10),
    );
    let socket = control::socket_path(&config.run_dir);
    let is_live = matches!(live, Ok(Some(_)));
    let (view, note) = match live {
        Ok(Some(value)) => (
            serde_json::from_value::<View>(value)?,
            render::LIVE_NOTE.to_owned(),
        ),
        Ok(None) => (
            offline(config),
            format!(
                "no agent is running (nothing answers on {}): {}",
                socket.display(),
                render::OFFLINE_NOTE
            ),
        ),
        Err(e) if permission_denied(&e) => (
            offline(config),
            format!(
                "the running agent's live view needs root ({e:#}): {}",
                render::OFFLINE_NOTE
            ),
        ),
        Err(e) => return Err(e),
    };
    let ok = in_order(&view);
    if json {
        // The JSON stays one array on stdout; the note is for a person.
        if !is_live {
            eprintln!("nova-agent: {note}");
        }
        return Ok((serde_json::to_string_pretty(&view.plugins)? + "\n", ok));
    }
    Ok((format!("{note}\n{}", render::text(&view)), ok))
}

/// No file refused or in error (a loaded plugin whose newer build failed
/// carries an error too), and no plugin directory refused. Disabled plugins
/// are as configured.
fn in_order(view: &View) -> bool {
    view.dir_problems.is_empty()
        && view.plugins.iter().all(|e| match e.state {
            State::Error | State::Refused => false,
            State::Loaded => e.error.is_none(),
            State::Disabled => true,
        })
}

/// The files, loaded by this process (and retired again).
fn offline(config: &Config) -> View {
    let loaded = plugins::load_once(config, &Needed::default());
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
