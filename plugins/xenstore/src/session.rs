//! One XenStore connection's life: watch the request directory, take every
//! request that appears (and those already waiting), write responses, and
//! notice when the connection dies.
//!
//! Invariants:
//! - a response is written before its request is removed, so a request that
//!   disappears has been answered;
//! - a request whose response already exists (the agent stopped between the
//!   two writes) is removed without being run again;
//! - a request whose taken marker exists (the agent stopped while running
//!   it) is answered [`STOPPED`] without being run again; a marker goes only
//!   after its request is removed;
//! - the watch stream is drained on a task of its own, never blocked by
//!   request work: xenstore-rs stalls every call while a watch's buffer of
//!   8 events is full.

use std::cell::Cell;
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nova_agent_plugin_api::Incoming;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use xenstore_rs::tokio::XsTokio;
use xenstore_rs::{AsyncWatch, AsyncXs};

use crate::core::{is_missing, is_not_text, op, Core};
use crate::job::{Job, Outage};
use crate::settings::{id_fits, MAX_ID_LEN, PAYLOAD_MAX};
use crate::taken::STOPPED;

/// A connection with no traffic for this long is probed with one read: a dead
/// xenstored is otherwise only noticed by the next request, which would never
/// come over the dead connection's watch. This probes liveness; requests are
/// found through the watch, not by polling.
const IDLE_PROBE: Duration = Duration::from_secs(3);

/// How often a listing that failed for size is retried, at most.
const RELIST_EVERY: Duration = Duration::from_millis(200);

/// How long a stop waits for the responses being written.
const STOP_DRAIN: Duration = Duration::from_secs(2);

/// The answer to a request value that is not UTF-8: xenstore-rs cannot hand
/// over its bytes, and the json parser answers such bytes the same way.
const NOT_TEXT: &str = "Request is malformed";

pub(crate) enum End {
    Stop,
    /// The connection failed after it served.
    Lost(String),
    /// The connection failed before it served.
    Refused(String),
}

pub(crate) async fn run(
    core: &Arc<Core>,
    xs: XsTokio,
    jobs: &mut UnboundedReceiver<Job>,
    outage: &mut Outage,
) -> End {
    let request_path = core.settings.request_path.as_str();
    if let Err(e) = create_request_dir(&xs, request_path).await {
        return End::Refused(format!("cannot prepare {request_path}: {e}"));
    }
    let mut watch = match op(xs.watch(request_path)).await {
        Ok(watch) => watch,
        Err(e) => return End::Refused(format!("cannot watch {request_path}: {e}")),
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let drain = tokio::spawn(async move {
        while let Some(path) = watch.next().await {
            if events_tx.send(path).is_err() {
                break;
            }
        }
    });
    outage.up();
    core.set_current(Some(xs.clone()));

    let (failed_tx, mut failed) = mpsc::unbounded_channel::<String>();
    let session = Session {
        core,
        xs: &xs,
        failed: failed_tx,
        unlisted: Cell::new(None),
        changed: Cell::new(false),
    };
    let mut tasks = JoinSet::new();
    let unwritten = core.take_unwritten();
    if !unwritten.is_empty() {
        tracing::info!(
            "answering {} requests held while XenStore was unreachable",
            unwritten.len()
        );
    }
    for (id, response) in unwritten {
        tasks.spawn(session.respond(id, response));
    }
    let end = match session.scan(&mut tasks).await {
        Err(reason) => End::Lost(reason),
        Ok(()) => loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(path) if *path == *request_path => {
                        if let Err(reason) = session.scan(&mut tasks).await {
                            break End::Lost(reason);
                        }
                    }
                    Some(path) => {
                        if let Some(id) = core.settings.request_id(&path) {
                            tasks.spawn(session.consider(id.to_owned()));
                        }
                        session.note_change();
                    }
                    None => break End::Lost("the watch ended".to_owned()),
                },
                job = jobs.recv() => match job {
                    Some(Job::Respond { id, response }) => {
                        tasks.spawn(session.respond(id, response));
                    }
                    Some(Job::Rescan) => {
                        if let Err(reason) = session.scan(&mut tasks).await {
                            break End::Lost(reason);
                        }
                    }
                    Some(Job::Stop) | None => break End::Stop,
                },
                Some(reason) = failed.recv() => break End::Lost(reason),
                () = tokio::time::sleep(session.relist_delay()), if session.relist_wanted() => {
                    if let Err(reason) = session.scan(&mut tasks).await {
                        break End::Lost(reason);
                    }
                }
                Some(_) = tasks.join_next() => {}
                () = tokio::time::sleep(IDLE_PROBE) => {
                    if let Err(e) = op(xs.read(request_path)).await {
                        if !is_missing(&e) {
                            break End::Lost(format!("probe failed: {e}"));
                        }
                    }
                }
            }
        },
    };

    drain.abort();
    core.set_current(None);
    match end {
        // Responses under way get a moment to land; what does not stays
        // unanswered in XenStore for the next start.
        End::Stop => {
            let _ = tokio::time::timeout(STOP_DRAIN, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
        // Every operation is bounded, so this ends; a response that failed
        // is kept in `unwritten` by then.
        _ => while tasks.join_next().await.is_some() {},
    }
    end
}

async fn create_request_dir(xs: &XsTokio, path: &str) -> io::Result<()> {
    match op(xs.directory(path)).await {
        Err(e) if is_missing(&e) => op(xs.write(path, "")).await,
        // Too many names to list: it exists.
        Err(e) if is_not_text(&e) => Ok(()),
        other => other.map(drop),
    }
}

/// What the session's tasks share; cloned into each.
struct Session<'a> {
    core: &'a Arc<Core>,
    xs: &'a XsTokio,
    /// A task that finds the connection broken says so here.
    failed: UnboundedSender<String>,
    /// Set when the request directory was too big to list (its names exceed
    /// one reply, and xenstore-rs lacks DIRECTORY_PART): when the listing
    /// last failed. It is retried on later changes until it succeeds.
    unlisted: Cell<Option<Instant>>,
    /// The request directory changed since the last listing.
    changed: Cell<bool>,
}

