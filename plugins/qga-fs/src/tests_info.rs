//! `guest-get-fsinfo`, `guest-get-disks` and `guest-fstrim` over a crafted
//! sysfs, udev database and mount table: the disks a QEMU guest has (virtio-blk,
//! virtio-scsi, IDE, NVMe behind a bridge, s390x ccw, device mapper) and the
//! addresses qemu-ga gives them.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use nova_agent_plugin_api::ErrorKind;
use serde_json::{json, Value};

use crate::ops::{DryRun, Failure};
use crate::tests::{error, value, Guest, Scripted};

fn file(base: &Path, path: &str, text: &str) {
    let path = base.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn link(base: &Path, path: &str, target: &str) {
    let path = base.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, path).unwrap();
}

/// A block device at `sys/devices/<dir>`, listed in `sys/block` and
/// `sys/dev/block`.
fn device(base: &Path, dir: &str, major: u32, minor: u32, size: &str) {
    let name = dir.rsplit('/').next().unwrap();
    let uevent = format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk\n");
    file(base, &format!("sys/devices/{dir}/uevent"), &uevent);
    file(base, &format!("sys/devices/{dir}/size"), size);
    link(
        base,
        &format!("sys/block/{name}"),
        &format!("../devices/{dir}"),
    );
    let number = format!("sys/dev/block/{major}:{minor}");
    link(base, &number, &format!("../../devices/{dir}"));
}

fn partition(base: &Path, disk_dir: &str, name: &str, major: u32, minor: u32) {
    let uevent = format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=partition\n");
    file(
        base,
        &format!("sys/devices/{disk_dir}/{name}/uevent"),
        &uevent,
    );
    let number = format!("sys/dev/block/{major}:{minor}");
    link(base, &number, &format!("../../devices/{disk_dir}/{name}"));
}

fn driver(base: &Path, pci_dir: &str, name: &str) {
    let target = format!("../../../bus/pci/drivers/{name}");
    link(base, &format!("sys/devices/{pci_dir}/driver"), &target);
}

const VDA: &str = "pci0000:00/0000:00:02.0/virtio1/block/vda";
const SDA: &str = "pci0000:00/0000:00:05.0/virtio2/host0/target0:0:0/0:0:0:3/block/sda";
const SDB: &str = "pci0000:00/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/sdb";
const NVME: &str = "pci0000:00/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1";

/// The disks of a QEMU guest, as sysfs and udev show them.
fn machine(base: &Path) {
    driver(base, "pci0000:00/0000:00:02.0", "virtio-pci");
    device(base, VDA, 254, 0, "536870912\n");
    fs::create_dir_all(base.join(format!("sys/devices/{VDA}/slaves"))).unwrap();
    partition(base, VDA, "vda1", 254, 1);

    driver(base, "pci0000:00/0000:00:05.0", "virtio-pci");
    device(base, SDA, 8, 0, "2097152\n");
    file(
        base,
        "run/udev/data/b8:0",
        "S:disk/by-id/x\nE:ID_SERIAL=0QEMU_QEMU_HARDDISK_drive-scsi0\n",
    );

    driver(base, "pci0000:00/0000:00:01.1", "ata_piix");
    fs::create_dir_all(base.join("sys/devices/pci0000:00/0000:00:01.1/ata1")).unwrap();
    device(base, SDB, 8, 16, "1024\n");

    driver(base, "pci0000:00/0000:00:1c.0", "pcieport");
    link(
        base,
        "sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/driver",
        "../../../../bus/pci/drivers/nvme",
    );
    device(base, NVME, 259, 0, "1024\n");

    device(
        base,
        "css0/0.0.0000/0.0.0001/virtio0/block/vdc",
        254,
        32,
        "1024\n",
    );
    device(base, "platform/soc/mmc0/block/mmcblk0", 179, 0, "1024\n");

    device(base, "virtual/block/dm-0", 253, 0, "1024\n");
    link(
        base,
        "sys/devices/virtual/block/dm-0/slaves/vda1",
        &format!("../../../../{VDA}/vda1"),
    );
    file(
        base,
        "run/udev/data/b253:0",
        "E:DM_NAME=vg-root\nE:DM_UUID=LVM-x\n",
    );

    device(base, "virtual/block/loop0", 7, 0, "0\n");
}

fn pci(domain: i64, bus: i64, slot: i64, function: i64) -> Value {
    json!({"domain": domain, "bus": bus, "slot": slot, "function": function})
}

