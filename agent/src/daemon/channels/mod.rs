//! The configured channels, each running on one exchange generation or
//! stopped with a reason, and which of them a new registry makes stale.
//!
//! - [`channel`]: one channel's threads;
//! - [`serve`]: the request loop its workers run;
//! - [`in_flight`]: the requests the workers are answering, which a stop
//!   that cannot wait any longer answers itself.

mod channel;
mod in_flight;
mod serve;

use std::sync::Arc;

use crate::config::ChannelConfig;
use crate::plugins::registry::{Registry, Table};
use crate::plugins::view::ChannelView;
use channel::Channel;

pub(crate) use serve::{Activity, Shared};

/// The reason of a channel stopped to restart it.
const STOPPED: &str = "stopped for a plugin reload";

pub(crate) struct Channels {
    slots: Vec<Slot>,
}

struct Slot {
    config: ChannelConfig,
    running: Option<Channel>,
    error: Option<String>,
}

impl Channels {
    pub(crate) fn new(configs: &[ChannelConfig]) -> Channels {
        Channels {
            slots: configs
                .iter()
                .map(|config| Slot {
                    config: config.clone(),
                    running: None,
                    error: Some("not started".to_owned()),
                })
                .collect(),
        }
    }

    /// The channels to (re)start under `registry`: running on an exchange
    /// generation it no longer has, or without the parser it names, or not
    /// running at all.
    pub(crate) fn stale(&self, registry: &Registry) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| {
                let Some(running) = &slot.running else {
                    return true;
                };
                let exchange_changed = registry
                    .exchanges
                    .get(&slot.config.exchange)
                    .is_none_or(|p| !Arc::ptr_eq(&p.instance, &running.exchange.instance));
                exchange_changed || !registry.table.parsers.contains_key(&slot.config.parser)
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Stops the channels at `which`: their exchanges stop taking requests
    /// all at once, then each channel's workers finish what they took.
    pub(crate) fn stop(&mut self, which: &[usize]) {
        let mut stopping = Vec::new();
        for &i in which {
            if let Some(channel) = self.slots[i].running.take() {
                self.slots[i].error = Some(STOPPED.to_owned());
                stopping.push(channel);
            }
        }
        for channel in &stopping {
            tracing::info!(channel = %channel.name, "stopping channel");
            channel.stop();
        }
        for channel in stopping {
            channel.join();
        }
    }

    pub(crate) fn stop_all(&mut self) {
        let all: Vec<usize> = (0..self.slots.len()).collect();
        self.stop(&all);
    }

    /// Starts the channels at `which`; returns the names of those that
    /// serve again after having served before.
    pub(crate) fn start(
        &mut self,
        which: &[usize],
        registry: &Registry,
        shared: &Arc<Shared>,
    ) -> Vec<String> {
        let mut restarted = Vec::new();
        for &i in which {
            let slot = &mut self.slots[i];
            let name = slot.config.name();
            let served_before = slot.error.as_deref() == Some(STOPPED);
            match Channel::start(&slot.config, registry, shared) {
                Ok(channel) => {
                    tracing::info!(channel = %name, "channel serving");
                    slot.running = Some(channel);
                    slot.error = None;
                    if served_before {
                        restarted.push(name);
                    }
                }
                Err(e) => {
                    if slot.error.as_deref() != Some(e.as_str()) {
                        tracing::error!(channel = %name, "channel cannot serve: {e}");
                    }
                    slot.error = Some(e);
                }
            }
        }
        restarted
    }

    /// Drops the running channels' stream decoders that `table` no longer
    /// serves the parser of.
    pub(crate) fn forget_stale_decoders(&self, table: &Table) {
        for channel in self.slots.iter().filter_map(|slot| slot.running.as_ref()) {
            channel.streams.forget_stale(table, &channel.parser);
        }
    }

    /// The running channels' activity, for the watchdog.
    pub(crate) fn activities(&self) -> Vec<(String, Arc<Activity>)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.running.as_ref())
            .map(|c| (c.name.clone(), Arc::clone(&c.activity)))
            .collect()
    }

    pub(crate) fn views(&self) -> Vec<ChannelView> {
        self.slots
            .iter()
            .map(|slot| ChannelView {
                name: slot.config.name(),
                exchange: slot.running.as_ref().map(|c| {
                    format!(
                        "{} generation {}",
                        c.exchange.plugin(),
                        c.exchange.instance.generation
                    )
                }),
                error: slot.error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
