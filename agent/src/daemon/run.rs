//! `nova-agent run`: load the plugins, start the channels, serve until
//! SIGTERM or SIGINT, then stop everything within 5 seconds and exit 0.
//! SIGHUP, a change in a plugin directory and `plugins reload` (on the
//! control socket) reload the plugins (see `swap`).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};

use crate::config::Config;
use crate::daemon::control::{self, ControlServer};
use crate::daemon::service::{self, Pidfile};
use crate::daemon::swap::{self, Plugins, ReloadJob, Trigger};
use crate::plugins::host::AGENT_VERSION;
use crate::plugins::view;

/// Time the channels and plugins get to stop after a stop signal; the agent
/// exits within 5 s whatever they do.
const STOP_BUDGET: Duration = Duration::from_millis(4500);

pub(crate) fn run(config: Config, pidfile: Option<&std::path::Path>) -> Result<()> {
    // Block the stop signals before any thread exists, so every thread (ours
    // and the plugins') inherits the mask and only `sigwait` below sees them.
    // Child processes get an empty mask again: std resets it in the child.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("blocking signals")?;

    if config.is_embedded() {
        prepare_demo(&config)?;
    }
    tracing::info!(
        "nova-agent {AGENT_VERSION} starting: config {}, root {}, apply = {}",
        config.source,
        config.root.display(),
        config.apply
    );

    let _pidfile = pidfile.map(Pidfile::create).transpose()?;
    let config = Arc::new(config);
    let plugins = Arc::new(Plugins::new(Arc::clone(&config)));
    // Reload jobs queue up until the reload thread starts, after the first
    // load.
    let (reloads, jobs) = mpsc::channel();
    // Before any plugin loads: a second agent must not start serving.
    let control =
        ControlServer::start(&config.run_dir, control_handler(&plugins, reloads.clone()))?;
    plugins.reload(Trigger::Start);
    let loaded: Vec<String> = plugins
        .registry()
        .instances()
        .map(|i| i.name().to_owned())
        .collect();
    tracing::info!("plugins loaded: {}", loaded.join(", "));
    if plugins.serving_channels() == 0 {
        let reasons: Vec<String> = plugins
            .channels()
            .iter()
            .map(|c| format!("channel {}: {}", c.name, c.error.as_deref().unwrap_or("?")))
            .collect();
        plugins.stop();
        control.stop();
        bail!("no channel could start:\n  {}", reasons.join("\n  "));
    }

    let reloader =
        swap::spawn_reloader(Arc::clone(&plugins), jobs).context("starting the reload thread")?;
    let watcher = {
        let reloads = reloads.clone();
        swap::watch::spawn(
            config.plugin_dirs.clone(),
            Arc::clone(&plugins.shared.stopping),
            move || {
                let _ = reloads.send(ReloadJob {
                    trigger: Trigger::Watch,
                    reply: None,
                });
            },
        )
    };
    if let Err(e) = &watcher {
        tracing::warn!(
            "cannot watch the plugin directories: {e}; reload with SIGHUP or `nova-agent plugins reload`"
        );
    }
    if let Some(interval) = service::watchdog_interval() {
        let (stopping, plugins) = (Arc::clone(&plugins.shared.stopping), Arc::clone(&plugins));
        service::spawn_watchdog(interval, stopping, move |longer_than| {
            plugins.stalled_channels(longer_than)
        })
        .context("starting the watchdog thread")?;
        tracing::info!(
            "systemd watchdog every {interval:?}: keep-alives while no channel is stalled"
        );
    }
    let status = plugins.status();
    tracing::info!("nova-agent {AGENT_VERSION} started: {status}");
    service::ready(&status);

    loop {
        match signals.wait().context("waiting for signals")? {
            Signal::SIGHUP => {
                tracing::info!("SIGHUP received; reloading plugins");
                let _ = reloads.send(ReloadJob {
                    trigger: Trigger::Signal,
                    reply: None,
                });
            }
            signal => {
                tracing::info!("{signal} received; stopping");
                break;
            }
        }
    }
    service::notify("STOPPING=1");
    stop(&plugins, control, reloads, reloader);
    tracing::info!("nova-agent stopped");
    Ok(())
}

fn control_handler(
    plugins: &Arc<Plugins>,
    reloads: mpsc::Sender<ReloadJob>,
) -> Arc<control::Handler> {
    let plugins = Arc::clone(plugins);
    Arc::new(move |request| match request {
        control::Request::List => {
            let view = view::live_view(&plugins.registry(), plugins.channels().to_vec());
            serde_json::to_value(view).map_err(|e| e.to_string())
        }
        control::Request::Reload => {
            let (reply, report) = mpsc::channel();
            let job = ReloadJob {
                trigger: Trigger::Request,
                reply: Some(reply),
            };
            let report = reloads
                .send(job)
                .ok()
                .and_then(|()| report.recv().ok())
                .ok_or_else(|| "the agent is stopping; nothing was reloaded".to_owned())?;
            serde_json::to_value(report).map_err(|e| e.to_string())
        }
    })
}

fn stop(
    plugins: &Arc<Plugins>,
    control: ControlServer,
    reloads: mpsc::Sender<ReloadJob>,
    reloader: std::thread::JoinHandle<()>,
) {
    // Everything runs on a helper thread, so neither a command that does not
    // return nor a plugin's `shutdown` that hangs can hold the exit past the
    // budget.
    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    let plugins = Arc::clone(plugins);
    let spawned = std::thread::Builder::new()
        .name("stop".into())
        .spawn(move || {
            control.stop();
            plugins.stop();
            // Wakes the reload thread, which sees the agent stopping.
            let _ = reloads.send(ReloadJob {
                trigger: Trigger::Watch,
                reply: None,
            });
            let _ = reloader.join();
            let _ = done_tx.send(());
        });
    if spawned.is_err() || done_rx.recv_timeout(STOP_BUDGET).is_err() {
        tracing::warn!("the channels did not stop within {STOP_BUDGET:?}; exiting anyway");
        return;
    }
    tracing::debug!("stopped in {:?}", started.elapsed());
}

/// The embedded default's sandbox: created, so the demo runs from a clean
/// checkout without touching anything outside `target/`.
fn prepare_demo(config: &Config) -> Result<()> {
    for dir in [&config.root, &config.state_dir, &config.run_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    tracing::warn!(
        "no config file given and none at {}; using the embedded development default \
         (plugins from {}, sandbox root {}, apply = false)",
        crate::config::DEFAULT_PATH,
        config.plugin_dirs[0].display(),
        config.root.display()
    );
    Ok(())
}
