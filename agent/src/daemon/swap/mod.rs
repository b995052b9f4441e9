//! Hot swap: the running agent's plugin set, brought up to date with the
//! plugin directories without a restart (ARCHITECTURE.md §4.3).
//!
//! A reload is one pass of the loader pipeline (`plugins::pipeline`) over
//! what serves: for each file that is new or changed (device, inode, size or
//! mtime) it opens a private copy, checks it and runs its `init`; unchanged
//! files keep their running generation. It then builds a registry from the
//! result and publishes its table in one atomic store. Requests that hold the
//! old table finish on the old code; each replaced generation is retired (its
//! `shutdown` runs) when its last reference drops. A channel whose exchange
//! changed is stopped (its in-flight requests answered by the old code), and
//! started again on the new one once the old generation is retired.
//!
//! Architecture invariants:
//! - after a reload the agent serves what a fresh start would load, except
//!   that a file that fails to load keeps its previous generation serving
//!   (with the failure recorded);
//! - reloads never run concurrently (one `state` lock), and the start-up load
//!   is the first reload;
//! - no code is unloaded: superseded generations stay mapped and are counted.
//!
//! Not here: what triggers a reload ([`watch`], SIGHUP in `run`, the control
//! socket in `control`).

mod first_use;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nova_agent_support::sync::lock;

use crate::config::Config;
use crate::daemon::channels::{Activity, Channels, Shared};
use crate::daemon::service;
use crate::plugins::dispatch::Policy;
use crate::plugins::gates::Gates;
use crate::plugins::host::AgentHost;
use crate::plugins::instance::{Instance, Retirement};
use crate::plugins::loader::Staging;
use crate::plugins::pipeline::{self, Found, Inputs, Memory, Needed};
use crate::plugins::registry::{Registry, Table};
use crate::plugins::view::{ChannelView, ReloadReport};
use crate::plugins::wake::Wake;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Start,
    /// A change in a plugin directory.
    Watch,
    Signal,
    /// `nova-agent plugins reload`.
    Request,
    /// The first call of a command whose plugin is not loaded.
    FirstUse,
}

impl Trigger {
    /// Whether a file whose last load failed is tried again although it has
    /// not changed (its `init` may depend on the system): on explicit asks.
    fn retries_failures(self) -> bool {
        matches!(self, Trigger::Signal | Trigger::Request)
    }
}

/// The running agent's plugins and channels.
pub(crate) struct Plugins {
    pub(crate) shared: Arc<Shared>,
    config: Arc<Config>,
    host: AgentHost,
    /// Prepared at the first reload that finds every gate open: staging
    /// writes under `state_dir`, which may be frozen.
    staging: OnceLock<Result<Staging, String>>,
    /// The registry serving, for views; its table is in `shared`.
    registry: ArcSwap<Registry>,
    state: Mutex<State>,
    /// Set while a reload, holding `state`, waits for requests to finish: a
    /// first use then gives up instead of waiting for it (see `first_use`).
    draining: AtomicBool,
    channel_views: ArcSwap<Vec<ChannelView>>,
    activities: ArcSwap<Vec<(String, Arc<Activity>)>>,
}

struct State {
    memory: Memory,
    channels: Channels,
    /// The superseded bytes past which the next warning is due.
    next_warning: u64,
}

/// How long an exchange's retired generation may stay referenced before the
/// agent says so (it keeps waiting).
const RETIRE_PATIENCE: Duration = Duration::from_secs(30);

