//! `guest-shutdown` and `guest-suspend-{disk,ram,hybrid}`: commands whose
//! success is not answered (the host waits for QEMU's SHUTDOWN, RESET or
//! SUSPEND event instead); their errors are.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use nova_agent_plugin_api::{Call, Command, CommandError, Host, Provides};
use nova_agent_support::qapi::Args;
use nova_agent_support::runner::{Arg, Outcome, RunError, Runner};
use serde_json::{json, Value};

use crate::time::abnormal;
use crate::{no_arguments, System};

pub(crate) fn provide(provides: Provides, host: &Host, system: &Arc<System>) -> Provides {
    let runner = Runner::new(host.apply());
    let suspend = |mode| Suspend {
        mode,
        runner: runner.clone(),
        // Asking which way suspends changes nothing, so it runs even with
        // `apply = false`; a wedged systemctl must not hold the command.
        probe: Runner::new(true).with_timeout(Duration::from_secs(30)),
        system: Arc::clone(system),
    };
    provides
        .command(
            "guest-shutdown",
            Shutdown {
                runner: runner.clone(),
                system: Arc::clone(system),
            },
        )
        .command("guest-suspend-disk", suspend(Mode::Disk))
        .command("guest-suspend-ram", suspend(Mode::Ram))
        .command("guest-suspend-hybrid", suspend(Mode::Hybrid))
}

/// The program qemu-ga shuts down with, and its Linux arguments.
pub(crate) const SHUTDOWN: &str = "/sbin/shutdown";
const SHUTDOWN_MESSAGE: &str = "hypervisor initiated shutdown";

/// `guest-shutdown {*mode}`: `/sbin/shutdown -h -P|-H|-r +0 "hypervisor
/// initiated shutdown"` for `powerdown` (the default), `halt` or `reboot`.
struct Shutdown {
    runner: Runner,
    system: Arc<System>,
}

impl Command for Shutdown {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let mode = args.opt_str("mode")?;
        args.finish()?;
        let flag = match mode.as_deref() {
            None | Some("powerdown") => "-P",
            Some("halt") => "-H",
            Some("reboot") => "-r",
            Some(_) => {
                return Err(CommandError::bad_arguments(
                    // Sic: qemu-ga's text has no closing parenthesis.
                    "mode is invalid (valid values are: halt|powerdown|reboot",
                ));
            }
        };
        tracing::info!(
            "guest-shutdown called, mode: {}",
            mode.as_deref().unwrap_or("powerdown")
        );
        let args: [Arg; 4] = [
            "-h".into(),
            flag.into(),
            "+0".into(),
            SHUTDOWN_MESSAGE.into(),
        ];
        let failed = || CommandError::failed("child process has failed to shutdown");
        match self.runner.run(&self.system.program(SHUTDOWN), &args) {
            Ok(Outcome::Skipped) => Ok(json!({})),
            Ok(Outcome::Finished(done)) if done.success() => Ok(json!({})),
            Ok(Outcome::Finished(done)) if done.code.is_none() => Err(abnormal()),
            Ok(Outcome::Finished(_)) => Err(failed()),
            Err(e) => {
                tracing::warn!("guest-shutdown: {e}");
                Err(if e.timed_out() { abnormal() } else { failed() })
            }
        }
    }

    fn success_response(&self) -> bool {
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    Disk,
    Ram,
    Hybrid,
}

impl Mode {
    /// The unit whose `systemctl status` tells whether systemd can do it.
    fn systemd_unit(self) -> &'static str {
        match self {
            Mode::Disk => "systemd-hibernate",
            Mode::Ram => "systemd-suspend",
            Mode::Hybrid => "systemd-hybrid-sleep",
        }
    }

    fn systemctl_verb(self) -> &'static str {
        match self {
            Mode::Disk => "hibernate",
            Mode::Ram => "suspend",
            Mode::Hybrid => "hybrid-sleep",
        }
    }

    fn pm_is_supported_flag(self) -> &'static str {
        match self {
            Mode::Disk => "--hibernate",
            Mode::Ram => "--suspend",
            Mode::Hybrid => "--suspend-hybrid",
        }
    }

    fn pm_utils_program(self) -> &'static str {
        match self {
            Mode::Disk => "pm-hibernate",
            Mode::Ram => "pm-suspend",
            Mode::Hybrid => "pm-suspend-hybrid",
        }
    }

    /// What /sys/power/state takes; the kernel has no hybrid state there.
    fn sys_state(self) -> Option<&'static str> {
        match self {
            Mode::Disk => Some("disk"),
            Mode::Ram => Some("mem"),
            Mode::Hybrid => None,
        }
    }
}

