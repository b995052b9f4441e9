//! `guest-get-memory-blocks`, `guest-set-memory-blocks` and
//! `guest-get-memory-block-info`: the hot-pluggable memory blocks in
//! `/sys/devices/system/memory`, as qemu-ga reads and sets them.
//!
//! qemu-ga's quirks are kept, since clients see them: a guest without that
//! directory lists no blocks (and no error); `guest-set-memory-blocks`
//! answers each block with a response rather than failing, and its
//! `error-code` is the `errno` qemu-ga was left with, even beside a
//! `success` (a block without a `state` file that should stay online).

use std::fs;

use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

use crate::sysfs::{open_dir, read_start, strerror, write_start, ReadError};

/// `guest-get-memory-blocks`: every `memoryN` directory, in directory order.
pub(crate) struct GetMemoryBlocks {
    /// Where sysfs is mounted: `/sys`, or a crafted tree in tests.
    pub(crate) sys: String,
}

/// `guest-set-memory-blocks`: one response per block asked for. Writing
/// `state` is a system action: with `apply = false` it is only logged.
pub(crate) struct SetMemoryBlocks {
    pub(crate) sys: String,
    pub(crate) apply: bool,
}

/// `guest-get-memory-block-info`: the size of a block, in bytes.
pub(crate) struct GetMemoryBlockInfo {
    pub(crate) sys: String,
}

impl Command for GetMemoryBlocks {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Args::parse(call.arguments())?.finish()?;
        let dir = memory_dir(&self.sys);
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => return Ok(json!([])),
            Err(e) => {
                return Err(CommandError::failed(format!(
                    "Can't open directory\"{dir}\": {}",
                    strerror(&e)
                )))
            }
            Ok(entries) => entries,
        };
        let mut blocks = Vec::new();
        for entry in entries.map_while(Result::ok) {
            let name = entry.file_name();
            let Some(index) = name.to_str().and_then(|n| n.strip_prefix("memory")) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            blocks.push(self.read(strtoul(index))?);
        }
        if blocks.is_empty() {
            return Err(CommandError::failed("guest reported zero memory blocks!"));
        }
        Ok(Value::Array(blocks))
    }
}

impl GetMemoryBlocks {
    fn read(&self, phys_index: u64) -> Result<Value, CommandError> {
        let dir = block_dir(&self.sys, phys_index);
        open_dir(&dir)
            .map_err(|e| CommandError::failed(format!("open(\"{dir}\"): {}", strerror(&e))))?;
        let (online, can_offline) = match read_start(&format!("{dir}state"), 10) {
            // Old kernels have no `state`: the block is there for good.
            Err(e) if e.not_found() => (true, false),
            Err(e) => return Err(sysfs_error("state", &e)),
            Ok(state) => {
                let can_offline = match read_start(&format!("{dir}removable"), 1) {
                    Err(e) if e.not_found() => false,
                    Err(e) => return Err(sysfs_error("removable", &e)),
                    Ok(removable) => removable[0] != b'0',
                };
                (state.starts_with(b"online"), can_offline)
            }
        };
        Ok(json!({"phys-index": phys_index, "online": online, "can-offline": can_offline}))
    }
}

impl Command for SetMemoryBlocks {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let mut wanted = Vec::new();
        for (index, mut item) in args.object_list("mem-blks")?.into_iter().enumerate() {
            let full = format!("mem-blks[{index}].phys-index");
            let phys_index = uint64(&mut item, "phys-index", &full)?;
            let online = item.bool("online")?;
            item.opt_bool("can-offline")?;
            item.finish()?;
            wanted.push((phys_index, online));
        }
        args.finish()?;
        let responses = wanted
            .into_iter()
            .map(|(phys_index, online)| {
                let (response, error_code) = self.transfer(phys_index, online);
                let mut answer = json!({"phys-index": phys_index, "response": response});
                if let Some(code) = error_code {
                    answer["error-code"] = json!(code);
                }
                answer
            })
            .collect();
        Ok(Value::Array(responses))
    }
}

