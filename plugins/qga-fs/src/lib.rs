//! The `qga-fs` plugin: the QEMU guest agent's commands for filesystems and
//! disks, as qemu-ga 7.2 answers them on Linux.
//!
//! | command | returns |
//! |---|---|
//! | `guest-fsfreeze-status` | `"thawed"` or `"frozen"` |
//! | `guest-fsfreeze-freeze` | how many filesystems froze |
//! | `guest-fsfreeze-freeze-list {*mountpoints}` | the same, for those mount points only (exact match) |
//! | `guest-fsfreeze-thaw` | how many filesystems thawed |
//! | `guest-fstrim {*minimum}` | `{"paths": [{path, *trimmed, *minimum, *error}]}` |
//! | `guest-get-fsinfo` | `[{name, mountpoint, type, *used-bytes, *total-bytes, disk}]` |
//! | `guest-get-disks` | `[{name, partition, *dependencies, *address, *alias}]` |
//! | `guest-get-diskstats` | `[{name, major, minor, stats: {*read-ios, *read-merges, ...}}]` |
//!
//! All of them read the live mount table (`/proc/self/mountinfo`), sysfs,
//! udev's database and `/proc/diskstats`, not files under the configured
//! root: mounts and disks are the kernel's. Arguments are checked as QEMU
//! checks them.
//!
//! The frozen state is the agent's gate `frozen`, declared here: while it is
//! closed, every command of every plugin but `guest-ping`, `guest-info`,
//! `guest-sync`, `guest-sync-delimited`, `guest-fsfreeze-status` and
//! `guest-fsfreeze-thaw` is refused ("the agent is in frozen state"). The
//! agent keeps the gate across restarts and hot swaps; this plugin keeps no
//! flag of its own.
//!
//! With `apply = false` no ioctl is issued and no mount point opened: a
//! freeze logs each FIFREEZE it would issue, counts it as done (a second
//! mount of the same filesystem, as a bind mount, counts as EBUSY as it
//! would) and still closes the gate; a thaw logs each FITHAW and opens it; a
//! trim logs each FITRIM and reports nothing discarded.
//!
//! Config, `[plugins.qga-fs]`:
//!
//! ```toml
//! # Beyond qemu-ga: filesystems frozen this long without a thaw from the
//! # host are thawed, with a warning. A humantime duration ("30s", "10m",
//! # "1h"); "off" or "0" never thaws. Default "10m".
//! thaw_after = "10m"
//! ```
//!
//! The countdown starts at each freeze, and at `init`: an agent restarted
//! while frozen learns that it is only after its plugins are loaded, so the
//! countdown runs from the start and, when it ends, thaws if the gate is
//! closed then. One thread runs it, only while a countdown is pending, and
//! ends at the plugin's shutdown.
//!
//! What it is not: the fsfreeze hook of qemu-ga (`-F`), which this agent
//! does not have; NVMe SMART data in `guest-get-disks`.

mod diskstats;
mod freeze;
mod info;
mod mounts;
mod ops;
mod sysfs;
mod trim;
mod watchdog;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_info;

use std::sync::Arc;
use std::time::Duration;

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::config::{parse_table, table_error};
use nova_agent_support::qapi::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::freeze::Freezer;
use crate::mounts::Paths;
use crate::ops::{DryRun, Filesystems, Kernel};

const PLUGIN: &str = "qga-fs";

/// `thaw_after` when the config does not set it.
const DEFAULT_THAW_AFTER: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    thaw_after: Option<String>,
}

/// `thaw_after`: `None` when off.
fn thaw_after(config: Value) -> Result<Option<Duration>, PluginError> {
    let table: Table = parse_table(PLUGIN, config)?;
    let Some(text) = table.thaw_after else {
        return Ok(Some(DEFAULT_THAW_AFTER));
    };
    if text.trim() == "off" {
        return Ok(None);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if duration.is_zero() => Ok(None),
        Ok(duration) => Ok(Some(duration)),
        Err(e) => Err(table_error(
            PLUGIN,
            &format!(
                "thaw_after: '{text}' is not a duration ({e}); write e.g. \"10m\", or \"off\""
            ),
        )),
    }
}

