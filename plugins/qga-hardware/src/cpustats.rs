//! `guest-get-cpustats`: each processor's time counters from `/proc/stat`,
//! in milliseconds, as qemu-ga 7.2 reads them on Linux
//! (`qmp_guest_get_cpustats`): the `cpuN` lines in file order, the
//! all-processor `cpu` line left out, each line read as
//! `sscanf("%s %lu %lu ...")` reads it.

use std::fs::File;
use std::io::Read;

use nix::unistd::{sysconf, SysconfVar};
use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_support::cscan::CScan;
use nova_agent_support::qapi::Args;
use serde_json::{json, Map, Value};

use crate::sysfs::strerror;

/// `guest-get-cpustats`, reading `<proc>/stat`.
pub(crate) struct GetCpuStats {
    /// Where procfs is mounted: `/proc`, or a crafted tree in tests.
    pub(crate) proc: String,
}

impl Command for GetCpuStats {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Args::parse(call.arguments())?.finish()?;
        let path = format!("{}/stat", self.proc);
        let mut file = File::open(&path)
            .map_err(|e| CommandError::failed(format!("open(\"{path}\"): {}", strerror(&e))))?;
        let mut text = Vec::new();
        // qemu-ga's getline loop ends quietly at a read error, with the
        // lines it has.
        if let Err(e) = file.read_to_end(&mut text) {
            tracing::debug!("guest-get-cpustats: reading {path}: {}", strerror(&e));
        }
        Ok(cpustats(&text, clock_ticks(), &path))
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/stat`, converted as C
/// converts qemu-ga's `int` to the `unsigned long` it divides by.
fn clock_ticks() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) => ticks as u64,
        // Linux always answers; -1 is what C would divide by otherwise.
        _ => u64::MAX,
    }
}

/// The counters a `cpuN` line holds, in the order of `/proc/stat`, and
/// how many numbers qemu-ga needs on the line before it reports each one
/// (the optional ones appeared in later kernels).
const COUNTERS: [(&str, usize); 10] = [
    ("user", 1),
    ("nice", 2),
    ("system", 3),
    ("idle", 4),
    ("iowait", 5),
    ("irq", 6),
    // qemu-ga reports softirq with irq, from six numbers on, though the
    // seventh is softirq: with exactly six its value is an uninitialised
    // variable there, 0 here. Every kernel since 2.6.0 prints seven or more.
    ("softirq", 6),
    ("steal", 8),
    ("guest", 9),
    ("guestnice", 10),
];

/// The `GuestCpuStats` list of the text of `/proc/stat` (at `path`, for
/// the log), with `clk_tck` ticks a second.
fn cpustats(text: &[u8], clk_tck: u64, path: &str) -> Value {
    let mut list = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let mut scan = CScan::new(line);
        let Some(name) = scan.word() else {
            continue;
        };
        // "cpuN" only: not the all-processor "cpu", nor "intr" and the rest.
        if name.len() <= 3 || !name.starts_with(b"cpu") {
            continue;
        }
        let mut numbers = Vec::with_capacity(COUNTERS.len());
        while numbers.len() < COUNTERS.len() {
            match scan.ulong() {
                Some(n) => numbers.push(n),
                None => break,
            }
        }
        if numbers.len() < 4 {
            tracing::info!("Parsing cpu stat from {path} failed, see \"man proc\"");
            break;
        }
        let mut stats = Map::new();
        stats.insert("type".into(), json!("linux"));
        stats.insert("cpu".into(), json!(atoi(&name[3..])));
        for (i, (key, needed)) in COUNTERS.into_iter().enumerate() {
            if numbers.len() >= needed {
                let ticks = numbers.get(i).copied().unwrap_or(0);
                // unsigned long arithmetic, as in qemu-ga.
                let ms = ticks.wrapping_mul(1000).checked_div(clk_tck).unwrap_or(0);
                stats.insert(key.into(), json!(ms));
            }
        }
        list.push(Value::Object(stats));
    }
    Value::Array(list)
}

/// C's `atoi`: `(int) strtol(text, NULL, 10)`, so `cpufreq` is 0.
fn atoi(text: &[u8]) -> i32 {
    let mut scan = CScan::new(text);
    scan.skip_blanks();
    let (negative, magnitude) = scan.sign_and_digits().unwrap_or((false, 0));
    let value = if negative {
        i64::try_from(magnitude).map_or(i64::MIN, |m| -m)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    };
    // The cast keeps the low 32 bits, as C's does.
    value as i32
}

#[cfg(test)]
#[path = "cpustats_tests.rs"]
mod tests;
