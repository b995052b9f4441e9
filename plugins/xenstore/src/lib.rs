//! The `xenstore` plugin: exchange `xenstore`, the Nova host protocol over
//! XenStore.
//!
//! The host writes each request as a child of `request_path` (default
//! `data/host`, under the domain's home `/local/domain/<domid>`); the agent
//! writes the response to `response_path/<same id>` (default `data/guest`)
//! and then removes the request. Requests are found through a XenStore watch
//! the moment they appear, and those already waiting when the agent starts
//! are found by a scan; there is no polling. A request whose response already
//! exists is removed without being run again. A request handed to a worker
//! is marked as taken on disk (`<state_dir>/xenstore/taken/<id>`) until it
//! is answered: one found marked after a restart (the agent died running it)
//! is answered "500" without being run again. The exchange also serves
//! command metadata (`vm-data/hostname`, `vm-data/networking/*`) from the
//! domain's home.
//!
//! What it is not: it does not parse requests (the channel's parser does),
//! never logs request or response values (they carry passwords and keys),
//! and is the only XenStore client in the agent.
//!
//! Licence: it links xenstore-rs, which is GPL-3.0-only, so this crate is
//! GPL-3.0-only; every other crate of nova-agent is Apache-2.0 OR MIT and none
//! depends on this one. The agent loads it as a separate `.so`.
//!
//! Threads: `start` spawns one thread running a single-threaded tokio runtime
//! (xenstore-rs has watches only in its async backend); it connects, and
//! reconnects with backoff when xenstored goes away (XENSTORED_PATH, else
//! /run/xenstored/socket, else /dev/xen/xenbus). The agent's workers block in
//! `next` on a queue that thread fills, and `respond` hands the answer back
//! to it: the response is written, then the request removed; an empty answer
//! removes the request without writing a response.
//!
//! Layout: this file holds the [`Exchange`] object; `settings` the config
//! table and XenStore's name rules; `core` the state shared between the
//! workers and the XenStore thread; `queue` the hand-over of requests;
//! `link` the connect/reconnect loop; `session` one connection's work;
//! `job` what those two share (the jobs sent to the thread, the outage log);
//! `taken` the markers of requests in flight.
//!
//! ```toml
//! [plugins.xenstore]
//! request_path = "data/host"     # the default
//! response_path = "data/guest"   # the default
//! ```

#![forbid(unsafe_code)]

use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nova_agent_plugin_api::{
    export_plugin, Exchange, Host, Incoming, Input, PluginError, Provides,
};
use nova_agent_support::sync::lock;
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use xenstore_rs::AsyncXs;

use crate::core::{is_missing, is_not_text, op, Core};
use crate::job::Job;
use crate::settings::{check_key, Settings};
use crate::taken::Taken;

mod core;
mod job;
mod link;
mod queue;
mod session;
mod settings;
mod taken;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

/// How long a stop waits for the XenStore thread to finish its writes.
const STOP_WAIT: Duration = Duration::from_secs(3);

struct XenstoreExchange {
    core: Arc<Core>,
    thread: Arc<Mutex<Option<Thread>>>,
}

/// The running XenStore thread.
struct Thread {
    jobs: UnboundedSender<Job>,
    runtime: Handle,
    done: mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

impl Thread {
    fn spawn(core: &Arc<Core>) -> Result<Thread, PluginError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PluginError::failed(format!("cannot start the XenStore runtime: {e}")))?;
        let (jobs, jobs_rx) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, done) = mpsc::channel();
        let handle = runtime.handle().clone();
        let core = Arc::clone(core);
        let thread = std::thread::Builder::new()
            .name("xenstore".into())
            .spawn(move || {
                runtime.block_on(link::serve(&core, jobs_rx));
                let _ = done_tx.send(());
            })
            .map_err(|e| PluginError::failed(format!("cannot start the XenStore thread: {e}")))?;
        Ok(Thread {
            jobs,
            runtime: handle,
            done,
            handle: thread,
        })
    }

    /// Lets the thread finish the writes under way, then joins it (bounded).
    fn stop(self) {
        let _ = self.jobs.send(Job::Stop);
        match self.done.recv_timeout(STOP_WAIT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("the XenStore thread did not stop within {STOP_WAIT:?}")
            }
            _ => {
                let _ = self.handle.join();
            }
        }
    }
}

impl XenstoreExchange {
    fn send(&self, job: Job) -> Result<(), PluginError> {
        let thread = lock(&self.thread);
        let sent = thread.as_ref().map(|t| t.jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(PluginError::failed("the XenStore exchange is not running")),
        }
    }