fn virtio_vda1() -> Value {
    json!({"pci-controller": pci(0, 0, 2, 0), "bus-type": "virtio", "bus": 0, "target": 0, "unit": 0, "dev": "/dev/vda1"})
}

fn scsi_sda() -> Value {
    json!({
        "pci-controller": pci(0, 0, 5, 0), "bus-type": "scsi", "bus": 0, "target": 0, "unit": 3,
        "dev": "/dev/sda", "serial": "0QEMU_QEMU_HARDDISK_drive-scsi0"
    })
}

#[test]
fn fsinfo_names_each_mount_and_the_disks_under_it_last_mounted_first() {
    let base = tempfile::tempdir().unwrap();
    let mounted = base.path().join("mnt");
    fs::create_dir_all(&mounted).unwrap();
    let mountinfo = format!(
        "27 1 254:1 / {} rw - ext4 /dev/vda1 rw\n\
         28 27 253:0 / /nonexistent/qga-srv rw - xfs /dev/mapper/vg-root rw\n\
         29 27 8:0 / /nonexistent/qga-scsi rw - ext4 /dev/sda rw\n\
         30 27 8:99 / /nonexistent/gone rw - ext4 /dev/sdz rw\n",
        mounted.display()
    );
    let guest = Guest::new(&mountinfo);
    machine(guest.dir.path());
    let agent = guest.agent(Scripted::new(), json!({"thaw_after": "off"}));
    let info = value(agent.run("guest-get-fsinfo", "{}"));
    let info = info.as_array().unwrap();
    assert_eq!(info.len(), 4);
    assert_eq!(
        info[0],
        json!({"name": "8:99", "mountpoint": "/nonexistent/gone", "type": "ext4", "disk": []})
    );
    assert_eq!(
        info[1],
        json!({"name": "sda", "mountpoint": "/nonexistent/qga-scsi", "type": "ext4", "disk": [scsi_sda()]})
    );
    assert_eq!(
        info[2],
        json!({"name": "dm-0", "mountpoint": "/nonexistent/qga-srv", "type": "xfs", "disk": [virtio_vda1()]})
    );
    let root = &info[3];
    assert_eq!(root["name"], "vda1");
    assert_eq!(root["mountpoint"], json!(mounted.to_str().unwrap()));
    assert_eq!(root["disk"], json!([virtio_vda1()]));
    let (used, total) = (
        root["used-bytes"].as_u64().unwrap(),
        root["total-bytes"].as_u64().unwrap(),
    );
    assert!(total > 0 && used <= total, "{root}");
}

#[test]
fn a_sysfs_error_fails_fsinfo_with_qemu_gas_words() {
    let guest = Guest::new("27 1 9:9 / / rw - ext4 /dev/md9 rw\n");
    let base = guest.dir.path();
    link(base, "sys/dev/block/9:9", "9:9");
    let agent = guest.agent(Scripted::new(), json!({"thaw_after": "off"}));
    let devpath = base.join("sys/dev/block/9:9");
    assert_eq!(
        error(agent.run("guest-get-fsinfo", "{}")),
        (
            ErrorKind::Failed,
            format!(
                "realpath(\"{}\"): Too many levels of symbolic links",
                devpath.display()
            )
        )
    );
}

