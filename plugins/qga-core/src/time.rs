//! `guest-get-time`, `guest-set-time` and `guest-get-timezone`.

use std::ffi::CStr;
use std::sync::Arc;

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use nova_agent_plugin_api::{Call, Command, CommandError, Host, Provides};
use nova_agent_support::qapi::Args;
use nova_agent_support::runner::{Outcome, Runner};
use serde_json::{json, Value};

use crate::{no_arguments, System, UNSUPPORTED};

pub(crate) fn provide(provides: Provides, host: &Host, system: &Arc<System>) -> Provides {
    provides
        .command("guest-get-time", GetTime)
        .command(
            "guest-set-time",
            SetTime {
                runner: Runner::new(host.apply()),
                system: Arc::clone(system),
            },
        )
        .command("guest-get-timezone", GetTimezone)
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The program qemu-ga syncs the hardware clock with.
pub(crate) const HWCLOCK: &str = "/sbin/hwclock";

/// `guest-get-time`: nanoseconds since the epoch, with the microsecond
/// precision of qemu-ga's `g_get_real_time() * 1000`.
struct GetTime;

impl Command for GetTime {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let now = clock_gettime(ClockId::CLOCK_REALTIME)
            .map_err(|e| CommandError::failed(format!("Failed to get time: {}", e.desc())))?;
        let micros = now
            .tv_sec()
            .saturating_mul(1_000_000)
            .saturating_add(now.tv_nsec() / 1_000);
        Ok(json!(micros.saturating_mul(1_000)))
    }
}

/// `guest-set-time {*time}`: with `time` (ns since the epoch), set the clock
/// and then the hardware clock from it (`hwclock -w`); without, set the
/// clock from the hardware clock (`hwclock -s`). Without /sbin/hwclock
/// nothing is supported, as in qemu-ga.
struct SetTime {
    runner: Runner,
    system: Arc<System>,
}

impl Command for SetTime {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let time = args.opt_int("time")?;
        args.finish()?;

        let hwclock = self.system.program(HWCLOCK);
        if self.runner.find(&hwclock).is_none() {
            return Err(CommandError::failed(UNSUPPORTED));
        }
        if let Some(time) = time {
            self.set_clock(time)?;
        }
        let flag = if time.is_some() { "-w" } else { "-s" };
        match self.runner.run(&hwclock, &[flag.into()]) {
            Ok(Outcome::Skipped) => Ok(json!({})),
            Ok(Outcome::Finished(done)) if done.success() => Ok(json!({})),
            Ok(Outcome::Finished(done)) if done.code.is_none() => Err(abnormal()),
            Ok(Outcome::Finished(_)) => Err(hwclock_failed()),
            Err(e) => {
                tracing::warn!("guest-set-time: {e}");
                Err(if e.timed_out() {
                    abnormal()
                } else {
                    hwclock_failed()
                })
            }
        }
    }
}

fn hwclock_failed() -> CommandError {
    CommandError::failed("hwclock failed to set hardware clock to system time")
}

/// qemu-ga's words for a child killed by a signal.
pub(crate) fn abnormal() -> CommandError {
    CommandError::failed("child process has terminated abnormally")
}

impl SetTime {
    /// qemu-ga's checks, then the clock (only logged with `apply = false`).
    fn set_clock(&self, time: i64) -> Result<(), CommandError> {
        // C's truncating division, as qemu-ga splits the time: a negative
        // remainder makes the kernel refuse the time, as it refuses
        // qemu-ga's.
        let seconds = time / NANOS_PER_SECOND;
        let nanos = time % NANOS_PER_SECOND;
        // qemu-ga takes the year in local time (GLib's g_date_set_time_t).
        let year = local_time(seconds).map(|local| local.year);
        if !year.is_some_and(|year| (1970..2070).contains(&year)) {
            return Err(CommandError::failed("Invalid time"));
        }
        if !self.runner.apply() {
            tracing::info!(
                "not setting the clock (apply = false): it would be set to {seconds} s \
                 {nanos} ns since the epoch"
            );
            return Ok(());
        }
        tracing::info!("setting the clock to {seconds} s {nanos} ns since the epoch");
        (self.system.set_clock)(TimeSpec::new(seconds, nanos))
            .map_err(|e| CommandError::failed(format!("Failed to set time to guest: {}", e.desc())))
    }
}

/// `guest-get-timezone`: the local time zone's abbreviation and offset
/// (seconds east of UTC) now, as GLib's `g_time_zone_new_local` gives them:
/// from TZ, else /etc/localtime.
struct GetTimezone;

impl Command for GetTimezone {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let now = clock_gettime(ClockId::CLOCK_REALTIME)
            .map_err(|e| CommandError::failed(format!("Failed to get time: {}", e.desc())))?;
        let local = local_time(now.tv_sec()).ok_or_else(|| {
            CommandError::failed(
                "Guest agent command failed, error was 'Couldn't retrieve local timezone'",
            )
        })?;
        let mut answer = json!({ "offset": local.offset });
        if let Some(zone) = local.zone {
            answer["zone"] = json!(zone);
        }
        Ok(answer)
    }
}

/// A moment in the local time zone.
#[derive(Debug, PartialEq)]
pub(crate) struct LocalTime {
    pub year: i64,
    /// Seconds east of UTC.
    pub offset: i64,
    /// The abbreviation (`CET`, `UTC`, `+03`).
    pub zone: Option<String>,
}

/// `seconds` since the epoch in the local time zone, as the C library's
/// `localtime_r` has it; `None` if it cannot say (a year beyond `int`).
#[allow(unsafe_code)]
pub(crate) fn local_time(seconds: i64) -> Option<LocalTime> {
    let time: libc::time_t = seconds;
    // SAFETY: `tm` is plain data for which all zeroes is a valid value (a
    // null `tm_zone`), and localtime_r writes only into it. A non-null
    // `tm_zone` then points at a NUL-terminated string that glibc interns
    // for the life of the process (tzset.c `__tzstring` never frees), so it
    // may be read here; it is copied before returning.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return None;
        }
        let zone = (!tm.tm_zone.is_null())
            .then(|| CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned());
        Some(LocalTime {
            year: i64::from(tm.tm_year) + 1900,
            offset: tm.tm_gmtoff,
            zone,
        })
    }
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