impl Plugins {
    /// The agent's plugins, none loaded yet; the first [`reload`](Self::reload)
    /// loads what serving needs, and a command's first call its plugin.
    pub(crate) fn new(config: Arc<Config>) -> Arc<Plugins> {
        let channels = Channels::new(&config.channels);
        let next_warning = config.warn_superseded_bytes;
        let shared = Arc::new(Shared {
            table: Arc::new(ArcSwap::from_pointee(Table::default())),
            policy: Arc::new(Policy::with_gates(
                config.deny.clone(),
                Gates::recorded(&config.state_dir, config.apply),
            )),
            stopping: Default::default(),
            in_flight: Default::default(),
            waker: Arc::default(),
        });
        let host = AgentHost::new(
            &config.root,
            &config.state_dir,
            config.apply,
            &shared.policy,
            &shared.table,
            &shared.waker,
        );
        let empty = Registry::assemble(Vec::new(), BTreeMap::new(), &[], &config);
        let plugins = Arc::new(Plugins {
            shared,
            config,
            host,
            staging: OnceLock::new(),
            registry: ArcSwap::from_pointee(empty),
            state: Mutex::new(State {
                memory: Memory::default(),
                channels,
                next_warning,
            }),
            draining: AtomicBool::new(false),
            channel_views: ArcSwap::from_pointee(Vec::new()),
            activities: ArcSwap::from_pointee(Vec::new()),
        });
        let wake: Weak<dyn Wake> = Arc::downgrade(&plugins) as Weak<dyn Wake>;
        plugins.shared.waker.set(wake);
        plugins
    }

    /// The staging directory; `None` while a gate is closed (the start-up
    /// load of a frozen guest then maps the plugin files themselves).
    fn staging(&self) -> Option<&Result<Staging, String>> {
        if self.shared.policy.any_gate_closed() {
            return self.staging.get();
        }
        Some(self.staging.get_or_init(|| {
            let staging = Staging::prepare(&self.config.state_dir);
            if let Err(e) = &staging {
                tracing::warn!(
                    "hot swap is unavailable: {e}; plugins are loaded from their files, \
                     and a changed file needs an agent restart"
                );
            }
            staging
        }))
    }

    pub(crate) fn registry(&self) -> arc_swap::Guard<Arc<Registry>> {
        self.registry.load()
    }

    pub(crate) fn channels(&self) -> Arc<Vec<ChannelView>> {
        self.channel_views.load_full()
    }

    /// Brings plugins and channels up to date with the plugin directories.
    pub(crate) fn reload(&self, trigger: Trigger) -> ReloadReport {
        let started = Instant::now();
        let mut state = self.lock();
        if self.shared.stopping.load(Ordering::Acquire) {
            return ReloadReport::default();
        }
        let current = self.registry.load_full();
        let needed = self.needed();
        let inputs = Inputs {
            config: &self.config,
            host: &self.host,
            staging: self.staging().and_then(|staging| staging.as_ref().ok()),
            retry: trigger.retries_failures(),
            needed: &needed,
        };
        let found = pipeline::pass(&current, &inputs, &mut state.memory);
        self.publish(&mut state, current, found, trigger, started)
    }

    /// What serving needs loaded now: the channels' exchanges and parsers,
    /// and the declarations of the gates recorded closed.
    fn needed(&self) -> Needed {
        Needed::to_serve(&self.config, self.shared.policy.closed_gates())
    }

