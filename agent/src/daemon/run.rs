//! `nova-agent run`: load the plugins, start the channels, serve until
//! SIGTERM, SIGINT or SIGQUIT, then stop everything within 5 seconds and
//! exit 0: requests still running after 4 s are answered "agent is stopping"
//! (see `channels::in_flight`). SIGHUP, a change in a plugin directory and
//! `plugins reload` (on the control socket) reload the plugins (see `swap`);
//! other signals are ignored (see `signals`).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::daemon::control::{self, ControlServer};
use crate::daemon::service::{self, Pidfile};
use crate::daemon::signals::{Received, Signals};
use crate::daemon::swap::{self, Plugins, ReloadJob, Trigger};
use crate::plugins::host::AGENT_VERSION;
use crate::plugins::view;

/// Time the requests in flight get to finish after a stop signal; those
/// still running are then answered "agent is stopping". It fits systemd's
/// stop timeout (`TimeoutStopSec=10` in the unit) with room to spare.
const ANSWER_BUDGET: Duration = Duration::from_secs(4);
/// Time the channels and plugins get to stop after a stop signal; the agent
/// exits within 5 s whatever they do.
const STOP_BUDGET: Duration = Duration::from_millis(4500);

pub(crate) fn run(config: Config, pidfile: Option<&std::path::Path>) -> Result<()> {
    // Before any thread exists, so that every thread inherits the mask.
    let signals = Signals::block().context("blocking signals")?;

    if config.is_embedded() {
        prepare_demo(&config)?;
    }
    config.check_private_dirs()?;
    tracing::info!(
        "nova-agent {AGENT_VERSION} starting: config {}, root {}, apply = {}",
        config.source,
        config.root.display(),
        config.apply
    );

    let _pidfile = pidfile.map(Pidfile::create).transpose()?;
    let config = Arc::new(config);
    let plugins = Plugins::new(Arc::clone(&config));
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
    let installed: Vec<String> = plugins
        .registry()
        .plugins
        .iter()
        .filter(|r| r.is_installed())
        .map(|r| r.manifest.name.clone())
        .collect();
    tracing::info!("plugins loaded: {}", loaded.join(", "));
    if !installed.is_empty() {
        tracing::info!("plugins loading at first use: {}", installed.join(", "));
    }
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

    // From here on every exit stops the channels, which removes the sockets.
    let (reloader, served) = match swap::spawn_reloader(Arc::clone(&plugins), jobs) {
        Ok(reloader) => (Some(reloader), serve(&config, &plugins, &reloads, &signals)),
        Err(e) => (None, Err(e).context("starting the reload thread")),
    };
    service::notify("STOPPING=1");
    stop(&plugins, control, reloads, reloader);
    served?;
    tracing::info!("nova-agent stopped");
    Ok(())
}

/// Serves until a stop signal.
fn serve(
    config: &Config,
    plugins: &Arc<Plugins>,
    reloads: &mpsc::Sender<ReloadJob>,
    signals: &Signals,
) -> Result<()> {
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
        let (stopping, plugins) = (Arc::clone(&plugins.shared.stopping), Arc::clone(plugins));
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
            Received::Reload => {
                tracing::info!("SIGHUP received; reloading plugins");
                let _ = reloads.send(ReloadJob {
                    trigger: Trigger::Signal,
                    reply: None,
                });
            }
            Received::Ignored(signal) => tracing::info!("{signal} received; ignored"),
            Received::Stop(signal) => {
                tracing::info!("{signal} received; stopping");
                return Ok(());
            }
        }
    }
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

/// What the stop's helper threads report.
enum Stopped {
    /// The channels, the plugins and the reload thread stopped.
    All,
    /// An abandoned request was answered.
    Answered,
}

fn stop(
    plugins: &Arc<Plugins>,
    control: ControlServer,
    reloads: mpsc::Sender<ReloadJob>,
    reloader: Option<std::thread::JoinHandle<()>>,
) {
    // Everything runs on helper threads, so neither a command that does not
    // return nor a plugin's `shutdown` that hangs can hold the exit past the
    // budget.
    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    let spawned = {
        let (plugins, done_tx) = (Arc::clone(plugins), done_tx.clone());
        std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                control.stop();
                plugins.stop();
                // Wakes the reload thread, which sees the agent stopping.
                let _ = reloads.send(ReloadJob {
                    trigger: Trigger::Watch,
                    reply: None,
                });
                if let Some(reloader) = reloader {
                    let _ = reloader.join();
                }
                let _ = done_tx.send(Stopped::All);
            })
    };
    if spawned.is_ok() && matches!(done_rx.recv_timeout(ANSWER_BUDGET), Ok(Stopped::All)) {
        tracing::debug!("stopped in {:?}", started.elapsed());
        return;
    }
    // Commands still running: their clients get "agent is stopping" rather
    // than an end of stream, which would tell them the request was not run.
    let mut owed = 0;
    for answer in plugins.shared.in_flight.abandon() {
        let done_tx = done_tx.clone();
        let sending = std::thread::Builder::new()
            .name("stop answer".into())
            .spawn(move || {
                answer.send();
                let _ = done_tx.send(Stopped::Answered);
            });
        owed += usize::from(sending.is_ok());
    }
    // Once those answers are out, a command that did not return is not
    // waited for; without any, the channels get the rest of the budget.
    let (abandoned, mut all) = (owed > 0, false);
    let deadline = started + STOP_BUDGET;
    while owed > 0 || !(all || abandoned) {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(Stopped::Answered) => owed -= 1,
            Ok(Stopped::All) => all = true,
            Err(_) => break,
        }
    }
    if owed > 0 {
        tracing::warn!("{owed} answers could not be delivered within {STOP_BUDGET:?}");
    }
    if all {
        tracing::debug!("stopped in {:?}", started.elapsed());
    } else {
        tracing::warn!("the channels did not stop within {ANSWER_BUDGET:?}; exiting anyway");
    }
}

/// The embedded default's sandbox: created and seeded, so the demo runs
/// from a clean checkout without touching anything outside `target/`.
fn prepare_demo(config: &Config) -> Result<()> {
    crate::daemon::demo::prepare(config)?;
    tracing::warn!(
        "no config file given and none at {}; using the embedded development default \
         (plugins from {}, sandbox root {}, apply = false)",
        crate::config::DEFAULT_PATH,
        config.plugin_dirs[0].display(),
        config.root.display()
    );
    Ok(())
}
