//! The state of the gates plugins declare (`Provides::gate`): agent-wide,
//! keyed by name, so that it outlives the generation that closed it (a hot
//! swap), and recorded in `<state_dir>/gates/` so that it outlives the agent
//! (a restart while the guest's filesystems are frozen).
//!
//! Architecture invariants:
//! - a gate's marker is on disk before the gate reads closed, and removed
//!   only once it reads open: the command that closes a gate (a freeze) acts
//!   after the marker is written, so a restarted agent never forgets it;
//! - a marker written in another boot (the kernel's boot id differs) is
//!   stale: a reboot thaws everything, so it is removed at start-up;
//! - while any gate is closed the agent writes no file of its own: its log
//!   is held (see `logging::hold`; only with `apply = true`, when something
//!   really is frozen) and reloads wait (see `swap`). A frozen filesystem
//!   blocks every write until it thaws, and a blocked agent could not serve
//!   the thaw.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nova_agent_support::sync::lock;

use crate::logging;

/// The kernel's identifier of this boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, Default)]
pub(crate) struct Gates {
    /// Gate name → closed.
    closed: Mutex<BTreeMap<String, bool>>,
    /// How many gates are closed, read without the lock.
    closed_count: AtomicUsize,
    /// Where markers live; `None`: in memory only (one-shot commands, tests).
    dir: Option<PathBuf>,
    /// The agent's log is held while a gate is closed (the serving agent's
    /// gates; not those of tests, which share one process-wide log).
    holds_log: bool,
}

impl Gates {
    /// Gates recorded under `<state_dir>/gates`, with the closed ones of this
    /// boot restored. `holds_log`: the agent's log is held while one is
    /// closed; the serving agent's with `apply = true` (with `apply = false`
    /// nothing is really frozen, and the log shows what would have been
    /// done).
    pub(crate) fn recorded(state_dir: &Path, holds_log: bool) -> Gates {
        let gates = Gates::recorded_at(state_dir.join("gates"), holds_log);
        if holds_log && gates.any_closed() {
            logging::hold(true);
        }
        gates
    }

    /// The gates a serving agent recorded, for a process that does not
    /// serve (`nova-agent resetnetwork` is refused while frozen too): read
    /// only, nothing removed or written.
    pub(crate) fn recorded_read_only(state_dir: &Path) -> Gates {
        let closed = restore(&state_dir.join("gates"), &boot_id(), false);
        Gates::closed(closed, None, false)
    }

    fn recorded_at(dir: PathBuf, holds_log: bool) -> Gates {
        let closed = restore(&dir, &boot_id(), true);
        Gates::closed(closed, Some(dir), holds_log)
    }

    fn closed(names: Vec<String>, dir: Option<PathBuf>, holds_log: bool) -> Gates {
        Gates {
            closed_count: AtomicUsize::new(names.len()),
            closed: Mutex::new(names.into_iter().map(|name| (name, true)).collect()),
            dir,
            holds_log,
        }
    }

