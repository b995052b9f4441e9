//! `guest-get-vcpus` and `guest-set-vcpus`: the logical processors in
//! `/sys/devices/system/cpu`, each online unless its `online` file reads
//! `0`, and offlinable only if it has that file (on x86, cpu0 has none).

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

use crate::sysfs::{open_dir, strerror};

/// `guest-get-vcpus`: every `cpuN` entry in directory order, as qemu-ga
/// lists them (`[{"logical-id":1,...},{"logical-id":0,...}]` is normal).
pub(crate) struct GetVcpus {
    /// Where sysfs is mounted: `/sys`, or a crafted tree in tests.
    pub(crate) sys: String,
}

/// `guest-set-vcpus`: brings each listed processor online or offline, in
/// order, stopping at the first failure; answers how many were processed.
/// A failure of the first is an error, a later one is not. The write to
/// `online` is a system action: with `apply = false` it is only logged.
pub(crate) struct SetVcpus {
    pub(crate) sys: String,
    pub(crate) apply: bool,
}

/// One processor as `guest-set-vcpus` takes it.
struct Wanted {
    logical_id: i64,
    online: bool,
}

impl Command for GetVcpus {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Args::parse(call.arguments())?.finish()?;
        let dir = format!("{}/devices/system/cpu", self.sys);
        let entries = fs::read_dir(&dir).map_err(|e| {
            CommandError::failed(format!("failed to list entries: {dir}: {}", strerror(&e)))
        })?;
        let mut vcpus = Vec::new();
        // A directory that fails half-way ends the listing, as GLib's does.
        for entry in entries.map_while(Result::ok) {
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(logical_id) {
                vcpus.push(self.read(id)?);
            }
        }
        Ok(Value::Array(vcpus))
    }
}

impl GetVcpus {
    fn read(&self, id: i64) -> Result<Value, CommandError> {
        let dir = cpu_dir(&self.sys, id);
        open_dir(&dir).map_err(|e| failed_call("open", &dir, &e))?;
        let file = format!("{dir}/online");
        let (online, can_offline) = match fs::File::open(&file) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => (true, false),
            Err(e) => return Err(failed_call("open", &file, &e)),
            Ok(handle) => (read_flag(&handle, &file)?, true),
        };
        Ok(json!({"logical-id": id, "online": online, "can-offline": can_offline}))
    }
}

impl Command for SetVcpus {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let mut wanted = Vec::new();
        for mut item in args.object_list("vcpus")? {
            let logical_id = item.int("logical-id")?;
            let online = item.bool("online")?;
            item.opt_bool("can-offline")?;
            item.finish()?;
            wanted.push(Wanted { logical_id, online });
        }
        args.finish()?;

        let mut processed: i64 = 0;
        for vcpu in &wanted {
            match self.transfer(vcpu) {
                Ok(()) => processed += 1,
                Err(e) if processed == 0 => return Err(e),
                Err(e) => {
                    tracing::debug!("guest-set-vcpus: stopping after {processed}: {e}");
                    break;
                }
            }
        }
        Ok(json!(processed))
    }
}

impl SetVcpus {
    fn transfer(&self, vcpu: &Wanted) -> Result<(), CommandError> {
        let dir = cpu_dir(&self.sys, vcpu.logical_id);
        open_dir(&dir).map_err(|e| failed_call("open", &dir, &e))?;
        let file = format!("{dir}/online");
        // Write access only when the write may happen: a dry run must not
        // fail on a permission it does not use.
        let handle = match OpenOptions::new().read(true).write(self.apply).open(&file) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
                // Nothing to write: "re-onlining" it succeeds.
                if vcpu.online {
                    return Ok(());
                }
                return Err(CommandError::failed(format!(
                    "logical processor #{} can't be offlined",
                    vcpu.logical_id
                )));
            }
            Err(e) => return Err(failed_call("open", &file, &e)),
            Ok(handle) => handle,
        };
        if read_flag(&handle, &file)? == vcpu.online {
            return Ok(());
        }
        let value = if vcpu.online { b'1' } else { b'0' };
        if !self.apply {
            tracing::info!(
                "guest-set-vcpus: not writing (apply = false): {} > {file}",
                char::from(value)
            );
            return Ok(());
        }
        tracing::info!("guest-set-vcpus: writing {} > {file}", char::from(value));
        handle
            .write_at(&[value], 0)
            .map(drop)
            .map_err(|e| failed_call("pwrite", &file, &e))
    }
}

/// `/sys/devices/system/cpu/cpu3/`, with the trailing slash qemu-ga's
/// messages show (and so `.../cpu3//online` for the file).
fn cpu_dir(sys: &str, id: i64) -> String {
    format!("{sys}/devices/system/cpu/cpu{id}/")
}

/// The first byte of an `online` file: anything but `0` is online.
fn read_flag(handle: &fs::File, file: &str) -> Result<bool, CommandError> {
    let mut byte = [0u8; 1];
    match handle.read_at(&mut byte, 0) {
        Err(e) => Err(failed_call("pread", file, &e)),
        Ok(0) => Err(CommandError::failed(format!(
            "pread(\"{file}\"): unexpected EOF"
        ))),
        Ok(_) => Ok(byte[0] != b'0'),
    }
}

/// `open("/sys/...."): No such file or directory`.
fn failed_call(call: &str, path: &str, e: &std::io::Error) -> CommandError {
    CommandError::failed(format!("{call}(\"{path}\"): {}", strerror(e)))
}

/// The processor number in a directory entry such as `cpu3`, read as
/// qemu-ga's `sscanf(name, "cpu%ld")` reads it: optional blanks and sign,
/// then digits; whatever follows them is ignored. `cpufreq`, `cpuidle` and
/// the rest have no number and are skipped.
fn logical_id(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("cpu")?.trim_start();
    let (negative, digits) = match rest.as_bytes().first()? {
        b'-' => (true, &rest[1..]),
        b'+' => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    // strtol saturates where the digits overflow.
    let magnitude = digits[..end].parse::<i64>().unwrap_or(i64::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
#[path = "vcpus_tests.rs"]
mod tests;