    /// Runs one metadata operation on the channel's live connection, or,
    /// when the exchange is not started (`nova-agent resetnetwork` at boot),
    /// on a connection of its own for this one operation.
    fn on_connection<T>(
        &self,
        operation: impl AsyncFnOnce(&xenstore_rs::tokio::XsTokio) -> std::io::Result<T>,
    ) -> Result<std::io::Result<T>, PluginError> {
        let runtime = lock(&self.thread).as_ref().map(|t| t.runtime.clone());
        match (runtime, self.core.current()) {
            (Some(runtime), Some(xs)) => Ok(runtime.block_on(op(operation(&xs)))),
            (Some(_), None) => Err(PluginError::failed("XenStore is not connected")),
            (None, _) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| PluginError::failed(format!("cannot start a runtime: {e}")))?;
                runtime.block_on(async {
                    let xs = op(xenstore_rs::tokio::XsTokio::new()).await.map_err(|e| {
                        PluginError::failed(format!("cannot connect to XenStore: {e}"))
                    })?;
                    Ok(op(operation(&xs)).await)
                })
            }
        }
    }
}

impl Exchange for XenstoreExchange {
    fn start(&self) -> Result<(), PluginError> {
        let mut thread = lock(&self.thread);
        self.core.queue.reopen();
        match thread.as_ref() {
            Some(running) if !running.handle.is_finished() => {
                // A restarted channel: requests dropped from the queue at its
                // stop are still waiting in XenStore.
                let _ = running.jobs.send(Job::Rescan);
            }
            _ => *thread = Some(Thread::spawn(&self.core)?),
        }
        Ok(())
    }

    fn next(&self) -> Result<Option<Incoming>, PluginError> {
        let request = self.core.queue.pop();
        // Only requests run commands; an unreadable one is answered by the
        // parser, and one found marked keeps its marker until answered.
        if let Some(Incoming {
            id,
            input: Input::Request(_),
        }) = &request
        {
            self.core.taken.mark(id);
        }
        Ok(request)
    }

    fn respond(&self, id: &str, response: &[u8]) -> Result<(), PluginError> {
        // xenstore-rs writes text only; the json parser's responses are ASCII.
        let response = match std::str::from_utf8(response) {
            _ if response.is_empty() => None,
            Ok(text) => Some(text.to_owned()),
            Err(_) => {
                tracing::warn!("the response to request {id} is not UTF-8; writing it lossily");
                Some(String::from_utf8_lossy(response).into_owned())
            }
        };
        self.send(Job::Respond {
            id: id.to_owned(),
            response,
        })
    }

    fn max_response_len(&self) -> Option<u64> {
        Some(self.core.settings.max_response_len() as u64)
    }

    fn metadata_read(&self, key: &str) -> Result<Option<String>, PluginError> {
        check_key(key)?;
        match self.on_connection(async |xs| xs.read(key).await)? {
            Ok(value) => Ok(Some(value.into())),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) if is_not_text(&e) => Err(PluginError::failed(format!(
                "metadata key {key} is not valid UTF-8"
            ))),
            Err(e) => Err(PluginError::failed(format!(
                "cannot read metadata key {key}: {e}"
            ))),
        }
    }

    fn metadata_list(&self, dir: &str) -> Result<Vec<String>, PluginError> {
        check_key(dir)?;
        match self.on_connection(async |xs| xs.directory(dir).await)? {
            Ok(names) => {
                let mut names: Vec<String> = names.into_iter().map(String::from).collect();
                names.sort_unstable();
                Ok(names)
            }
            Err(e) if is_missing(&e) => Ok(Vec::new()),
            Err(e) => Err(PluginError::failed(format!(
                "cannot list metadata directory {dir}: {e}"
            ))),
        }
    }

    fn shutdown(&self) {
        // The XenStore thread keeps running until the plugin's own shutdown,
        // so the workers' last responses still get written.
        self.core.close_queue();
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    let settings = Settings::parse(config)?;
    let exchange = XenstoreExchange {
        core: Arc::new(Core::new(settings, Taken::new(&host.state_dir()))),
        thread: Arc::default(),
    };
    let thread = Arc::clone(&exchange.thread);
    Ok(Provides::new()
        .exchange("xenstore", exchange)
        .on_shutdown(move || {
            let running = lock(&thread).take();
            if let Some(running) = running {
                running.stop();
            }
        }))
}

export_plugin! {
    name: "xenstore",
    description: "the Nova host protocol over XenStore (data/host in, data/guest out)",
    provides: { exchanges: ["xenstore"] },
    init: init,
}