const NOT_SUPPORTED: &str = "the requested suspend mode is not supported by the guest";

/// `guest-suspend-*`: the first way the guest supports of systemd
/// (`systemctl status <unit>` exits 1 to 3), pm-utils (`pm-is-supported`
/// exits 0) and the kernel (`/sys/power/state` lists the state), falling
/// through to the next when one fails, as qemu-ga 7.2.x does.
struct Suspend {
    mode: Mode,
    /// Runs the program that suspends (only logs with `apply = false`).
    runner: Runner,
    /// Runs the programs that only ask.
    probe: Runner,
    system: Arc<System>,
}

/// How a way of suspending went: `None` when the guest does not support it.
type Attempt = Option<Result<(), CommandError>>;

impl Command for Suspend {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        // qemu-ga answers success when a supported way failed and no later
        // one is supported (its error is dropped); the failure is reported
        // here instead, since the host would otherwise wait for a SUSPEND
        // event that never comes.
        let mut failure = None;
        for attempt in [Self::systemd, Self::pm_utils, Self::sysfs] {
            match attempt(self) {
                None => {}
                Some(Ok(())) => return Ok(json!({})),
                Some(Err(e)) => {
                    tracing::warn!("{}: {}", self.name(), e.message);
                    failure = Some(e);
                }
            }
        }
        Err(failure.unwrap_or_else(|| CommandError::failed(NOT_SUPPORTED)))
    }

    fn success_response(&self) -> bool {
        false
    }
}

impl Suspend {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Disk => "guest-suspend-disk",
            Mode::Ram => "guest-suspend-ram",
            Mode::Hybrid => "guest-suspend-hybrid",
        }
    }

    fn systemd(&self) -> Attempt {
        let systemctl = self.system.program("systemctl");
        let status = self.probe.run(
            &systemctl,
            &["status".into(), self.mode.systemd_unit().into()],
        );
        // LSB status codes: 3 (not running) is the usual "it exists"; 4 is
        // "no such unit".
        let supported =
            matches!(status, Ok(Outcome::Finished(ref done)) if matches!(done.code, Some(1..=3)));
        if !supported {
            return None;
        }
        let verb = self.mode.systemctl_verb();
        let outcome = self.runner.run(&systemctl, &[verb.into()]);
        Some(helper_result(outcome, &format!("systemctl {verb}")))
    }

    fn pm_utils(&self) -> Attempt {
        let flag = self.mode.pm_is_supported_flag();
        let status = self
            .probe
            .run(&self.system.program("pm-is-supported"), &[flag.into()]);
        if !matches!(status, Ok(Outcome::Finished(ref done)) if done.success()) {
            return None;
        }
        let program = self.mode.pm_utils_program();
        let outcome = self.runner.run(&self.system.program(program), &[]);
        Some(helper_result(outcome, program))
    }

    fn sysfs(&self) -> Attempt {
        let state = self.mode.sys_state()?;
        let path = &self.system.power_state;
        let offered = std::fs::read_to_string(path).ok()?;
        if !offered.contains(state) {
            return None;
        }
        if !self.runner.apply() {
            tracing::info!("not writing (apply = false): {state} to {}", path.display());
            return Some(Ok(()));
        }
        tracing::info!("writing {state} to {}", path.display());
        // As `echo mem > /sys/power/state` does; the write returns after
        // the resume.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut file| file.write_all(state.as_bytes()));
        Some(written.map_err(|e| {
            tracing::warn!(
                "{}: writing {state} to {}: {e}",
                self.name(),
                path.display()
            );
            CommandError::failed("child process has failed to suspend")
        }))
    }
}

/// The result of a helper program that suspends, in qemu-ga's words;
/// `helper` is how they name it.
fn helper_result(outcome: Result<Outcome, RunError>, helper: &str) -> Result<(), CommandError> {
    match outcome {
        Ok(Outcome::Skipped) => Ok(()),
        Ok(Outcome::Finished(done)) => match done.code {
            Some(0) => Ok(()),
            Some(code) => Err(CommandError::failed(format!(
                "the helper program '{helper}' returned an unexpected exit status code ({code})"
            ))),
            None => Err(abnormal()),
        },
        Err(e) if e.not_found() => Err(CommandError::failed(format!(
            "the helper program '{helper}' was not found"
        ))),
        Err(e) if e.timed_out() => Err(abnormal()),
        Err(e) => Err(CommandError::failed(format!(
            "failed to create child process, error '{e}'"
        ))),
    }
}

#[cfg(test)]
#[path = "power_tests.rs"]
mod tests;
