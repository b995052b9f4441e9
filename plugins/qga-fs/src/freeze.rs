//! `guest-fsfreeze-*` as qemu-ga 7.2 does them on Linux
//! (qga/commands-posix.c, qga/commands-linux.c), with the frozen state kept
//! as the agent's gate `frozen`, and `thaw_after` on top.
//!
//! Freeze: read the mount table, close the gate (qemu-ga marks itself frozen
//! before the first FIFREEZE: it must not block on a write of its own), then
//! FIFREEZE each mount in reverse mount order, so a filesystem mounted on
//! another is frozen first. EOPNOTSUPP (a filesystem that cannot freeze) and
//! EBUSY (already frozen, e.g. through a bind mount) are skipped; any other
//! error thaws everything and fails. When nothing froze, the gate opens
//! again. Thaw: FITHAW each mount until it fails (stacked freezes need as
//! many thaws), count the mounts it thawed, open the gate.
//!
//! No fsfreeze hook runs (qemu-ga's `-F`): this agent has none.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::errno::Errno;
use nova_agent_plugin_api::{CommandError, Gate, Host};
use nova_agent_support::sync::lock;

use crate::mounts::{mount_list, Mount, Paths};
use crate::ops::{strerror, Failure, Filesystems};
use crate::watchdog::{Overdue, Watchdog};

/// The gate that holds every command but six while the filesystems are
/// frozen (reference §0 rule 12).
pub(crate) const GATE: &str = "frozen";

pub(crate) fn gate() -> Gate {
    Gate::new(GATE)
        .reason("the agent is in frozen state")
        .allow([
            "guest-ping",
            "guest-info",
            "guest-sync",
            "guest-sync-delimited",
            "guest-fsfreeze-status",
            "guest-fsfreeze-thaw",
        ])
}

pub(crate) struct Freezer {
    host: Host,
    paths: Paths,
    fs: Arc<dyn Filesystems>,
    /// One freeze or thaw at a time, the watchdog's included.
    busy: Mutex<()>,
    watchdog: Watchdog,
    me: Weak<Freezer>,
}

impl Freezer {
    pub(crate) fn new(
        host: Host,
        paths: Paths,
        fs: Arc<dyn Filesystems>,
        thaw_after: Option<Duration>,
    ) -> Arc<Freezer> {
        Arc::new_cyclic(|me| Freezer {
            host,
            paths,
            fs,
            busy: Mutex::new(()),
            watchdog: Watchdog::new(thaw_after),
            me: me.clone(),
        })
    }

    /// `guest-fsfreeze-status`: the gate is the one frozen flag (the agent
    /// keeps it across restarts and swaps).
    pub(crate) fn status(&self) -> &'static str {
        if self.host.gate_closed(GATE) {
            "frozen"
        } else {
            "thawed"
        }
    }

    /// `guest-fsfreeze-freeze` (`only` = `None`) and
    /// `guest-fsfreeze-freeze-list`: how many filesystems froze.
    pub(crate) fn freeze(&self, only: Option<&[String]>) -> Result<i64, CommandError> {
        let _busy = lock(&self.busy);
        tracing::info!("guest-fsfreeze called");
        let mounts = mount_list(&self.paths).map_err(CommandError::failed)?;
        self.host.set_gate(GATE, true)?;
        match self.freeze_mounts(&mounts, only) {
            Ok(0) => {
                self.host.set_gate(GATE, false)?;
                self.watchdog.disarm();
                Ok(0)
            }
            Ok(frozen) => {
                tracing::info!("froze {frozen} filesystem(s)");
                self.arm();
                Ok(frozen)
            }
            Err(e) => {
                tracing::warn!("{e}; thawing what was frozen");
                if let Err(thaw) = self.thaw_locked() {
                    tracing::warn!("cannot thaw after a failed freeze: {thaw}");
                    self.arm();
                }
                Err(e)
            }
        }
    }

    fn freeze_mounts(
        &self,
        mounts: &[Mount],
        only: Option<&[String]>,
    ) -> Result<i64, CommandError> {
        let mut frozen = 0;
        for mount in mounts.iter().rev() {
            if only.is_some_and(|list| !list.iter().any(|m| mount.is(m))) {
                continue;
            }
            match self.fs.freeze(mount) {
                Ok(()) => frozen += 1,
                Err(Failure::Ioctl(Errno::EOPNOTSUPP | Errno::EBUSY)) => {}
                Err(Failure::Open(e)) => {
                    return Err(CommandError::failed(format!(
                        "failed to open {}: {}",
                        mount.shown(),
                        strerror(e)
                    )))
                }
                Err(Failure::Ioctl(e)) => {
                    return Err(CommandError::failed(format!(
                        "failed to freeze {}: {}",
                        mount.shown(),
                        strerror(e)
                    )))
                }
            }
        }
        Ok(frozen)
    }

    /// `guest-fsfreeze-thaw`: how many filesystems thawed.
    pub(crate) fn thaw(&self) -> Result<i64, CommandError> {
        let _busy = lock(&self.busy);
        let thawed = self.thaw_locked()?;
        tracing::info!("thawed {thawed} filesystem(s)");
        Ok(thawed)
    }

    /// A mount point that cannot be opened is passed over, as by qemu-ga;
    /// only an unreadable mount table fails (and leaves the gate closed).
    fn thaw_locked(&self) -> Result<i64, CommandError> {
        let mounts = mount_list(&self.paths).map_err(CommandError::failed)?;
        let thawed = mounts
            .iter()
            .filter(|mount| matches!(self.fs.thaw(mount), Ok(n) if n > 0))
            .count();
        self.host.set_gate(GATE, false)?;
        self.watchdog.disarm();
        Ok(thawed as i64)
    }

    /// Starts (or restarts) the `thaw_after` countdown. Also called at
    /// init: on a fresh start the agent restores a closed gate only after
    /// the plugins' `init`, so the countdown cannot wait to see it; when it
    /// ends, [`Overdue::overdue`] looks at the gate.
    pub(crate) fn arm(&self) {
        let me: Weak<dyn Overdue> = self.me.clone();
        self.watchdog.arm(me);
    }

    /// Ends the `thaw_after` thread: the plugin is being retired.
    pub(crate) fn shutdown(&self) {
        self.watchdog.stop();
    }

    #[cfg(test)]
    pub(crate) fn watchdog_running(&self) -> bool {
        self.watchdog.running()
    }
}

impl Overdue for Freezer {
    fn overdue(&self, generation: u64, after: Duration) {
        let _busy = lock(&self.busy);
        if generation != self.watchdog.generation() || !self.host.gate_closed(GATE) {
            return;
        }
        // Said once the thaw opened the gate: the agent's log is held while
        // it is closed.
        match self.thaw_locked() {
            Ok(thawed) => {
                tracing::warn!("{}", overdue_message(after));
                tracing::info!("thawed {thawed} filesystem(s)");
            }
            Err(e) => {
                tracing::warn!(
                    "{}; cannot thaw: {e}; trying again in {}",
                    overdue_message(after),
                    humantime::format_duration(after)
                );
                self.arm();
            }
        }
    }
}

pub(crate) fn overdue_message(after: Duration) -> String {
    format!(
        "filesystems frozen for {} without a thaw from the host; thawing them",
        humantime::format_duration(after)
    )
}