    /// Publishes the registry of what a pass found: channels whose exchange
    /// changed are restarted on it, and replaced generations retired.
    fn publish(
        &self,
        state: &mut State,
        current: Arc<Registry>,
        found: Found,
        trigger: Trigger,
        started: Instant,
    ) -> ReloadReport {
        let Found {
            records,
            mut report,
            dir_problems,
        } = found;

        let retired: Vec<Arc<Instance>> = current
            .instances()
            .filter(|old| !records.iter().any(|r| same(&r.instance, old)))
            .cloned()
            .collect();
        for gone in &retired {
            let kept_name = records
                .iter()
                .any(|r| r.instance.as_ref().is_some_and(|i| i.name() == gone.name()));
            if !kept_name {
                report.removed.push(format!(
                    "{} {} ({})",
                    gone.name(),
                    gone.manifest.version,
                    gone.origin.file.display()
                ));
            }
        }
        for gone in current.plugins.iter().filter(|r| r.is_installed()) {
            if !records.iter().any(|r| r.file == gone.file) {
                report.removed.push(format!(
                    "{} {} ({})",
                    gone.manifest.name,
                    gone.manifest.version,
                    gone.file.display()
                ));
            }
        }
        let superseded = pipeline::count_superseded(&current, &records, &retired);
        let mut registry =
            Registry::assemble(records, superseded, &current.conflicts, &self.config);
        registry.dir_problems = dir_problems;
        if trigger == Trigger::Start {
            registry.warn_about_config(&self.config);
        }
        drop(current);

        // Channels whose exchange changes stop first, so that their last
        // requests are answered by the code that took them. A first use
        // runs on a channel's worker and never changes an exchange (those
        // of the channels load at start): it stops none.
        let restart = match trigger {
            Trigger::FirstUse => Vec::new(),
            _ => state.channels.stale(&registry),
        };
        self.draining.store(!restart.is_empty(), Ordering::Release);
        state.channels.stop(&restart);
        let registry = Arc::new(registry);
        self.shared.table.store(Arc::clone(&registry.table));
        self.registry.store(Arc::clone(&registry));
        state.channels.forget_stale_decoders(&registry.table);

        // An exchange's old generation must be retired before its channel
        // starts on the new one: a XenStore request must not be seen by two
        // generations at once. The others retire whenever their last request
        // is done.
        let exchanges: Vec<_> = retired
            .iter()
            .filter(|instance| !instance.exchanges.is_empty())
            .map(|instance| {
                let what = format!("{} generation {}", instance.name(), instance.generation);
                (what, instance.retirement())
            })
            .collect();
        drop(retired);
        if !exchanges.is_empty() {
            self.draining.store(true, Ordering::Release);
        }
        for (what, retirement) in exchanges {
            wait_until_retired(&what, &retirement);
        }
        self.draining.store(false, Ordering::Release);
        report.restarted = state.channels.start(&restart, &registry, &self.shared);
        self.channel_views.store(Arc::new(state.channels.views()));
        self.activities.store(Arc::new(state.channels.activities()));
        self.warn_about_superseded(state, &registry);
        report.unchanged = registry
            .plugins
            .iter()
            .filter(|r| r.holds_name())
            .count()
            .saturating_sub(report.loaded.len() + report.replaced.len() + report.installed.len());
        report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        log(&report, trigger);
        if trigger != Trigger::Start {
            service::notify(&format!("STATUS={}", self.status()));
        }
        report
    }

    /// One line for systemd's STATUS= and the start-up log: plugins serving,
    /// channels serving.
    pub(crate) fn status(&self) -> String {
        let registry = self.registry();
        let loaded = registry.instances().count();
        let installed = registry.plugins.iter().filter(|r| r.is_installed()).count();
        let plugins = match installed {
            0 => format!("{loaded} plugins loaded"),
            _ => format!(
                "{} plugins ({loaded} loaded, {installed} at first use)",
                loaded + installed
            ),
        };
        let channels = self.channels();
        let serving = channels.iter().filter(|c| c.error.is_none()).count();
        let mut status = format!(
            "{plugins}; {serving} of {} channels serving",
            channels.len()
        );
        for channel in channels.iter().filter(|c| c.error.is_some()) {
            status.push_str(&format!(
                "; {}: {}",
                channel.name,
                channel.error.as_deref().unwrap_or_default()
            ));
        }
        status
    }

