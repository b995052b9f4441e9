//! The requests the workers are answering, so that a stop that cannot wait
//! for a command any longer answers its request itself, rather than leave
//! the client an end of stream (which says "not run"): what the input's
//! earlier calls produced, then "agent is stopping" for the running call and
//! each one after it (a `Failed` outcome, encoded by the channel's parser: a
//! 500 for Nova, a GenericError for QGA).
//!
//! Each worker has a slot. The worker and the stop claim a request under the
//! slot's lock, so exactly one of them answers it; a worker that finds its
//! request claimed runs no further call of it and answers nothing. The slot
//! keeps the running call's command and context in buffers reused from one
//! request to the next, and the response pieces are moved, never copied.

use std::sync::{Arc, Mutex};

use nova_agent_plugin_api::ffi::abi_stable::std_types::{RStr, RString, RVec};
use nova_agent_plugin_api::ffi::{ExchangeBox, FfiDecoded, FfiParsedCall};
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::sync::lock;

use crate::daemon::channels::serve::{Encoder, Items, Response};
use crate::plugins::dispatch::agent_outcome;
use crate::plugins::registry::{Provided, Table};

/// The message of a request abandoned by a stop.
pub(crate) const STOPPING: &str = "agent is stopping";

/// Every worker's slot, for as long as the worker exists.
#[derive(Default)]
pub(crate) struct InFlight {
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl InFlight {
    pub(super) fn register(&self, slot: &Arc<Slot>) {
        lock(&self.slots).push(Arc::clone(slot));
    }

    pub(super) fn unregister(&self, slot: &Arc<Slot>) {
        lock(&self.slots).retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// Claims every request a worker is still answering and makes its
    /// answer. Sending is left to the caller: it may wait on a slow client.
    pub(crate) fn abandon(&self) -> Vec<Abandoned> {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).clone();
        slots.iter().filter_map(|slot| slot.abandon()).collect()
    }
}

/// The answer to an abandoned request, ready to send.
pub(crate) struct Abandoned {
    channel: String,
    exchange: Provided<ExchangeBox>,
    id: RString,
    response: RVec<u8>,
    /// Keeps the parser that made `response` loaded (declared after it:
    /// dropped after it).
    _table: Arc<Table>,
}

impl Abandoned {
    pub(crate) fn send(self) {
        let channel = self.channel.as_str();
        let sent = self
            .exchange
            .object
            .respond(self.id.as_rstr(), self.response.as_rslice());
        if let Err(e) = sent.as_ref().into_result() {
            tracing::warn!(channel, "could not deliver a response: {e}");
        }
        self.exchange.instance.count(sent.is_ok());
    }
}

/// One worker's request, if it is answering one.
pub(super) struct Slot {
    channel: String,
    exchange: Provided<ExchangeBox>,
    parser: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    taken: Option<Taken>,
    /// A call is running: the one `command` and `context` hold.
    running: bool,
    command: String,
    context: String,
}

struct Taken {
    /// The exchange's id of the input.
    id: RString,
    table: Arc<Table>,
    response: Response,
    /// The input's items not taken yet; `None` while it is being decoded.
    rest: Option<Items>,
}

impl Slot {
    pub(super) fn new(channel: &str, exchange: &Provided<ExchangeBox>, parser: &str) -> Slot {
        Slot {
            channel: channel.to_owned(),
            exchange: exchange.clone(),
            parser: parser.to_owned(),
            state: Mutex::default(),
        }
    }

    /// The worker took input `id`, to answer on `table`.
    pub(super) fn begin(&self, id: RString, table: &Arc<Table>) {
        let mut state = lock(&self.state);
        state.running = false;
        state.taken = Some(Taken {
            id,
            table: Arc::clone(table),
            response: Response::default(),
            rest: None,
        });
    }

    /// The input decoded to `items`; returns the first call to run.
    pub(super) fn decoded(&self, items: Items) -> Option<FfiParsedCall> {
        let mut state = lock(&self.state);
        state.taken.as_mut()?.rest = Some(items);
        next_call(&mut state)
    }

    /// The running call (or the input's decoding) produced `piece`; returns
    /// the next call to run. `None` also when the request was abandoned.
    pub(super) fn answered(&self, piece: RVec<u8>) -> Option<FfiParsedCall> {
        let mut state = lock(&self.state);
        state.running = false;
        let taken = state.taken.as_mut()?;
        taken.response.push(piece);
        next_call(&mut state)
    }

    /// The worker is done with the input: its id and response, unless the
    /// request was abandoned (and answered) meanwhile.
    pub(super) fn finish(&self) -> Option<(RString, RVec<u8>)> {
        let mut state = lock(&self.state);
        state.running = false;
        let taken = state.taken.take()?;
        Some((taken.id, taken.response.0))
    }

    fn abandon(&self) -> Option<Abandoned> {
        let mut state = lock(&self.state);
        let taken = state.taken.take()?;
        let channel = self.channel.as_str();
        tracing::warn!(
            channel,
            "a request is still running; answering it \"{STOPPING}\""
        );
        let mut response = taken.response;
        if let Some(parser) = taken.table.parsers.get(&self.parser) {
            let mut encoder = Encoder {
                channel,
                name: &self.parser,
                parser,
                limit: None,
                ok: true,
            };
            let stopping = agent_outcome(ErrorKind::Failed, STOPPING);
            let mut answer = |command: &str, context: &str| {
                let (command, context) = (RStr::from_str(command), RStr::from_str(context));
                encoder.fallback(command, context, &stopping)
            };
            match taken.rest {
                // Still decoding: answered as a failed decode is.
                None => response.push(answer("", "")),
                Some(rest) => {
                    if state.running {
                        response.push(answer(&state.command, &state.context));
                    }
                    for item in rest {
                        match item {
                            FfiDecoded::Answer(bytes) => response.push(bytes),
                            FfiDecoded::Call(call) => {
                                response.push(answer(&call.command, &call.context))
                            }
                        }
                    }
                }
            }
        }
        state.running = false;
        Some(Abandoned {
            channel: self.channel.clone(),
            exchange: self.exchange.clone(),
            id: taken.id,
            response: response.0,
            _table: taken.table,
        })
    }
}

/// The next call of the taken input; its own answers on the way go into the
/// response.
fn next_call(state: &mut State) -> Option<FfiParsedCall> {
    let State {
        taken,
        running,
        command,
        context,
    } = state;
    let taken = taken.as_mut()?;
    for item in taken.rest.as_mut()? {
        match item {
            FfiDecoded::Answer(bytes) => taken.response.push(bytes),
            FfiDecoded::Call(call) => {
                command.clear();
                command.push_str(&call.command);
                context.clear();
                context.push_str(&call.context);
                *running = true;
                return Some(call);
            }
        }
    }
    None
}
