//! `guest-get-fsinfo` and `guest-get-disks`, read-only, built as qemu-ga
//! 7.2 builds them (`qmp_guest_get_fsinfo`, `qmp_guest_get_disks`).
//!
//! What qemu-ga has that this does not: NVMe SMART data (`smart`, which
//! needs an admin ioctl on the device).

use std::fs;
use std::path::Path;

use nix::sys::statvfs::{statvfs, Statvfs};
use nova_agent_plugin_api::CommandError;
use serde_json::{json, Map, Value};

use crate::mounts::{mount_list, Paths};
use crate::sysfs::{self, devnode, io_strerror, Found, Udev};

/// One `GuestFilesystemInfo` per mount, last mounted first: the disks under
/// it from sysfs, its size from statvfs. The first sysfs error fails the
/// whole answer, as in qemu-ga.
pub(crate) fn fsinfo(paths: &Paths) -> Result<Value, CommandError> {
    let mounts = mount_list(paths).map_err(CommandError::failed)?;
    let mut list = Vec::with_capacity(mounts.len());
    for mount in &mounts {
        let devpath = paths
            .sys
            .join(format!("dev/block/{}:{}", mount.major, mount.minor));
        let mut found = Found::default();
        let walked = sysfs::walk(paths, &devpath, &mut found);
        let mut info = Map::new();
        info.insert("name".into(), json!(found.name.unwrap_or_default()));
        info.insert("mountpoint".into(), json!(mount.shown()));
        info.insert("type".into(), json!(mount.fstype));
        if let Ok(stat) = statvfs(&mount.dir) {
            let (used, total) = sizes(&stat);
            info.insert("used-bytes".into(), json!(used));
            info.insert("total-bytes".into(), json!(total));
        }
        let disks: Vec<Value> = found.disks.iter().map(|d| d.to_json()).collect();
        info.insert("disk".into(), Value::Array(disks));
        walked.map_err(CommandError::failed)?;
        list.push(Value::Object(info));
    }
    list.reverse();
    Ok(Value::Array(list))
}

/// Bytes used, and the size a user other than root can fill (used plus
/// available), as qemu-ga computes them.
// The counts are u32 on some targets, u64 on others.
#[allow(clippy::useless_conversion)]
fn sizes(stat: &Statvfs) -> (u64, u64) {
    let fragment = u64::from(stat.fragment_size());
    let used = u64::from(stat.blocks()).wrapping_sub(u64::from(stat.blocks_free()));
    let total = used.wrapping_add(u64::from(stat.blocks_available()));
    (used.wrapping_mul(fragment), total.wrapping_mul(fragment))
}

/// One `GuestDiskInfo` per disk in `/sys/block` (empty ones left out) and
/// per partition, each disk after its partitions, the last one listed
/// first.
pub(crate) fn disks(paths: &Paths) -> Result<Value, CommandError> {
    let dir = paths.sys.join("block");
    let entries = fs::read_dir(&dir).map_err(|e| {
        CommandError::failed(format!(
            "Can't open directory \"{}\": {}",
            dir.display(),
            io_strerror(&e)
        ))
    })?;
    let mut list = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let disk_dir = dir.join(&name);
        match fs::read_to_string(disk_dir.join("size")) {
            Ok(size) if size != "0\n" => {}
            _ => continue,
        }
        let Some(udev) = Udev::open(paths, &disk_dir) else {
            continue;
        };
        let Some(dev) = udev.devnode() else {
            continue;
        };
        let mut disk = Map::new();
        disk.insert("name".into(), json!(dev));
        disk.insert("partition".into(), json!(false));
        if let Some(alias) = udev.property("DM_NAME") {
            disk.insert("alias".into(), json!(alias));
        }
        if let Some(address) = address(paths, &disk_dir) {
            disk.insert("address".into(), address);
        }
        if let Some(dependencies) = dependencies(paths, &disk_dir) {
            disk.insert("dependencies".into(), json!(dependencies));
        }
        list.push(Value::Object(disk));
        list.extend(partitions(paths, &name, &disk_dir, &dev));
    }
    list.reverse();
    Ok(Value::Array(list))
}

/// The address of a disk that is not virtual; errors leave it out.
fn address(paths: &Paths, disk_dir: &Path) -> Option<Value> {
    // A path that cannot be resolved counts as virtual.
    let syspath = fs::canonicalize(disk_dir).ok()?;
    if sysfs::is_virtual(&syspath) {
        return None;
    }
    let mut found = Found::default();
    sysfs::walk(paths, disk_dir, &mut found).ok()?;
    found.disks.first().map(|d| d.to_json())
}

/// The devices in `slaves/`, last listed first; `None` without `slaves/`.
fn dependencies(paths: &Paths, disk_dir: &Path) -> Option<Vec<String>> {
    let entries = fs::read_dir(disk_dir.join("slaves")).ok()?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| devnode(paths, &entry.path()))
        .collect();
    names.reverse();
    Some(names)
}

/// The disk's partitions, in directory order: subdirectories named
/// `<disk><digit>...` or `<disk>p<digit>...`, each depending on the disk.
fn partitions(paths: &Paths, disk_name: &str, disk_dir: &Path, disk_dev: &str) -> Vec<Value> {
    let Ok(entries) = fs::read_dir(disk_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|entry| is_partition_of(disk_name, &entry.file_name().to_string_lossy()))
        .filter_map(|entry| devnode(paths, &entry.path()))
        .map(|dev| json!({"name": dev, "partition": true, "dependencies": [disk_dev]}))
        .collect()
}

fn is_partition_of(disk: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else {
        return false;
    };
    let rest = rest.strip_prefix('p').unwrap_or(rest);
    rest.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::is_partition_of;

    #[test]
    fn partitions_are_named_after_their_disk() {
        assert!(is_partition_of("vda", "vda1"));
        assert!(is_partition_of("nvme0n1", "nvme0n1p2"));
        assert!(!is_partition_of("vda", "vdb1"));
        assert!(!is_partition_of("vda", "vda"));
        assert!(!is_partition_of("sda", "sdaz"));
        assert!(!is_partition_of("vda", "queue"));
    }
}
