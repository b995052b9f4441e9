//! One channel worker's loop: each incoming item goes through five steps,
//! in order, and nothing calls back into the agent mid-way:
//!
//! 1. the exchange yields input (`next`);
//! 2. the parser decodes it into calls, and answers of its own;
//! 3. the dispatcher runs each call;
//! 4. the parser encodes each outcome;
//! 5. the exchange sends every byte the input produced, exactly once
//!    (`respond`, possibly with nothing).
//!
//! A request reads one snapshot of the serving table for its whole life, so
//! it finishes on the code that took it, whatever a reload publishes
//! meanwhile. The worker's slot (see [`in_flight`](super::in_flight)) holds
//! the request meanwhile, so that a stop that cannot wait for it any longer
//! answers it instead.
//!
//! Architecture invariant: every response is produced by the parser; the
//! channel never formats one itself.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nova_agent_plugin_api::ffi::abi_stable::std_types::{
    self as abi_std, ROption, RResult, RStr, RVec,
};
use nova_agent_plugin_api::ffi::{
    ExchangeBox, FfiDecoded, FfiError, FfiFramed, FfiIncoming, FfiInput, FfiOutcome, ParserBox,
    StreamDecoderBox,
};
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::sync::lock;

use crate::daemon::channels::in_flight::{InFlight, Slot};
use crate::plugins::dispatch::{agent_outcome, Dispatcher, Policy, RequestContext};
use crate::plugins::instance::Instance;
use crate::plugins::registry::{Provided, Table};
use crate::plugins::wake::Waker;

/// Workers per channel: enough that a long command (a network reset, an
/// update download) leaves room for `version` and friends.
pub(crate) const WORKERS: usize = 4;

/// The message of an outcome that replaces what a parser failed to produce.
const PARSER_FAILED: &str = "internal error in the agent's parser";

/// What every channel's workers share.
pub(crate) struct Shared {
    /// The serving table: a request loads it once.
    pub(crate) table: Arc<ArcSwap<Table>>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) stopping: Arc<AtomicBool>,
    /// The requests the workers are answering.
    pub(crate) in_flight: InFlight,
    /// Loads the plugin of a command called for the first time.
    pub(crate) waker: Arc<Waker>,
}

/// What the watchdog reads: how many workers are inside a request, and when
/// one last finished.
#[derive(Debug)]
pub(crate) struct Activity {
    busy: AtomicUsize,
    started: Instant,
    /// Milliseconds since `started` at the last finished request.
    last_done_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
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
    pub(crate) fn stalled(&self, longer_than: Duration) -> bool {
        let since = self.started.elapsed().saturating_sub(Duration::from_millis(
            self.last_done_ms.load(Ordering::Acquire),
        ));
        self.busy.load(Ordering::Acquire) >= WORKERS && since > longer_than
    }
}

/// The decoder of one raw byte stream and the parser generation that made
/// it (declared first: dropped before the generation may be).
struct Stream {
    decoder: StreamDecoderBox,
    parser: Arc<Instance>,
}

/// A channel's stream decoders, by stream. A stream's chunks come one at a
/// time, so a worker takes its decoder out while it feeds it.
#[derive(Default)]
pub(crate) struct Streams {
    decoders: Mutex<HashMap<String, Stream>>,
    /// The "takes no stream" error was logged.
    refused: AtomicBool,
}

impl Streams {
    /// Drops the decoders made by a generation of the parser other than the
    /// one `table` serves.
    pub(crate) fn forget_stale(&self, table: &Table, parser: &str) {
        let current = table.parsers.get(parser).map(|p| &p.instance);
        lock(&self.decoders)
            .retain(|_, stream| current.is_some_and(|c| Arc::ptr_eq(c, &stream.parser)));
    }
}

/// One worker of a channel.
pub(crate) struct Worker {
    pub(crate) channel: String,
    /// The exchange and the plugin generation it belongs to.
    pub(crate) exchange: Provided<ExchangeBox>,
    pub(crate) parser: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) activity: Arc<Activity>,
    pub(crate) streams: Arc<Streams>,
    slot: Arc<Slot>,
}

impl Worker {
    pub(crate) fn new(
        channel: &str,
        exchange: &Provided<ExchangeBox>,
        parser: &str,
        shared: &Arc<Shared>,
        activity: &Arc<Activity>,
        streams: &Arc<Streams>,
    ) -> Worker {
        let slot = Arc::new(Slot::new(channel, exchange, parser));
        shared.in_flight.register(&slot);
        Worker {
            channel: channel.to_owned(),
            exchange: exchange.clone(),
            parser: parser.to_owned(),
            shared: Arc::clone(shared),
            activity: Arc::clone(activity),
            streams: Arc::clone(streams),
            slot,
        }
    }

