//! `guest-get-diskstats`: the I/O counters of every block device in
//! `/proc/diskstats`, in file order, as qemu-ga 7.2 reads them on Linux
//! (`guest_get_diskstats`): each line read as its `sscanf("%u %u %s %lu
//! ...")` reads it, the counters reported according to how many fields the
//! kernel wrote: 7 (a partition before Linux 2.6.25), 14, 18 (Linux 4.18,
//! discards) or 20 (Linux 5.5, flushes).

use std::fs::File;
use std::io::Read;

use nova_agent_plugin_api::CommandError;
use serde_json::{json, Map, Value};

use nova_agent_support::cscan::CScan;

use crate::mounts::Paths;
use crate::sysfs::io_strerror;

/// The counters after the device name, in the kernel's column order, each
/// with the key qemu-ga reports it as in the 14-to-20-field layout and
/// whether qemu-ga reads it as `%u` (kept to 32 bits) rather than `%lu`.
const COLUMNS: [(&str, bool); 17] = [
    ("read-ios", false),
    ("read-merges", false),
    ("read-sectors", false),
    ("read-ticks", false),
    ("write-ios", false),
    ("write-merges", false),
    ("write-sectors", false),
    ("write-ticks", true),
    ("ios-pgr", true),
    ("total-ticks", true),
    ("weight-ticks", true),
    ("discard-ios", false),
    ("discard-merges", false),
    ("discard-sectors", false),
    ("discard-ticks", true),
    ("flush-ios", false),
    ("flush-ticks", true),
];

/// The old partition layout: four counters, each column with its key.
const PARTITION: [&str; 4] = ["read-ios", "read-sectors", "write-ios", "write-sectors"];

/// The `GuestDiskStatsInfo` list of `paths.diskstats`.
pub(crate) fn diskstats(paths: &Paths) -> Result<Value, CommandError> {
    let path = &paths.diskstats;
    let mut file = File::open(path).map_err(|e| {
        CommandError::failed(format!("open(\"{}\"): {}", path.display(), io_strerror(&e)))
    })?;
    let mut text = Vec::new();
    // qemu-ga's getline loop ends quietly at a read error, with the lines
    // it has.
    if let Err(e) = file.read_to_end(&mut text) {
        tracing::debug!(
            "guest-get-diskstats: reading {}: {}",
            path.display(),
            io_strerror(&e)
        );
    }
    Ok(parse(&text))
}

fn parse(text: &[u8]) -> Value {
    Value::Array(
        text.split(|&b| b == b'\n')
            .filter_map(|line| device(line).map(Value::Object))
            .collect(),
    )
}

/// One line's `GuestDiskStatsInfo`; `None` for a line qemu-ga skips (fewer
/// than 7 fields converted).
fn device(line: &[u8]) -> Option<Map<String, Value>> {
    let mut fields = CScan::new(line);
    // `%u`: an unsigned int.
    let major = fields.ulong()? as u32;
    let minor = fields.ulong()? as u32;
    let name = fields.word()?;
    let mut counters = Vec::with_capacity(COLUMNS.len());
    for (_, is_u32) in COLUMNS {
        match fields.ulong() {
            Some(n) if is_u32 => counters.push(u64::from(n as u32)),
            Some(n) => counters.push(n),
            None => break,
        }
    }
    let converted = 3 + counters.len();
    if converted < 7 {
        return None;
    }
    let mut stats = Map::new();
    if converted == 7 {
        for (key, value) in PARTITION.into_iter().zip(&counters) {
            stats.insert(key.into(), json!(value));
        }
    }
    // Between 8 and 13 fields: none of the layouts, an empty `stats`.
    let shown = match converted {
        20.. => 17,
        18.. => 15,
        14.. => 11,
        _ => 0,
    };
    for ((key, _), value) in COLUMNS.iter().zip(&counters).take(shown) {
        stats.insert((*key).into(), json!(value));
    }
    let mut info = Map::new();
    info.insert("name".into(), json!(String::from_utf8_lossy(name)));
    info.insert("major".into(), json!(major));
    info.insert("minor".into(), json!(minor));
    info.insert("stats".into(), Value::Object(stats));
    Some(info)
}

#[cfg(test)]
#[path = "diskstats_tests.rs"]
mod tests;
