//! A channel: one exchange paired with one parser, served by its own threads.
//!
//! The channel's first thread opens the exchange (`start`); then a few workers
//! each loop on `next_request` → parser → dispatcher → `put_response`, so a
//! slow command does not hold up the others (the original ran everything on
//! one thread, bug B-CORE-3). A failing channel stops only itself.
//!
//! Architecture invariant: every request gets exactly one response attempt,
//! produced by the parser; the channel never formats a response itself.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nova_agent_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RVec},
};
use nova_agent_plugin_api::ffi::{ExchangeBox, FfiDispatch_TO, ParserBox};
use nova_agent_plugin_api::{PluginError, Request};

use crate::config::{ChannelConfig, Config};
use crate::dispatch::Dispatcher;
use crate::host::RequestContext;
use crate::registry::{Provided, Registry};

/// Workers per channel: enough that a long command (a network reset, an
/// update download) leaves room for `version` and friends.
const WORKERS: usize = 4;
const WORKER_STACK: usize = 512 * 1024;

/// What every worker shares.
pub struct Shared {
    pub registry: Arc<ArcSwap<Registry>>,
    pub config: Arc<Config>,
    pub stopping: Arc<AtomicBool>,
}

pub struct Channel {
    pub name: String,
    /// The exchange and the plugin generation it belongs to.
    pub exchange: Provided<ExchangeBox>,
    pub activity: Arc<Activity>,
    workers: Vec<JoinHandle<()>>,
}

/// What the watchdog reads: how many workers are inside a request, and when
/// one last finished.
#[derive(Debug)]
pub struct Activity {
    busy: AtomicUsize,
    started: Instant,
    /// Milliseconds since `started` at the last finished request.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            started: Instant::now(),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_done_ms.store(now, Ordering::Release);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    /// Every worker is inside a request and none finished for `longer_than`.
    pub fn stalled(&self, longer_than: Duration) -> bool {
        let since = self.started.elapsed().saturating_sub(Duration::from_millis(
            self.last_done_ms.load(Ordering::Acquire),
        ));
        self.busy.load(Ordering::Acquire) >= WORKERS && since > longer_than
    }
}