    /// Serves until the exchange reports it has shut down.
    pub(crate) fn run(&self) {
        let channel = self.channel.as_str();
        let exchange = &*self.exchange.object;
        let limit = exchange.max_response_len().into_option();
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        while !self.shared.stopping.load(Ordering::Acquire) {
            // 1. The exchange yields input.
            let incoming = match exchange.next() {
                RResult::ROk(ROption::RSome(incoming)) => incoming,
                RResult::ROk(ROption::RNone) => break,
                RResult::RErr(e) => {
                    if !failing {
                        tracing::warn!(channel, "exchange failed: {e}; retrying");
                        failing = true;
                    }
                    sleep_unless_stopping(backoff, &self.shared.stopping);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if failing {
                tracing::info!(channel, "exchange recovered");
                failing = false;
                backoff = Duration::from_millis(100);
            }
            self.activity.begin();
            // 2.-4. Decode, dispatch, encode, on one snapshot of the table.
            let table = self.shared.table.load_full();
            let FfiIncoming { id, input } = incoming;
            self.slot.begin(id, &table);
            let answered =
                catch_unwind(AssertUnwindSafe(|| self.answer(&table, input, limit))).is_ok();
            // 5. The exchange sends it all, once, unless a stop answered it.
            if let Some((id, mut response)) = self.slot.finish() {
                if !answered {
                    tracing::error!(
                        channel,
                        "the agent panicked answering a request; answering nothing"
                    );
                    response = RVec::new();
                }
                let sent = exchange.respond(id.as_rstr(), response.as_rslice());
                if let RResult::RErr(e) = &sent {
                    tracing::warn!(channel, "could not deliver a response: {e}");
                }
                self.exchange.instance.count(sent.is_ok());
            }
            // Possibly the last reference to a replaced generation: it is
            // retired here, once the answer is out.
            drop(table);
            self.activity.end();
        }
        tracing::debug!(channel, "worker stopped");
    }

    /// Steps 2 to 4 for one input: every byte it produces goes, in order,
    /// into the worker's slot.
    fn answer(&self, table: &Table, input: FfiInput, limit: Option<u64>) {
        let channel = self.channel.as_str();
        let Some(parser) = table.parsers.get(&self.parser) else {
            // A reload stops the channel before it publishes a table without
            // its parser, so only input already taken meets this.
            tracing::error!(
                channel,
                "parser '{}' is gone; answering nothing",
                self.parser
            );
            self.slot.decoded(Items::none());
            return;
        };
        let mut encoder = Encoder {
            channel,
            name: &self.parser,
            parser,
            limit,
            ok: true,
        };
        // 2. The parser decodes the input.
        let decoded = match self.decode(parser, input) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(channel, "parser '{}' failed to decode: {e}", self.parser);
                parser.instance.count(false);
                let failed = agent_outcome(ErrorKind::Failed, PARSER_FAILED);
                self.slot.decoded(Items::none());
                self.slot.answered(encoder.fallback(
                    RStr::from_str(""),
                    RStr::from_str(""),
                    &failed,
                ));
                return;
            }
        };
        let dispatcher = Dispatcher {
            table,
            policy: &self.shared.policy,
            waker: &self.shared.waker,
            context: RequestContext {
                channel,
                exchange: &self.exchange.object,
            },
        };
        // The parser's own answers go into the slot on the way to each call.
        let mut next = self.slot.decoded(decoded);
        while let Some(call) = next {
            // 3. The dispatcher runs the command.
            let outcome = dispatcher.dispatch(&call);
            // 4. The parser encodes its outcome.
            let (command, context) = (call.command.as_rstr(), call.context.as_rstr());
            next = self
                .slot
                .answered(encoder.encode(command, context, &outcome));
        }
        parser.instance.count(encoder.ok);
    }