/// Everything the commands share.
struct Fs {
    paths: Paths,
    ops: Arc<dyn Filesystems>,
    freezer: Arc<Freezer>,
}

#[derive(Clone, Copy)]
enum Which {
    Status,
    Freeze,
    FreezeList,
    Thaw,
    Trim,
    Fsinfo,
    Disks,
    Diskstats,
}

struct FsCommand {
    fs: Arc<Fs>,
    which: Which,
}

impl Command for FsCommand {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let fs = &self.fs;
        match self.which {
            Which::Status => {
                args.finish()?;
                Ok(json!(fs.freezer.status()))
            }
            Which::Freeze => {
                args.finish()?;
                Ok(json!(fs.freezer.freeze(None)?))
            }
            Which::FreezeList => {
                let mountpoints = args.opt_str_list("mountpoints")?;
                args.finish()?;
                Ok(json!(fs.freezer.freeze(mountpoints.as_deref())?))
            }
            Which::Thaw => {
                args.finish()?;
                Ok(json!(fs.freezer.thaw()?))
            }
            Which::Trim => {
                let minimum = args.opt_int("minimum")?;
                args.finish()?;
                trim::fstrim(&fs.paths, fs.ops.as_ref(), minimum)
            }
            Which::Fsinfo => {
                args.finish()?;
                info::fsinfo(&fs.paths)
            }
            Which::Disks => {
                args.finish()?;
                info::disks(&fs.paths)
            }
            Which::Diskstats => {
                args.finish()?;
                diskstats::diskstats(&fs.paths)
            }
        }
    }
}

const COMMANDS: [(&str, Which); 8] = [
    ("guest-fsfreeze-status", Which::Status),
    ("guest-fsfreeze-freeze", Which::Freeze),
    ("guest-fsfreeze-freeze-list", Which::FreezeList),
    ("guest-fsfreeze-thaw", Which::Thaw),
    ("guest-fstrim", Which::Trim),
    ("guest-get-fsinfo", Which::Fsinfo),
    ("guest-get-disks", Which::Disks),
    ("guest-get-diskstats", Which::Diskstats),
];

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    let thaw_after = thaw_after(config)?;
    let (paths, ops) = system(&host);
    let freezer = Freezer::new(host, paths.clone(), Arc::clone(&ops), thaw_after);
    freezer.arm();
    let fs = Arc::new(Fs {
        paths,
        ops,
        freezer: Arc::clone(&freezer),
    });
    let mut provides = Provides::new().gate(freeze::gate());
    for (name, which) in COMMANDS {
        let fs = Arc::clone(&fs);
        provides = provides.command(name, FsCommand { fs, which });
    }
    Ok(provides.on_shutdown(move || freezer.shutdown()))
}

/// The live system, and the kernel's ioctls or (`apply = false`) their
/// logging stand-in.
fn system(host: &Host) -> (Paths, Arc<dyn Filesystems>) {
    #[cfg(test)]
    if let Some(parts) = tests::take_system() {
        return parts;
    }
    let ops: Arc<dyn Filesystems> = if host.apply() {
        Arc::new(Kernel)
    } else {
        Arc::new(DryRun::default())
    };
    (Paths::live(), ops)
}

export_plugin! {
    name: "qga-fs",
    description: "QEMU guest agent commands for filesystems and disks: fsfreeze, fstrim, fsinfo, disks, diskstats",
    provides: {
        commands: [
            "guest-fsfreeze-status",
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-freeze-list",
            "guest-fsfreeze-thaw",
            "guest-fstrim",
            "guest-get-fsinfo",
            "guest-get-disks",
            "guest-get-diskstats",
        ],
        gates: [freeze::GATE],
    },
    init: init,
}