    /// Closes or opens `gate`; fails when its marker cannot be written, and
    /// then the gate stays open.
    pub(crate) fn set(&self, gate: &str, closed: bool) -> Result<(), String> {
        if !valid_name(gate) {
            return Err(format!("gate name '{gate}' is not a plain name"));
        }
        let mut state = lock(&self.closed);
        let was_closed = state.get(gate).copied().unwrap_or(false);
        if was_closed == closed {
            return Ok(());
        }
        if closed {
            if let Some(dir) = &self.dir {
                write_marker(dir, gate).map_err(|e| {
                    format!(
                        "cannot record gate '{gate}' in {}: {e}; it stays open",
                        dir.display()
                    )
                })?;
            }
            tracing::info!(gate, "gate closed");
            state.insert(gate.to_owned(), true);
            if self.closed_count.fetch_add(1, Ordering::AcqRel) == 0 && self.holds_log {
                logging::hold(true);
            }
        } else {
            state.insert(gate.to_owned(), false);
            if self.closed_count.fetch_sub(1, Ordering::AcqRel) == 1 && self.holds_log {
                logging::hold(false);
            }
            tracing::info!(gate, "gate opened");
            if let Some(dir) = &self.dir {
                if let Err(e) = fs::remove_file(dir.join(gate)) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(
                            gate,
                            "cannot remove the marker of gate '{gate}' in {}: {e}; \
                             a restarted agent will find the gate closed",
                            dir.display()
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self, gate: &str) -> bool {
        self.any_closed() && lock(&self.closed).get(gate) == Some(&true)
    }

    pub(crate) fn any_closed(&self) -> bool {
        self.closed_count.load(Ordering::Acquire) > 0
    }

    /// The names of the closed gates.
    pub(crate) fn closed_names(&self) -> Vec<String> {
        if !self.any_closed() {
            return Vec::new();
        }
        let closed = lock(&self.closed);
        closed
            .iter()
            .filter(|(_, closed)| **closed)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Gate names become file names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn boot_id() -> String {
    fs::read_to_string(BOOT_ID)
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// The marker: this boot's id, written and synced (file and directory)
/// before the gate closes.
fn write_marker(dir: &Path, gate: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let path = dir.join(gate);
    let mut file = fs::File::create(&path)?;
    file.write_all(format!("{}\n", boot_id()).as_bytes())?;
    file.sync_all()?;
    fs::File::open(dir)?.sync_all()
}

/// The gates closed in this boot, by their markers; stale markers removed
/// when `tidy`.
fn restore(dir: &Path, boot: &str, tidy: bool) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut closed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid_name(&name) {
            continue;
        }
        let recorded = fs::read_to_string(entry.path()).unwrap_or_default();
        if recorded.trim() == boot {
            if tidy {
                tracing::warn!(
                    gate = name.as_str(),
                    "gate '{name}' was closed when the agent stopped; it stays closed"
                );
            }
            closed.push(name);
        } else if tidy {
            tracing::info!(
                gate = name.as_str(),
                "gate '{name}' was closed in an earlier boot; it is open again"
            );
            let _ = fs::remove_file(entry.path());
        }
    }
    closed.sort();
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_is_recorded_and_restored_in_the_same_boot() {
        let state = tempfile::tempdir().unwrap();
        let gates = Gates::recorded_at(state.path().join("gates"), false);
        gates.set("frozen", true).unwrap();
        assert!(gates.is_closed("frozen"));
        let marker = state.path().join("gates/frozen");
        assert_eq!(fs::read_to_string(&marker).unwrap().trim(), boot_id());

        let restarted = Gates::recorded_at(state.path().join("gates"), false);
        assert!(restarted.is_closed("frozen") && restarted.any_closed());
        restarted.set("frozen", false).unwrap();
        assert!(!marker.exists());
        assert!(!Gates::recorded_at(state.path().join("gates"), false).any_closed());
    }

    #[test]
    fn a_marker_of_another_boot_is_stale_and_removed() {
        let state = tempfile::tempdir().unwrap();
        fs::create_dir_all(state.path().join("gates")).unwrap();
        let marker = state.path().join("gates/frozen");
        fs::write(&marker, "00000000-0000-0000-0000-000000000000\n").unwrap();
        let gates = Gates::recorded_at(state.path().join("gates"), false);
        assert!(!gates.is_closed("frozen"));
        assert!(!marker.exists());
    }

    #[test]
    fn a_gate_that_cannot_be_recorded_stays_open() {
        let state = tempfile::tempdir().unwrap();
        // A file where the directory should be.
        fs::write(state.path().join("gates"), "").unwrap();
        let gates = Gates::recorded_at(state.path().join("gates"), false);
        let error = gates.set("frozen", true).unwrap_err();
        assert!(error.contains("cannot record gate 'frozen'"), "{error}");
        assert!(!gates.is_closed("frozen") && !gates.any_closed());
    }

    #[test]
    fn only_plain_names_are_gates() {
        let gates = Gates::default();
        for bad in ["", "../x", "a/b", ".", "a b"] {
            assert!(gates.set(bad, true).is_err(), "{bad:?}");
        }
        gates.set("frozen_2-b", true).unwrap();
        gates.set("frozen_2-b", false).unwrap();
    }
}
