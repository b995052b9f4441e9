//! `nova-agent run`: load the plugins, start the channels, serve until
//! SIGTERM or SIGINT, then stop everything within 5 seconds and exit 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use nix::sys::signal::{SigSet, Signal};

use crate::channel::{Channel, Shared};
use crate::config::Config;
use crate::host::{AgentHost, AGENT_VERSION};
use crate::loader::{self, State};
use crate::registry::Registry;

/// Time the channels and plugins get to stop after a stop signal; the agent
/// exits within 5 s whatever they do.
const STOP_BUDGET: Duration = Duration::from_millis(4500);

pub fn run(config: Config) -> Result<()> {
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

    let config = Arc::new(config);
    let host = AgentHost::new(config.root.clone(), config.apply);
    let inspection = loader::inspect(&config.plugin_dirs);
    for (dir, problem) in &inspection.dir_problems {
        tracing::warn!("plugin directory {}: {problem}", dir.display());
    }
    let registry = Registry::build(inspection, &config, &host);
    host.command_names
        .store(Arc::new(registry.callable_commands(&config)));
    let loaded: Vec<&str> = registry
        .plugins
        .iter()
        .filter(|p| p.state == State::Loaded)
        .map(|p| p.manifest.name.as_str())
        .collect();
    tracing::info!("plugins loaded: {}", loaded.join(", "));

    let shared = Arc::new(Shared {
        registry: Arc::new(ArcSwap::from_pointee(registry)),
        config: Arc::clone(&config),
        stopping: Arc::new(AtomicBool::new(false)),
    });
    let mut channels = Vec::new();
    let mut failures = Vec::new();
    for channel_config in &config.channels {
        match Channel::start(channel_config, &shared) {
            Ok(channel) => {
                tracing::info!(channel = %channel.name, "channel serving");
                channels.push(channel);
            }
            Err(e) => {
                tracing::error!(channel = %channel_config.name(), "channel failed to start: {e}");
                failures.push(format!("channel {}: {e}", channel_config.name()));
            }
        }
    }
    if channels.is_empty() {
        shared.registry.load().shutdown();
        bail!("no channel could start:\n  {}", failures.join("\n  "));
    }
    notify_systemd("READY=1");
    tracing::info!("nova-agent {AGENT_VERSION} started");

    loop {
        match signals.wait().context("waiting for signals")? {
            Signal::SIGHUP => {
                tracing::info!("SIGHUP ignored: this agent does not reload plugins yet")
            }
            signal => {
                tracing::info!("{signal} received; stopping");
                break;
            }
        }
    }
    notify_systemd("STOPPING=1");
    stop(channels, &shared);
    tracing::info!("nova-agent stopped");
    Ok(())
}

fn stop(channels: Vec<Channel>, shared: &Shared) {
    shared.stopping.store(true, Ordering::Release);
    // Everything runs on a helper thread, so neither a command that does not
    // return nor a plugin's `shutdown` that hangs can hold the exit past the
    // budget.
    let (done_tx, done_rx) = mpsc::channel();
    let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
    let started = Instant::now();
    let registry = shared.registry.load_full();
    let spawned = std::thread::Builder::new()
        .name("stop".into())
        .spawn(move || {
            for channel in &channels {
                channel.stop();
            }
            for channel in channels {
                channel.join();
            }
            registry.shutdown();
            let _ = done_tx.send(());
        });
    if spawned.is_err() || done_rx.recv_timeout(STOP_BUDGET).is_err() {
        tracing::warn!(
            "channels {} did not stop within {STOP_BUDGET:?}; exiting anyway",
            names.join(", ")
        );
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

/// sd_notify(3), for `Type=notify` units; a no-op outside systemd.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!("cannot notify systemd: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = result {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
