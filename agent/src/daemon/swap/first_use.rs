//! A command's first call: its plugin, installed and not loaded, is loaded
//! by the request that needs it, and the registry published with it.
//!
//! Architecture invariants:
//! - a first use is a pass of its own over one plugin
//!   ([`pipeline::wake`]): it never picks up other changes in the plugin
//!   directories (those wait for a reload, which waits while a gate is
//!   closed);
//! - it runs under the reload lock, so a plugin is loaded once however many
//!   requests need it at the same moment; but it never waits for a reload
//!   that is itself waiting for requests to finish (`draining`): it answers
//!   that the plugin could not be loaded now instead;
//! - while a gate is closed it writes nothing: the plugin file is mapped in
//!   place, as at a start-up while frozen.

use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use crate::daemon::swap::{Plugins, Trigger};
use crate::plugins::pipeline::{self, Inputs};
use crate::plugins::registry::Table;
use crate::plugins::wake::Wake;

/// How often a first use looks again at a lock a reload holds.
const LOCK_POLL: Duration = Duration::from_millis(1);

impl Wake for Plugins {
    /// On a thread of its own: loading a plugin runs deep (`dlopen`, its
    /// `init`), and the stack pages a channel's worker touched would stay
    /// resident for the agent's life; a thread's stack is given back when
    /// it ends, and what the load freed is trimmed.
    fn wake(&self, plugin: &str) -> Result<Arc<Table>, String> {
        let woken = std::thread::scope(|scope| {
            let loader = std::thread::Builder::new()
                .name("first-use".into())
                .spawn_scoped(scope, || self.load_installed(plugin));
            match loader {
                Ok(loader) => loader.join().unwrap_or_else(|_| {
                    Err(format!(
                        "the agent panicked while loading plugin '{plugin}'"
                    ))
                }),
                Err(_) => self.load_installed(plugin),
            }
        });
        #[cfg(target_env = "gnu")]
        // SAFETY: no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        woken
    }
}

impl Plugins {
    fn load_installed(&self, plugin: &str) -> Result<Arc<Table>, String> {
        let started = Instant::now();
        let mut state = loop {
            match self.state.try_lock() {
                Ok(state) => break state,
                Err(TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
                Err(TryLockError::WouldBlock) if self.draining.load(Ordering::Acquire) => {
                    return Err(format!(
                        "plugin '{plugin}' is not loaded yet, and the agent is restarting a \
                         channel; try again"
                    ));
                }
                Err(TryLockError::WouldBlock) => std::thread::sleep(LOCK_POLL),
            }
        };
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(format!(
                "plugin '{plugin}' is not loaded, and the agent is stopping"
            ));
        }
        let current = self.registry.load_full();
        let still_installed = current
            .plugins
            .iter()
            .any(|r| r.is_installed() && r.manifest.name == plugin);
        if !still_installed {
            // Loaded meanwhile, by another request or a reload.
            return Ok(Arc::clone(&current.table));
        }
        let needed = self.needed();
        let frozen = self.shared.policy.any_gate_closed();
        let inputs = Inputs {
            config: &self.config,
            host: &self.host,
            staging: match frozen {
                true => None,
                false => self.staging().and_then(|staging| staging.as_ref().ok()),
            },
            retry: false,
            needed: &needed,
        };
        let found = pipeline::wake(&current, &inputs, &mut state.memory, plugin);
        self.publish(&mut state, current, found, Trigger::FirstUse, started);
        Ok(self.shared.table.load_full())
    }
}