    /// Step 2: framed input through the parser, stream bytes through the
    /// stream's decoder.
    fn decode(&self, parser: &Provided<ParserBox>, input: FfiInput) -> Result<Items, FfiError> {
        match input {
            FfiInput::Request(bytes) => parser
                .object
                .decode(FfiFramed::Request(bytes.as_rslice()))
                .into_result()
                .map(Items::one),
            FfiInput::Unreadable(reason) => parser
                .object
                .decode(FfiFramed::Unreadable(reason.as_rstr()))
                .into_result()
                .map(Items::one),
            FfiInput::Stream { stream, bytes } => {
                let taken = lock(&self.streams.decoders).remove(stream.as_str());
                let taken = taken.filter(|s| Arc::ptr_eq(&s.parser, &parser.instance));
                let mut state = match taken {
                    Some(state) => state,
                    None => match parser.object.stream_decoder().into_result()? {
                        ROption::RSome(decoder) => Stream {
                            decoder,
                            parser: Arc::clone(&parser.instance),
                        },
                        ROption::RNone => {
                            if !self.streams.refused.swap(true, Ordering::AcqRel) {
                                tracing::error!(
                                    channel = %self.channel,
                                    "parser '{}' takes no stream; answering stream input with nothing",
                                    self.parser
                                );
                            }
                            return Ok(Items::many(RVec::new()));
                        }
                    },
                };
                // A decoder that failed is not trusted with the next bytes.
                let decoded = state.decoder.feed(bytes.as_rslice()).into_result()?;
                lock(&self.streams.decoders).insert(stream.into_string(), state);
                Ok(Items::many(decoded))
            }
            FfiInput::StreamEnd { stream } => {
                let ended = lock(&self.streams.decoders).remove(stream.as_str());
                drop(ended);
                Ok(Items::many(RVec::new()))
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.in_flight.unregister(&self.slot);
    }
}

/// What one input decoded to: a framed request's one item, or a stream
/// chunk's any number, in order.
pub(super) enum Items {
    One(Option<FfiDecoded>),
    Many(abi_std::vec::IntoIter<FfiDecoded>),
}

impl Items {
    fn one(item: FfiDecoded) -> Items {
        Items::One(Some(item))
    }

    fn none() -> Items {
        Items::One(None)
    }

    fn many(items: RVec<FfiDecoded>) -> Items {
        Items::Many(items.into_iter())
    }
}

impl Iterator for Items {
    type Item = FfiDecoded;

    fn next(&mut self) -> Option<FfiDecoded> {
        match self {
            Items::One(item) => item.take(),
            Items::Many(items) => items.next(),
        }
    }
}

/// Step 4, with the exchange's size limit and the parser's failures.
pub(super) struct Encoder<'a> {
    pub(super) channel: &'a str,
    /// The parser's name.
    pub(super) name: &'a str,
    pub(super) parser: &'a Provided<ParserBox>,
    pub(super) limit: Option<u64>,
    /// No encoding failed.
    pub(super) ok: bool,
}

impl Encoder<'_> {
    /// The response to `call`'s outcome (none if the parser answers none).
    fn encode(&mut self, command: RStr<'_>, context: RStr<'_>, outcome: &FfiOutcome) -> RVec<u8> {
        let Some(encoded) = self.parser_encode(command, context, outcome, "failed to encode")
        else {
            let failed = agent_outcome(ErrorKind::Failed, PARSER_FAILED);
            return self.fallback(command, context, &failed);
        };
        match self.limit {
            Some(limit) if encoded.len() as u64 > limit => {
                tracing::warn!(
                    channel = self.channel,
                    "response of {} bytes exceeds the exchange's limit of {limit}; answering an error",
                    encoded.len()
                );
                let message = format!(
                    "Response too large ({} bytes; the limit is {limit})",
                    encoded.len()
                );
                self.fallback(
                    command,
                    context,
                    &agent_outcome(ErrorKind::Failed, &message),
                )
            }
            _ => encoded,
        }
    }

    /// The agent's own outcome for `call`, encoded; nothing if that fails
    /// too.
    pub(super) fn fallback(
        &mut self,
        command: RStr<'_>,
        context: RStr<'_>,
        outcome: &FfiOutcome,
    ) -> RVec<u8> {
        let failing = "could not encode an error either (answering nothing)";
        self.parser_encode(command, context, outcome, failing)
            .unwrap_or_default()
    }

    /// The parser's encoding of `outcome`; `None`, logged, when it failed.
    fn parser_encode(
        &mut self,
        command: RStr<'_>,
        context: RStr<'_>,
        outcome: &FfiOutcome,
        failing: &str,
    ) -> Option<RVec<u8>> {
        let encoded = self.parser.object.encode(command, context, outcome);
        match encoded.into_result() {
            Ok(encoded) => Some(encoded.into_option().unwrap_or_default()),
            Err(e) => {
                let (channel, name) = (self.channel, self.name);
                tracing::error!(channel, "parser '{name}' {failing}: {e}");
                self.ok = false;
                None
            }
        }
    }
}

/// Every byte one input produced, in order. The usual single piece is kept
/// as the parser returned it, uncopied.
#[derive(Default)]
pub(super) struct Response(pub(super) RVec<u8>);

impl Response {
    pub(super) fn push(&mut self, piece: RVec<u8>) {
        if self.0.is_empty() {
            self.0 = piece;
        } else {
            self.0.extend_from_slice(&piece);
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
