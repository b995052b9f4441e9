//! The `qga-core` plugin: the QEMU guest agent's (QGA) basic commands, each
//! as qemu-ga 7.2 does it on Linux, with qemu-ga's argument checks and error
//! texts:
//!
//! - `basics`: `guest-sync`, `guest-sync-delimited`, `guest-ping`,
//!   `guest-info` (every registered command, vendors' included);
//! - `os`: `guest-get-osinfo` (uname and `<root>/etc/os-release`, parsed in
//!   `os_release` as GLib and qemu-ga read it), `guest-get-host-name`,
//!   `guest-get-load` (QEMU 10's, not in 7.2);
//! - `time`: `guest-get-time`, `guest-set-time`, `guest-get-timezone`;
//! - `users`: `guest-get-users`, from `<root>/var/run/utmp`;
//! - `power`: `guest-shutdown` and `guest-suspend-{disk,ram,hybrid}`, which
//!   answer nothing when they succeed.
//!
//! Files of the guest's filesystem are read under the agent's root; the
//! kernel's live state (uname, host name, clock, time zone, load, the power
//! states in /sys) is read as it is. Every program goes through the runner,
//! and with `apply = false` nothing changes: the clock, programs that act
//! (shutdown, suspend, hwclock) and the write to /sys/power/state are only
//! logged. Programs that only ask (`systemctl status`, `pm-is-supported`)
//! run either way, as qemu-ga runs them to decide how to suspend.
//!
//! What it is not: the QGA wire. The `qga` parser frames requests, checks
//! envelopes, maps a value to `return` and an error to `GenericError`, leaves
//! the success of a command whose `success_response` is false unanswered,
//! and writes the 0xFF before `guest-sync-delimited`'s reply. Filesystems,
//! network, hardware, users' passwords and keys, files and exec are other
//! `qga-*` plugins' commands. It takes no config keys.

#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::time::TimeSpec;
use nix::time::{clock_settime, ClockId};
use nova_agent_plugin_api::{export_plugin, Call, CommandError, Host, PluginError, Provides};
use nova_agent_support::config::no_keys;
use nova_agent_support::qapi::Args;
use serde_json::Value;

mod basics;
mod os;
mod os_release;
mod power;
mod time;
mod users;

#[cfg(test)]
mod tests;

/// qemu-ga's `QERR_UNSUPPORTED`.
pub(crate) const UNSUPPORTED: &str = "this feature or command is not currently supported";

/// Sets the system clock (`CLOCK_REALTIME`).
pub(crate) type SetClock = dyn Fn(TimeSpec) -> nix::Result<()> + Send + Sync;

/// Where the commands find the system's programs and kernel files. The agent
/// uses [`System::live`]; unit tests point it at stubs and plain files.
pub(crate) struct System {
    /// `None`: each program by the name qemu-ga runs it by (an absolute path
    /// such as `/sbin/hwclock`, or a name looked up on the agent's PATH such
    /// as `systemctl`). `Some(dir)`: `dir/<file name>`, stubs in tests.
    pub tools: Option<PathBuf>,
    /// `/sys/power/state`: the sleep states the kernel offers, and where a
    /// suspend without helpers writes one.
    pub power_state: PathBuf,
    /// `/proc/loadavg`.
    pub loadavg: PathBuf,
    /// Called only with `apply = true`.
    pub set_clock: Arc<SetClock>,
}

impl System {
    pub(crate) fn live() -> System {
        System {
            tools: None,
            power_state: PathBuf::from("/sys/power/state"),
            loadavg: PathBuf::from("/proc/loadavg"),
            set_clock: Arc::new(|time| clock_settime(ClockId::CLOCK_REALTIME, time)),
        }
    }

    /// `program` (as qemu-ga names it) as the runner is to run it.
    pub(crate) fn program(&self, program: &str) -> String {
        match &self.tools {
            None => program.to_owned(),
            Some(dir) => {
                let name = Path::new(program).file_name().unwrap_or_default();
                dir.join(name).display().to_string()
            }
        }
    }
}

/// A QAPI `number` as qemu-ga writes it (`%.17g`): a whole value without a
/// fraction (`1700000050`, not `1700000050.0`), so that a client that tells
/// integers from floats sees the same type from both agents.
pub(crate) fn number(value: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT {
        // Exact: a whole double below 2^53 is an integer an i64 holds.
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

/// For a command that takes no arguments: `{}`, or "Parameter 'x' is
/// unexpected".
pub(crate) fn no_arguments(call: &Call<'_>) -> Result<(), CommandError> {
    Args::parse(call.arguments())?.finish()
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("qga-core", &config)?;
    Ok(provides(host, Arc::new(System::live())))
}

/// Every command, over `system`.
pub(crate) fn provides(host: Host, system: Arc<System>) -> Provides {
    let root = host.root();
    let provides = basics::provide(Provides::new(), &host);
    let provides = os::provide(provides, &root, &system);
    let provides = time::provide(provides, &host, &system);
    let provides = users::provide(provides, &root);
    power::provide(provides, &host, &system)
}

export_plugin! {
    name: "qga-core",
    description: "QGA basics: sync, ping, info, OS info, host name, time, time zone, users, load, shutdown, suspend",
    provides: {
        commands: [
            "guest-sync",
            "guest-sync-delimited",
            "guest-ping",
            "guest-info",
            "guest-get-osinfo",
            "guest-get-host-name",
            "guest-get-load",
            "guest-get-time",
            "guest-set-time",
            "guest-get-timezone",
            "guest-get-users",
            "guest-shutdown",
            "guest-suspend-disk",
            "guest-suspend-ram",
            "guest-suspend-hybrid",
        ],
    },
    init: init,
}