impl Channel {
    /// Starts the channel's exchange (from `registry`, which must also have
    /// its parser) on a thread of its own and waits for the outcome; on
    /// success the workers are running.
    pub fn start(
        config: &ChannelConfig,
        registry: &Registry,
        shared: &Arc<Shared>,
    ) -> Result<Channel, String> {
        let name = config.name();
        let provided = registry
            .exchanges
            .get(&config.exchange)
            .ok_or_else(|| format!("no plugin provides exchange '{}'", config.exchange))?
            .clone();
        if !registry.parsers.contains_key(&config.parser) {
            return Err(format!("no plugin provides parser '{}'", config.parser));
        }

        let (started_tx, started_rx) = mpsc::channel();
        let activity = Arc::new(Activity::new());
        let first = {
            let (name, exchange, parser, shared, activity) = (
                name.clone(),
                provided.clone(),
                config.parser.clone(),
                Arc::clone(shared),
                Arc::clone(&activity),
            );
            spawn(&config.name(), move || {
                let started = exchange.object.start().into_result();
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if ok {
                    serve(&name, &exchange, &parser, &shared, &activity);
                }
            })?
        };
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = first.join();
                return Err(e.to_string());
            }
            Err(_) => return Err("the exchange's thread ended before it started".to_owned()),
        }
        let mut workers = vec![first];
        for _ in 1..WORKERS {
            let (channel, exchange, parser, shared, activity) = (
                name.clone(),
                provided.clone(),
                config.parser.clone(),
                Arc::clone(shared),
                Arc::clone(&activity),
            );
            workers.push(spawn(&name, move || {
                serve(&channel, &exchange, &parser, &shared, &activity)
            })?);
        }
        Ok(Channel {
            name,
            exchange: provided,
            activity,
            workers,
        })
    }

    /// Asks the exchange to stop; its workers finish their current request.
    pub fn stop(&self) {
        self.exchange.object.shutdown();
    }

    pub fn join(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn spawn(channel: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(format!("channel {channel}"))
        .stack_size(WORKER_STACK)
        .spawn(body)
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// One worker's loop, until the exchange reports it has shut down.
fn serve(
    channel: &str,
    provided: &Provided<ExchangeBox>,
    parser: &str,
    shared: &Shared,
    activity: &Activity,
) {
    let exchange = &*provided.object;
    let limit = exchange.max_response_len().into_option();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    while !shared.stopping.load(Ordering::Acquire) {
        match exchange.next_request() {
            RResult::ROk(ROption::RSome(request)) => {
                if failing {
                    tracing::info!(channel, "exchange recovered");
                    failing = false;
                    backoff = Duration::from_millis(100);
                }
                activity.begin();
                let delivered = handle(channel, exchange, limit, parser, shared, request);
                activity.end();
                provided.instance.count(delivered);
            }
            RResult::ROk(ROption::RNone) => break,
            RResult::RErr(e) => {
                if !failing {
                    tracing::warn!(channel, "exchange failed: {e}; retrying");
                    failing = true;
                }
                sleep_unless_stopping(backoff, &shared.stopping);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::debug!(channel, "worker stopped");
}

/// Answers one request; `true` when the response was delivered.
fn handle(
    channel: &str,
    exchange: &ExchangeBox,
    limit: Option<u64>,
    parser_name: &str,
    shared: &Shared,
    request: Request,
) -> bool {
    let registry = shared.registry.load();
    let Some(provided) = registry.parsers.get(parser_name) else {
        // A reload stops the channel before it publishes a registry without
        // its parser, so only a request already taken meets this.
        tracing::error!(
            channel,
            "parser '{parser_name}' is gone; request left unanswered"
        );
        return false;
    };
    let parser = &provided.object;
    let dispatcher = Dispatcher {
        registry: &registry,
        deny: &shared.config.deny,
        context: RequestContext { channel, exchange },
    };
    let body = match &request.body {
        RResult::ROk(bytes) => RResult::ROk(RSlice::from_slice(bytes.as_slice())),
        RResult::RErr(reason) => RResult::RErr(RStr::from_str(reason.as_str())),
    };
    let response = match parser.handle(body, FfiDispatch_TO::from_ptr(&dispatcher, TD_Opaque)) {
        RResult::ROk(response) => {
            provided.instance.count(true);
            Some(response)
        }
        RResult::RErr(e) => {
            provided.instance.count(false);
            tracing::error!(channel, "parser '{parser_name}' failed: {e}");
            error_response(parser, "500", "internal error in the agent's parser")
        }
    };
    let response = match (response, limit) {
        (Some(response), Some(limit)) if response.len() as u64 > limit => {
            tracing::warn!(
                channel,
                "response of {} bytes exceeds the exchange's limit of {limit}; answering 500",
                response.len()
            );
            error_response(
                parser,
                "500",
                &format!(
                    "Response too large ({} bytes; the limit is {limit})",
                    response.len()
                ),
            )
        }
        (response, _) => response,
    };
    let Some(response) = response else {
        tracing::error!(
            channel,
            "no response could be formed; request left unanswered"
        );
        return false;
    };
    if let RResult::RErr(e) = exchange.put_response(request.id.as_rstr(), response.as_rslice()) {
        tracing::warn!(channel, "could not deliver a response: {e}");
        return false;
    }
    true
}

fn error_response(parser: &ParserBox, code: &str, message: &str) -> Option<RVec<u8>> {
    match parser.error_response(RStr::from_str(code), RStr::from_str(message)) {
        RResult::ROk(response) => Some(response),
        RResult::RErr(PluginError::Panicked(m) | PluginError::Failed(m)) => {
            tracing::error!("parser could not format an error response: {m}");
            None
        }
    }
}

fn sleep_unless_stopping(total: Duration, stopping: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stopping.load(Ordering::Acquire) {
        std::thread::sleep(step);
        slept += step;
    }
}