impl SetMemoryBlocks {
    /// The response for one block, and the `errno` to report with it.
    fn transfer(&self, phys_index: u64, online: bool) -> (&'static str, Option<i32>) {
        let errno = |e: &std::io::Error| e.raw_os_error().unwrap_or(0);
        if let Err(e) = fs::read_dir(memory_dir(&self.sys)) {
            let response = match errno(&e) {
                nix::libc::ENOENT => "operation-not-supported",
                _ => "success",
            };
            return (response, Some(errno(&e)));
        }
        let dir = block_dir(&self.sys, phys_index);
        if let Err(e) = open_dir(&dir) {
            let response = match errno(&e) {
                nix::libc::ENOENT => "not-found",
                _ => "operation-failed",
            };
            return (response, Some(errno(&e)));
        }
        let state_file = format!("{dir}state");
        let state = match read_start(&state_file, 10) {
            Err(e) if e.not_found() && !online => {
                return ("operation-not-supported", Some(e.errno()))
            }
            Err(e) if e.not_found() => return ("success", Some(e.errno())),
            Err(e) => return ("operation-failed", Some(e.errno())),
            Ok(state) => state,
        };
        if state.starts_with(b"online") == online {
            return ("success", None);
        }
        let new_state = if online { "online" } else { "offline" };
        if !self.apply {
            tracing::info!(
                "guest-set-memory-blocks: not writing (apply = false): {new_state} > {state_file}"
            );
            return ("success", None);
        }
        tracing::info!("guest-set-memory-blocks: writing {new_state} > {state_file}");
        match write_start(&state_file, new_state.as_bytes()) {
            Ok(()) => ("success", None),
            Err(e) => ("operation-failed", Some(errno(&e))),
        }
    }
}

impl Command for GetMemoryBlockInfo {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Args::parse(call.arguments())?.finish()?;
        let dir = memory_dir(&self.sys);
        open_dir(&dir)
            .map_err(|e| CommandError::failed(format!("open(\"{dir}\"): {}", strerror(&e))))?;
        let size = read_start(&format!("{dir}block_size_bytes"), 20)
            .map_err(|e| sysfs_error("block_size_bytes", &e))?;
        // The file is hexadecimal without "0x"; qemu-ga's strtol would take
        // one, and a sign.
        Ok(json!({"size": strtol_hex(&size) as u64}))
    }
}

/// `/sys/devices/system/memory/`, with the trailing slash qemu-ga's
/// messages show.
fn memory_dir(sys: &str) -> String {
    format!("{sys}/devices/system/memory/")
}

/// qemu-ga prints the index signed: block 2^64-1 is `memory-1`.
fn block_dir(sys: &str, phys_index: u64) -> String {
    format!("{sys}/devices/system/memory/memory{}/", phys_index as i64)
}

/// `open sysfs file "state": Permission denied` and its kin.
fn sysfs_error(file: &str, e: &ReadError) -> CommandError {
    CommandError::failed(match e {
        ReadError::Open(e) => format!("open sysfs file \"{file}\": {}", strerror(e)),
        ReadError::Read(e) => format!("pread sysfs file \"{file}\": {}", strerror(e)),
        ReadError::Eof => format!("pread sysfs file \"{file}\": unexpected EOF"),
    })
}

/// A QAPI `uint64` member: any JSON integer that fits a `u64`, or a
/// negative one that fits an `i64` (taken modulo 2^64, as QEMU does).
fn uint64(item: &mut Args, name: &str, full: &str) -> Result<u64, CommandError> {
    match item.opt_raw(name)? {
        None => Err(CommandError::bad_arguments(format!(
            "Parameter '{full}' is missing"
        ))),
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_i64().map(|n| n as u64))
            .ok_or_else(|| {
                CommandError::bad_arguments(format!("Parameter '{full}' expects uint64"))
            }),
    }
}

/// C's `strtoul(text, NULL, 10)`: blanks, a sign, digits; 0 without digits,
/// the maximum on overflow, a negative number taken modulo 2^64.
fn strtoul(text: &str) -> u64 {
    let (negative, digits) = sign(text.trim_start());
    match u64::try_from(leading(digits, 10).unwrap_or(0)) {
        Err(_) => u64::MAX,
        Ok(value) if negative => value.wrapping_neg(),
        Ok(value) => value,
    }
}

/// C's `strtol(text, NULL, 16)`: blanks, a sign, an optional `0x`, hex
/// digits; saturated to the range of a `long`.
fn strtol_hex(bytes: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(bytes);
    let (negative, rest) = sign(text.trim_start());
    let rest = match rest.get(..2) {
        Some("0x" | "0X") if rest[2..].starts_with(|c: char| c.is_ascii_hexdigit()) => &rest[2..],
        _ => rest,
    };
    let magnitude = leading(rest, 16).unwrap_or(0);
    if negative {
        i64::try_from(magnitude).map_or(i64::MIN, |n| -n)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    }
}

fn sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// The number the leading digits of `text` spell in `radix`, saturated just
/// past 64 bits; `None` without a digit.
fn leading(text: &str, radix: u32) -> Option<u128> {
    let end = text
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    let mut value: u128 = 0;
    for c in text[..end].chars() {
        let digit = u128::from(c.to_digit(radix)?);
        value = (value * u128::from(radix) + digit).min(u128::from(u64::MAX) + 1);
    }
    Some(value)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