#[test]
fn disks_lists_every_disk_after_its_partitions_with_its_address() {
    let guest = Guest::new("");
    machine(guest.dir.path());
    let agent = guest.agent(Scripted::new(), json!({"thaw_after": "off"}));
    let disks = value(agent.run("guest-get-disks", "{}"));
    let disks = disks.as_array().unwrap();
    let find = |name: &str| {
        disks
            .iter()
            .position(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {disks:?}"))
    };
    let mut names: Vec<&str> = disks.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/dev/dm-0",
            "/dev/mmcblk0",
            "/dev/nvme0n1",
            "/dev/sda",
            "/dev/sdb",
            "/dev/vda",
            "/dev/vda1",
            "/dev/vdc"
        ],
        "loop0 is empty and left out"
    );
    assert!(
        find("/dev/vda1") < find("/dev/vda"),
        "a partition comes before its disk"
    );
    assert_eq!(
        disks[find("/dev/vda")],
        json!({
            "name": "/dev/vda", "partition": false, "dependencies": [],
            "address": {"pci-controller": pci(0, 0, 2, 0), "bus-type": "virtio", "bus": 0, "target": 0, "unit": 0, "dev": "/dev/vda"}
        })
    );
    assert_eq!(
        disks[find("/dev/vda1")],
        json!({"name": "/dev/vda1", "partition": true, "dependencies": ["/dev/vda"]})
    );
    let sda = &disks[find("/dev/sda")];
    assert_eq!(sda["address"]["serial"], "0QEMU_QEMU_HARDDISK_drive-scsi0");
    assert_eq!(sda["address"]["unit"], 3);
    assert!(
        sda.get("dependencies").is_none(),
        "no slaves/ directory: {sda}"
    );
    assert_eq!(
        disks[find("/dev/dm-0")],
        json!({"name": "/dev/dm-0", "partition": false, "alias": "vg-root", "dependencies": ["/dev/vda1"]})
    );
    let address = |name: &str| disks[find(name)]["address"].clone();
    assert_eq!(
        address("/dev/sdb"),
        json!({"pci-controller": pci(0, 0, 1, 1), "bus-type": "ide", "bus": 1, "target": 0, "unit": 1, "dev": "/dev/sdb"})
    );
    assert_eq!(
        address("/dev/nvme0n1"),
        json!({"pci-controller": pci(0, 1, 0, 0), "bus-type": "nvme", "bus": 0, "target": 0, "unit": 0, "dev": "/dev/nvme0n1"})
    );
    assert_eq!(
        address("/dev/vdc"),
        json!({
            "pci-controller": pci(-1, -1, -1, -1), "bus-type": "virtio", "bus": 0, "target": 0, "unit": 0,
            "dev": "/dev/vdc", "ccw-address": {"cssid": 0, "ssid": 0, "subchno": 0, "devno": 1}
        })
    );
    assert_eq!(
        address("/dev/mmcblk0"),
        json!({"pci-controller": pci(-1, -1, -1, -1), "bus-type": "unknown", "bus": 0, "target": 0, "unit": 0, "dev": "/dev/mmcblk0"})
    );
}

#[test]
fn disks_without_sys_block_is_qemu_gas_error() {
    let guest = Guest::new("");
    let agent = guest.agent(Scripted::new(), json!({"thaw_after": "off"}));
    let dir = guest.dir.path().join("sys/block");
    assert_eq!(
        error(agent.run("guest-get-disks", "{}")).1,
        format!(
            "Can't open directory \"{}\": No such file or directory",
            dir.display()
        )
    );
}

const TWO: &str = "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                   28 27 8:2 / /srv rw - ext4 /dev/sda2 rw\n\
                   29 27 8:3 / /cdrom rw - iso9660 /dev/sr0 ro\n\
                   30 27 8:4 / /ro rw - ext4 /dev/sda4 ro\n";

#[test]
fn fstrim_answers_each_mount_last_mounted_first() {
    let guest = Guest::new(TWO);
    let ops = Scripted::new();
    let agent = guest.agent(ops.clone(), json!({"thaw_after": "off"}));
    ops_fail(&ops);
    let answer = value(agent.run("guest-fstrim", r#"{"minimum":65536}"#));
    assert_eq!(
        answer,
        json!({"paths": [
            {"path": "/ro", "error": "failed to trim: Read-only file system"},
            {"path": "/cdrom", "error": "trim not supported"},
            {"path": "/srv", "error": "failed to open: Permission denied"},
            {"path": "/", "trimmed": 4096, "minimum": 65536},
        ]})
    );
}

fn ops_fail(ops: &Scripted) {
    ops.fail("/srv", Failure::Open(Errno::EACCES));
    ops.fail("/cdrom", Failure::Ioctl(Errno::ENOTTY));
    ops.fail("/ro", Failure::Ioctl(Errno::EROFS));
}

#[test]
fn fstrim_with_apply_false_trims_nothing_and_says_so_in_qemu_gas_shape() {
    let guest = Guest::new(TWO);
    let agent = guest.agent(Arc::new(DryRun::default()), json!({"thaw_after": "off"}));
    let answer = value(agent.run("guest-fstrim", "{}"));
    let first = &answer["paths"][0];
    assert_eq!(*first, json!({"path": "/ro", "trimmed": 0, "minimum": 0}));
    assert_eq!(answer["paths"].as_array().unwrap().len(), 4);
    // A negative minimum reaches the kernel as C converts it, and comes back.
    let answer = value(agent.run("guest-fstrim", r#"{"minimum":-1}"#));
    assert_eq!(answer["paths"][0]["minimum"], -1);
}
