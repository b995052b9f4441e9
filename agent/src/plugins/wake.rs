//! Loading on first use: how the request path and the plugins' host reach
//! the running agent to load a plugin that is installed but not loaded.
//!
//! The agent sets its [`Wake`] once its plugins exist; a process that does
//! not serve (`config check`, `plugins list`) loads what it needs at once and
//! sets none.

use std::sync::{Arc, OnceLock, Weak};

use crate::plugins::registry::Table;

/// Loads installed plugins on demand.
pub(crate) trait Wake: Send + Sync {
    /// Loads `plugin` unless it is loaded by now, and returns the table
    /// serving afterwards (where its commands are loaded, or answer why it
    /// could not be). The error: why no load could be tried now.
    fn wake(&self, plugin: &str) -> Result<Arc<Table>, String>;
}

/// Where the dispatcher and the host find the agent's [`Wake`].
#[derive(Default)]
pub(crate) struct Waker(OnceLock<Weak<dyn Wake>>);

impl Waker {
    pub(crate) fn set(&self, wake: Weak<dyn Wake>) {
        let _ = self.0.set(wake);
    }

    /// The table serving once `plugin` is loaded; the error says why no
    /// load could be tried (nothing loads on demand in a process that does
    /// not serve, or once the agent is stopping).
    pub(crate) fn wake(&self, plugin: &str) -> Result<Arc<Table>, String> {
        match self.0.get().and_then(Weak::upgrade) {
            Some(wake) => wake.wake(plugin),
            None => Err(format!(
                "plugin '{plugin}' is not loaded, and this process does not load plugins on demand"
            )),
        }
    }
}