pub(crate) enum Found {
    Request(Incoming),
    /// Its response exists: removed without running it again.
    Answered,
    /// Gone before it could be read, or taken already.
    Nothing,
}

impl Session<'_> {
    /// Considers every request waiting now.
    async fn scan(&self, tasks: &mut JoinSet<()>) -> Result<(), String> {
        let path = &self.core.settings.request_path;
        self.changed.set(false);
        let ids = match op(self.xs.directory(path)).await {
            Ok(ids) => ids,
            Err(e) if is_missing(&e) => Vec::new(),
            // E2BIG: too many names for one reply.
            Err(e) if is_not_text(&e) => {
                if self.unlisted.replace(Some(Instant::now())).is_none() {
                    tracing::warn!(
                        "{path} holds more request names than one XenStore reply carries; \
                         new requests are served as they appear, and the listing is \
                         retried as the directory changes ({e})"
                    );
                }
                return Ok(());
            }
            Err(e) => return Err(format!("cannot list {path}: {e}")),
        };
        if self.unlisted.take().is_some() {
            tracing::info!("{path} could be listed again; every waiting request is taken");
        }
        let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        if self.core.taken.sweep_pending() {
            // Awaited before any request is taken from the listing or from
            // later events: see `Taken::sweep_once`.
            let listed: HashSet<String> = ids.iter().cloned().collect();
            let core = Arc::clone(self.core);
            let _ = tokio::task::spawn_blocking(move || core.taken.sweep_once(&listed)).await;
        }
        for id in ids {
            tasks.spawn(self.consider(id));
        }
        Ok(())
    }

    fn note_change(&self) {
        self.changed.set(true);
    }

    /// A listing that failed for size is retried once the directory has
    /// changed (a request answered or given up by the host makes it
    /// smaller), at most every [`RELIST_EVERY`].
    fn relist_wanted(&self) -> bool {
        self.unlisted.get().is_some() && self.changed.get()
    }

    fn relist_delay(&self) -> Duration {
        let since = self.unlisted.get().map_or(RELIST_EVERY, |t| t.elapsed());
        RELIST_EVERY.saturating_sub(since)
    }

    /// Takes request `id` unless it is taken already, answered or gone.
    fn consider(&self, id: String) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (core, xs, failed) = (Arc::clone(self.core), self.xs.clone(), self.failed.clone());
        async move {
            if !core.claim(&id) {
                return;
            }
            match examine(&core, &xs, &id).await {
                Ok(Found::Request(request)) => {
                    tracing::debug!("request {id} taken");
                    if !core.queue.push(request) {
                        core.release(&id);
                    }
                }
                Ok(Found::Answered) => {
                    tracing::info!(
                        "request {id} was already answered; removed without running it again"
                    );
                    unmark(&core, &id).await;
                    core.release(&id);
                }
                Ok(Found::Nothing) => core.release(&id),
                Err(reason) => {
                    core.release(&id);
                    let _ = failed.send(reason);
                }
            }
        }
    }

    /// Writes a response (if there is one), then removes its request.
    fn respond(
        &self,
        id: String,
        response: Option<String>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (core, xs, failed) = (Arc::clone(self.core), self.xs.clone(), self.failed.clone());
        async move {
            let request_path = core.settings.request(&id);
            let response_path = core.settings.response(&id);
            match &response {
                None => {
                    tracing::info!("request {id} has no response to write; removing it unanswered")
                }
                // Never hand xenstore-rs an oversized message: it drops the
                // connection. The agent's response limit makes this
                // unreachable for ids it serves normally.
                Some(text) if response_path.len() + 1 + text.len() > PAYLOAD_MAX => {
                    tracing::error!(
                        "the response to request {id} does not fit in one XenStore write; \
                         removing the request unanswered"
                    )
                }
                Some(text) => {
                    if let Err(e) = op(xs.write(&response_path, text)).await {
                        core.keep_unwritten(id, response);
                        let _ = failed.send(format!("cannot write {response_path}: {e}"));
                        return;
                    }
                }
            }
            match op(xs.rm(&request_path)).await {
                Ok(()) => unmark(&core, &id).await,
                Err(e) if is_missing(&e) => unmark(&core, &id).await,
                // With its response written, the next scan removes the
                // request (and its marker) without running it again;
                // without one, the removal is retried on the next
                // connection.
                Err(e) => {
                    let _ = failed.send(format!("cannot remove {request_path}: {e}"));
                    if response.is_none() {
                        // Still ours (in flight), so no scan takes it again.
                        core.keep_unwritten(id, None);
                        return;
                    }
                }
            }
            core.release(&id);
        }
    }
}