    /// The channels whose every worker has been inside a request, with none
    /// finished, for longer than `longer_than`.
    pub(crate) fn stalled_channels(&self, longer_than: Duration) -> Vec<String> {
        self.activities
            .load()
            .iter()
            .filter(|(_, activity)| activity.stalled(longer_than))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The number of channels serving.
    pub(crate) fn serving_channels(&self) -> usize {
        self.channel_views
            .load()
            .iter()
            .filter(|c| c.error.is_none())
            .count()
    }

    /// Stops every channel (their in-flight requests finish), then retires
    /// every generation: nothing references them once the agent lets go.
    pub(crate) fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let mut state = self.lock();
        state.channels.stop_all();
        self.shared.table.store(Arc::default());
        let empty = Registry::assemble(Vec::new(), BTreeMap::new(), &[], &self.config);
        self.registry.store(Arc::new(empty));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn warn_about_superseded(&self, state: &mut State, registry: &Registry) {
        let (generations, bytes) = registry
            .superseded
            .values()
            .fold((0, 0), |(g, b), s| (g + s.generations, b + s.mapped_bytes));
        if bytes < state.next_warning {
            return;
        }
        let step = self.config.warn_superseded_bytes;
        state.next_warning = (bytes / step + 1) * step;
        tracing::warn!(
            "{generations} replaced plugin generations keep {:.1} MiB of code mapped; \
             restarting the agent would reclaim it",
            bytes as f64 / (1 << 20) as f64
        );
    }
}

fn same(slot: &Option<Arc<Instance>>, instance: &Arc<Instance>) -> bool {
    slot.as_ref().is_some_and(|i| Arc::ptr_eq(i, instance))
}

/// Waits for a generation whose last references are being let go, saying
/// so if that takes long.
fn wait_until_retired(what: &str, retirement: &Retirement) {
    if retirement.wait(RETIRE_PATIENCE) {
        return;
    }
    tracing::warn!(
        "{what} still has requests in flight after {RETIRE_PATIENCE:?}; \
         its channel starts on the new generation once they are done"
    );
    while !retirement.wait(RETIRE_PATIENCE) {}
}

fn log(report: &ReloadReport, trigger: Trigger) {
    for line in &report.loaded {
        if trigger == Trigger::FirstUse {
            tracing::info!(
                "plugin loaded at first use in {:.1} ms: {line}",
                report.duration_ms
            );
        } else {
            tracing::info!("plugin loaded: {line}");
        }
    }
    for line in &report.installed {
        tracing::info!("plugin installed, loads at first use: {line}");
    }
    for line in &report.replaced {
        tracing::info!("plugin replaced: {line}");
    }
    for line in &report.removed {
        tracing::info!("plugin removed: {line}");
    }
    for line in &report.failed {
        tracing::warn!("plugin not loaded: {line}");
    }
    for channel in &report.restarted {
        tracing::info!(channel = %channel, "channel restarted on its new exchange");
    }
    if !matches!(trigger, Trigger::Start | Trigger::FirstUse) && report.changed() {
        tracing::info!("plugins reloaded in {:.1} ms", report.duration_ms);
    }
}

/// A job for the reload thread, with where to send its report.
pub(crate) struct ReloadJob {
    pub(crate) trigger: Trigger,
    pub(crate) reply: Option<mpsc::Sender<ReloadReport>>,
}

/// Runs reloads on a thread of their own, one at a time; jobs that queued up
/// meanwhile share the next run.
/// It ends once the agent is stopping (and a job wakes it) or every sender
/// is gone; a job left unserved has its reply dropped.
pub(crate) fn spawn_reloader(
    plugins: Arc<Plugins>,
    jobs: mpsc::Receiver<ReloadJob>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rx = jobs;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                if plugins.shared.stopping.load(Ordering::Acquire) {
                    break;
                }
                // A reload may write (staging copies): it waits for every
                // gate to open.
                let mut logged = false;
                while plugins.shared.policy.any_gate_closed()
                    && !plugins.shared.stopping.load(Ordering::Acquire)
                {
                    if !logged {
                        tracing::info!("plugin reload deferred until every gate is open");
                        logged = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                if plugins.shared.stopping.load(Ordering::Acquire) {
                    break;
                }
                let mut jobs = vec![first];
                jobs.extend(rx.try_iter());
                let trigger = jobs
                    .iter()
                    .map(|j| j.trigger)
                    .find(|t| t.retries_failures())
                    .unwrap_or(jobs[0].trigger);
                let report = plugins.reload(trigger);
                for job in jobs {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(report.clone());
                    }
                }
            }
        })
}
