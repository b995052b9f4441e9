//! One isolated plugin generation's child process over its life: started at
//! load, restarted for the next request after it ends, with a growing delay
//! while it keeps failing; and the command objects the registry holds for it.
//!
//! Restart policy: the first restart after a success is immediate; each
//! further failure in a row doubles the wait (from `restart_delay` up to
//! `restart_delay_max`). A request that arrives while the wait runs is
//! answered at once with the last failure, not held. A request that
//! completes resets the count.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use nova_agent_plugin_api::ffi::abi_stable::std_types::RStr;
use nova_agent_plugin_api::ffi::abi_stable::RRef;
use nova_agent_plugin_api::ffi::{FfiCall_TO, FfiCommand, FfiLifecycle, FfiOutcome, HostBox};
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::sync::lock;

use super::cause::seconds;
use super::end::{EXIT_GRACE, OUTPUT_GRACE};
use super::link::{Event, Link, Parts};
use super::spawn;
use super::wire::{Provided, Start, ToChild};
use super::Settings;

/// How long a retired generation's child may take to run its shutdown hook.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What `plugins list` shows of an isolated plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) pid: Option<u32>,
    pub(crate) restarts: u64,
    pub(crate) last_failure: Option<(SystemTime, String)>,
}

pub(crate) struct Supervisor {
    plugin: String,
    /// The checked library's descriptor in this process (never closed).
    library: i32,
    start: Start,
    settings: Settings,
    host: Arc<HostBox>,
    /// Held while a child starts, so concurrent requests share one start.
    starting: Mutex<()>,
    state: Mutex<State>,
    me: Weak<Supervisor>,
}

#[derive(Default)]
struct State {
    link: Option<Arc<Link>>,
    starts: u64,
    failures_in_a_row: u32,
    retry_at: Option<Instant>,
    last_failure: Option<(SystemTime, String)>,
    /// The first child started: a failure from now on is logged.
    serving: bool,
    retired: bool,
}

impl State {
    /// Counts a failure: its cause, and the wait before the next start,
    /// which it returns.
    fn failed(&mut self, settings: &Settings, cause: &str) -> Duration {
        self.failures_in_a_row += 1;
        let delay = super::restart_delay(settings, self.failures_in_a_row);
        self.retry_at = Some(Instant::now() + delay);
        self.last_failure = Some((SystemTime::now(), cause.to_owned()));
        delay
    }
}

/// Why a child could not be started, and whether its end already counted
/// it as a failure.
struct StartFailure {
    reason: String,
    recorded: bool,
}

impl StartFailure {
    fn unrecorded(reason: String) -> StartFailure {
        StartFailure {
            reason,
            recorded: false,
        }
    }
}

impl Supervisor {
    /// Starts the first child and waits for its `init`; the error is one
    /// line.
    pub(crate) fn start(
        start: Start,
        library: i32,
        settings: Settings,
        host: HostBox,
    ) -> Result<(Arc<Supervisor>, Provided), String> {
        let supervisor = Arc::new_cyclic(|me| Supervisor {
            plugin: start.plugin.clone(),
            library,
            start,
            settings,
            host: Arc::new(host),
            starting: Mutex::new(()),
            state: Mutex::default(),
            me: me.clone(),
        });
        let (link, provided) = supervisor.spawn().map_err(|failure| failure.reason)?;
        let mut state = lock(&supervisor.state);
        state.link = Some(link);
        state.serving = true;
        drop(state);
        Ok((supervisor, provided))
    }

    pub(crate) fn status(&self) -> Status {
        let state = lock(&self.state);
        Status {
            pid: state
                .link
                .as_ref()
                .filter(|l| !l.is_closed())
                .map(|l| l.pid()),
            restarts: state.starts.saturating_sub(1),
            last_failure: state.last_failure.clone(),
        }
    }

