//! A channel: one exchange paired with one parser, served by its own threads.
//!
//! The channel's first thread opens the exchange (`start`); then a few
//! workers each run the request loop (see [`serve`](super::serve)), so a slow
//! command does not hold up the others (the original ran everything on one
//! thread, bug B-CORE-3). A failing channel stops only itself.
//!
//! Architecture invariant: a channel's exchange is shut down and its workers
//! joined before the channel lets go of the exchange's generation.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use nova_agent_plugin_api::ffi::ExchangeBox;

use crate::config::ChannelConfig;
use crate::daemon::channels::serve::{Activity, Shared, Streams, Worker, WORKERS};
use crate::plugins::registry::{Provided, Registry};

const WORKER_STACK: usize = 512 * 1024;

pub(crate) struct Channel {
    pub(crate) name: String,
    /// The exchange and the plugin generation it belongs to.
    pub(crate) exchange: Provided<ExchangeBox>,
    pub(crate) parser: String,
    pub(crate) activity: Arc<Activity>,
    pub(crate) streams: Arc<Streams>,
    workers: Vec<JoinHandle<()>>,
}

impl Channel {
    /// Starts the channel's exchange (from `registry`, which must also have
    /// its parser) on a thread of its own and waits for the outcome; on
    /// success the workers are running.
    pub(crate) fn start(
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
        if !registry.table.parsers.contains_key(&config.parser) {
            return Err(format!("no plugin provides parser '{}'", config.parser));
        }
        let activity = Arc::new(Activity::new());
        let streams = Arc::new(Streams::default());
        let worker = || {
            Worker::new(
                &name,
                &provided,
                &config.parser,
                shared,
                &activity,
                &streams,
            )
        };

        let (started_tx, started_rx) = mpsc::channel();
        let first = {
            let worker = worker();
            spawn(&name, move || {
                let started = worker.exchange.object.start().into_result();
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if ok {
                    worker.run();
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
        let mut channel = Channel {
            name: name.clone(),
            exchange: provided.clone(),
            parser: config.parser.clone(),
            activity: Arc::clone(&activity),
            streams: Arc::clone(&streams),
            workers: vec![first],
        };
        for _ in 1..WORKERS {
            let worker = worker();
            // On failure the channel's drop stops the workers started so far.
            channel.workers.push(spawn(&name, move || worker.run())?);
        }
        Ok(channel)
    }

    /// Asks the exchange to stop; its workers finish their current request.
    pub(crate) fn stop(&self) {
        self.exchange.object.shutdown();
    }

    /// Waits for the workers (after [`stop`](Self::stop)).
    pub(crate) fn join(mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Channel {
    /// A channel dropped while running (a failed start): stopped and joined
    /// first, so its exchange's generation outlives its workers.
    fn drop(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.stop();
        for worker in self.workers.drain(..) {
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