pub(crate) async fn examine(core: &Core, xs: &XsTokio, id: &str) -> Result<Found, String> {
    let settings = &core.settings;
    let request_path = settings.request(id);
    let body = match op(xs.read(&request_path)).await {
        Ok(value) => Ok(value.into_boxed_bytes().into_vec()),
        Err(e) if is_missing(&e) => return Ok(Found::Nothing),
        Err(e) if is_not_text(&e) => Err(NOT_TEXT),
        Err(e) => return Err(format!("cannot read {request_path}: {e}")),
    };
    let response_path = settings.response(id);
    match op(xs.read(&response_path)).await {
        Err(e) if is_missing(&e) => {}
        Ok(_) => return remove_answered(xs, &request_path).await,
        Err(e) if is_not_text(&e) => return remove_answered(xs, &request_path).await,
        Err(e) => return Err(format!("cannot read {response_path}: {e}")),
    }
    let request = match body {
        _ if core.taken.is_marked(id) => {
            tracing::warn!(
                "request {id} was being run when the agent stopped; answering it \"500\" \
                 without running it again"
            );
            Incoming::unreadable(id, STOPPED)
        }
        _ if !id_fits(id) => {
            Incoming::unreadable(id, format!("Request id is longer than {MAX_ID_LEN} bytes"))
        }
        Ok(bytes) => Incoming::request(id, bytes),
        Err(reason) => Incoming::unreadable(id, reason),
    };
    Ok(Found::Request(request))
}

/// Removes request `id`'s marker off the XenStore thread: an unlink blocks
/// while the filesystem is frozen.
async fn unmark(core: &Arc<Core>, id: &str) {
    let (core, id) = (Arc::clone(core), id.to_owned());
    let _ = tokio::task::spawn_blocking(move || core.taken.unmark(&id)).await;
}

async fn remove_answered(xs: &XsTokio, request_path: &str) -> Result<Found, String> {
    match op(xs.rm(request_path)).await {
        Ok(()) => Ok(Found::Answered),
        Err(e) if is_missing(&e) => Ok(Found::Nothing),
        Err(e) => Err(format!("cannot remove {request_path}: {e}")),
    }
}