    /// Starts a child and waits for its `init`'s answer.
    fn spawn(&self) -> Result<(Arc<Link>, Provided), StartFailure> {
        let spawned = spawn::spawn(&self.plugin, self.library, &self.settings)
            .map_err(StartFailure::unrecorded)?;
        let (ready, answer) = std::sync::mpsc::channel();
        let me = self.me.clone();
        let pid = spawned.child.id();
        let link = Link::start(
            &self.plugin,
            Parts {
                child: spawned.child,
                socket: spawned.socket,
                background: spawned.background,
                output: spawned.output,
                host: Arc::clone(&self.host),
                memory_limit: self.settings.memory_bytes,
                write_timeout: self.settings.timeout,
                ready,
                on_end: Box::new(move |cause| {
                    if let Some(supervisor) = me.upgrade() {
                        supervisor.ended(pid, cause);
                    }
                }),
            },
        )
        .map_err(StartFailure::unrecorded)?;
        lock(&self.state).starts += 1;
        if let Err(e) = link.send(&ToChild::Start(self.start.clone())) {
            link.kill(format!("cannot start plugin {}: {e}", self.plugin));
        }
        let timeout = self.settings.timeout;
        let reason = match answer.recv_timeout(timeout) {
            Ok(Ok(provided)) => {
                tracing::debug!(plugin = %self.plugin, "plugin {} runs in process {pid}", self.plugin);
                return Ok((link, provided));
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!(
                "plugin {}'s init did not finish within {}",
                self.plugin,
                seconds(timeout)
            ),
        };
        // Its end records the failure (see `ended`).
        link.kill(reason.clone());
        link.wait_end(EXIT_GRACE + OUTPUT_GRACE + Duration::from_secs(1));
        Err(StartFailure {
            reason,
            recorded: true,
        })
    }

    /// The reader's report: the child `pid` ended, for `cause` (`None`: it
    /// was asked to stop).
    fn ended(&self, pid: u32, cause: Option<String>) {
        let mut state = lock(&self.state);
        if state.link.as_ref().is_some_and(|l| l.pid() == pid) {
            state.link = None;
        }
        let Some(cause) = cause else { return };
        let delay = state.failed(&self.settings, &cause);
        if state.retired || !state.serving {
            return;
        }
        let when = if delay.is_zero() {
            "for the next request".to_owned()
        } else {
            format!("for the first request after {}", seconds(delay))
        };
        tracing::warn!(plugin = %self.plugin, "{cause}; it is restarted {when}");
    }

    /// The running child, started if needed; the error is the answer.
    fn link(&self) -> Result<Arc<Link>, String> {
        let _starting = lock(&self.starting);
        let current = lock(&self.state).link.clone();
        if let Some(link) = current {
            if !link.is_closed() {
                return Ok(link);
            }
            // Let its reader record how it ended (and the wait before the
            // next start) before deciding on a new one.
            link.wait_end(EXIT_GRACE + OUTPUT_GRACE + Duration::from_secs(1));
        }
        {
            let state = lock(&self.state);
            if state.retired {
                return Err(format!("plugin {} was retired", self.plugin));
            }
            if let Some(wait) = state
                .retry_at
                .map(|at| at.saturating_duration_since(Instant::now()))
                .filter(|wait| !wait.is_zero())
            {
                let last = state.last_failure.as_ref().map_or("", |(_, c)| c.as_str());
                return Err(format!(
                    "{last}; it failed {} times in a row and is restarted in {}",
                    state.failures_in_a_row,
                    seconds(Duration::from_millis(
                        wait.as_millis().div_ceil(100) as u64 * 100
                    ))
                ));
            }
        }
        match self.spawn() {
            Ok((link, _)) => {
                tracing::info!(plugin = %self.plugin, "plugin {} restarted (process {})", self.plugin, link.pid());
                lock(&self.state).link = Some(Arc::clone(&link));
                Ok(link)
            }
            Err(failure) => {
                let reason = format!(
                    "plugin {} could not be restarted: {}",
                    self.plugin, failure.reason
                );
                if !failure.recorded {
                    lock(&self.state).failed(&self.settings, &reason);
                    tracing::warn!(plugin = %self.plugin, "{reason}");
                }
                Err(reason)
            }
        }
    }

    /// Runs `command` in the child: the outcome, or a failure naming why the
    /// child could not answer.
    fn run(
        &self,
        command: &str,
        call: &FfiCall_TO<'_, RRef<'_, ()>>,
        arguments: &str,
    ) -> FfiOutcome {
        let link = match self.link() {
            Ok(link) => link,
            Err(reason) => return failed(reason),
        };
        let channel = call.channel();
        let (id, events) = match link.run(command, arguments, &channel) {
            Ok(started) => started,
            Err(cause) => return failed(cause),
        };
        let deadline = Instant::now() + self.settings.timeout;
        loop {
            match link.next_event(id, &events, deadline) {
                Some(Event::Done(kind, text, success_response)) => {
                    self.succeeded();
                    return FfiOutcome {
                        kind,
                        text: text.into(),
                        success_response,
                    };
                }
                Some(Event::MetadataRead(key)) => {
                    let result = call
                        .metadata_read(RStr::from_str(&key))
                        .into_result()
                        .map(|v| v.into_option().map(String::from))
                        .map_err(|e| e.to_string());
                    let _ = link.send(&ToChild::MetadataRead { id, result });
                }
                Some(Event::MetadataList(dir)) => {
                    let result = call
                        .metadata_list(RStr::from_str(&dir))
                        .into_result()
                        .map(|v| v.into_iter().map(String::from).collect())
                        .map_err(|e| e.to_string());
                    let _ = link.send(&ToChild::MetadataList { id, result });
                }
                Some(Event::Lost(cause)) => return failed(cause),
                None => {
                    let reason = format!(
                        "plugin {} timed out after {}",
                        self.plugin,
                        seconds(self.settings.timeout)
                    );
                    link.forget(id);
                    link.kill(reason.clone());
                    return failed(reason);
                }
            }
        }
    }

    fn succeeded(&self) {
        let mut state = lock(&self.state);
        state.failures_in_a_row = 0;
        state.retry_at = None;
    }

    /// The generation is retired: its child runs the plugin's shutdown hook
    /// and exits (killed after [`STOP_GRACE`]).
    fn retire(&self) {
        let link = {
            let mut state = lock(&self.state);
            state.retired = true;
            state.link.take()
        };
        if let Some(link) = link {
            link.stop(STOP_GRACE);
        }
    }
}

fn failed(message: String) -> FfiOutcome {
    FfiOutcome {
        kind: ErrorKind::Failed.to_u8(),
        text: message.into(),
        success_response: true,
    }
}

/// A command of an isolated plugin, as the registry holds it.
pub(crate) struct RemoteCommand {
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) name: String,
}

// These run behind `extern "C"` frames: a panic must not unwind out.
impl FfiCommand for RemoteCommand {
    fn run<'a>(&self, call: FfiCall_TO<'a, RRef<'a, ()>>, arguments: RStr<'a>) -> FfiOutcome {
        catch_unwind(AssertUnwindSafe(|| {
            self.supervisor.run(&self.name, &call, arguments.as_str())
        }))
        .unwrap_or_else(|_| FfiOutcome {
            kind: ErrorKind::Panicked.to_u8(),
            text: "the agent panicked while running an isolated command".into(),
            success_response: true,
        })
    }
}

/// The generation's shutdown hook: stops its child.
pub(crate) struct RemoteLifecycle(pub(crate) Arc<Supervisor>);

impl FfiLifecycle for RemoteLifecycle {
    fn shutdown(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.retire()));
    }
}
