//! Which disks a block device sits on, and where they are attached: sysfs
//! walked as qemu-ga 7.2 walks it (`build_guest_fsinfo_for_device` and the
//! functions it calls in qga/commands-posix.c), and the udev properties it
//! reads through libudev, read here from the files libudev reads.
//!
//! A virtual device (device mapper, md) stands for the disks in its
//! `slaves/`; a real one gets a `GuestDiskAddress`: its PCI controller, bus
//! type and SCSI/IDE numbers from the sysfs path, `dev` and `serial` from
//! udev. Lists are built front-first, as qemu-ga's `QAPI_LIST_PREPEND` does,
//! so the order is qemu-ga's.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use serde_json::{json, Value};

use crate::mounts::Paths;
use crate::ops::strerror;

/// qemu-ga's `GuestDiskAddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskAddress {
    /// domain, bus, slot, function; -1 each when not on PCI.
    pub(crate) pci: [i64; 4],
    pub(crate) bus_type: &'static str,
    pub(crate) bus: u32,
    pub(crate) target: u32,
    pub(crate) unit: u32,
    pub(crate) serial: Option<String>,
    pub(crate) dev: Option<String>,
    /// cssid, ssid, subchno, devno (s390x channel I/O).
    pub(crate) ccw: Option<[u32; 4]>,
}

impl DiskAddress {
    fn unknown() -> DiskAddress {
        DiskAddress {
            pci: [-1; 4],
            bus_type: "unknown",
            bus: 0,
            target: 0,
            unit: 0,
            serial: None,
            dev: None,
            ccw: None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let [domain, bus, slot, function] = self.pci;
        let mut address = json!({
            "pci-controller": {"domain": domain, "bus": bus, "slot": slot, "function": function},
            "bus-type": self.bus_type,
            "bus": self.bus,
            "target": self.target,
            "unit": self.unit,
        });
        if let Some(serial) = &self.serial {
            address["serial"] = json!(serial);
        }
        if let Some(dev) = &self.dev {
            address["dev"] = json!(dev);
        }
        if let Some([cssid, ssid, subchno, devno]) = self.ccw {
            address["ccw-address"] =
                json!({"cssid": cssid, "ssid": ssid, "subchno": subchno, "devno": devno});
        }
        address
    }
}

/// What a walk found: the device's name (first one set wins) and its disks,
/// front-first.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) name: Option<String>,
    pub(crate) disks: Vec<DiskAddress>,
}

/// Walks the device at `devpath` (`/sys/dev/block/8:1`, `/sys/block/sda`,
/// a `slaves/` entry). A path that does not exist (a container may lack the
/// device) names it and adds nothing; other errors are qemu-ga's texts.
pub(crate) fn walk(paths: &Paths, devpath: &Path, found: &mut Found) -> Result<(), String> {
    let syspath = match fs::canonicalize(devpath) {
        Ok(syspath) => syspath,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            found.name.get_or_insert_with(|| base_name(devpath));
            return Ok(());
        }
        Err(e) => {
            return Err(format!(
                "realpath(\"{}\"): {}",
                devpath.display(),
                io_strerror(&e)
            ))
        }
    };
    found.name.get_or_insert_with(|| base_name(&syspath));
    if is_virtual(&syspath) {
        walk_slaves(paths, &syspath, found)
    } else {
        real_device(paths, &syspath, found)
    }
}

/// A device mapper or md volume: its path is under `/devices/virtual/block/`.
pub(crate) fn is_virtual(syspath: &Path) -> bool {
    syspath
        .to_string_lossy()
        .contains("/devices/virtual/block/")
}

fn walk_slaves(paths: &Paths, syspath: &Path, found: &mut Found) -> Result<(), String> {
    let dir = syspath.join("slaves");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "opendir(\"{}\"): {}",
                dir.display(),
                io_strerror(&e)
            ))
        }
    };
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("readdir(\"{}\"): {}", dir.display(), io_strerror(&e)))?;
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            walk(paths, &entry.path(), found)?;
        }
    }
    Ok(())
}

fn real_device(paths: &Paths, syspath: &Path, found: &mut Found) -> Result<(), String> {
    let mut disk = DiskAddress::unknown();
    if let Some(udev) = Udev::open(paths, syspath) {
        disk.dev = udev.devnode();
        disk.serial = udev.property("ID_SERIAL");
    }
    let text = syspath.to_string_lossy();
    let described = if text.contains("/devices/pci") {
        pci_device(&text, &mut disk)
    } else if text.contains("/devices/css") {
        Ok(ccw_device(&text, &mut disk))
    } else if text.contains("/virtio") {
        Ok(nonpci_virtio(&text, &mut disk))
    } else {
        Ok(false)
    };
    if matches!(described, Ok(true)) || disk.dev.is_some() || disk.serial.is_some() {
        found.disks.insert(0, disk);
    }
    described.map(drop)
}

const PCI_DRIVERS: [&str; 5] = ["ata_piix", "sym53c8xx", "virtio-pci", "ahci", "nvme"];

/// A disk behind a PCI controller, found by walking down the PCI path
/// (through bridges) to the first device with a storage driver qemu-ga
/// knows. `Ok(false)`: not described (its PCI address may be set).
fn pci_device(syspath: &str, disk: &mut DiskAddress) -> Result<bool, String> {
    let Some(at) = syspath.find("/devices/pci") else {
        return Ok(false);
    };
    let start = at + "/devices/pci".len();
    let Some((mut pci, used)) = pci_root(&syspath[start..]) else {
        tracing::debug!("only pci device is supported: sysfs path '{syspath}'");
        return Ok(false);
    };
    let mut end = start + used;
    let driver = loop {
        if let Some(driver) =
            pci_driver(&syspath[..end]).filter(|d| PCI_DRIVERS.contains(&d.as_str()))
        {
            break driver;
        }
        match pci_next(&syspath[end..]) {
            Some((address, used)) => {
                pci = address;
                end += used;
            }
            None => {
                tracing::debug!("unsupported driver or sysfs path '{syspath}'");
                return Ok(false);
            }
        }
    };

    let target = syspath
        .find("/target")
        .and_then(|at| scsi_target(&syspath[at + 7..]));
    let (host_at, number_at, ata) = match syspath.find("/ata") {
        Some(at) => (Some(at), at + 4, true),
        None => match syspath.find("/host") {
            Some(at) => (Some(at), at + 5, false),
            None => (None, 0, false),
        },
    };
    let mut host = None;
    let mut hosts = Vec::new();
    if let Some(at) = host_at {
        if let Some(number) = Scan::new(&syspath[number_at..]).dec() {
            host = Some(number);
            hosts = build_hosts(&syspath[..at], ata)?;
        }
    }

    let [domain, bus, slot, function] = pci;
    disk.pci = [domain.into(), bus.into(), slot.into(), function.into()];
    let host_index = host.and_then(|h| hosts.iter().position(|&x| x == h));
    match driver.as_str() {
        "ata_piix" => {
            // A host per IDE bus; target*:0:<unit>:0.
            let (Some(index), Some([_, unit, _])) = (host_index, target) else {
                return Ok(false);
            };
            disk.bus_type = "ide";
            disk.bus = index as u32;
            disk.unit = unit;
        }
        "sym53c8xx" => {
            // SCSI (LSI Logic): target*:0:<unit>:0.
            let Some([_, unit, _]) = target else {
                return Ok(false);
            };
            disk.bus_type = "scsi";
            disk.unit = unit;
        }
        "virtio-pci" => match target {
            // virtio-scsi: target*:0:0:<unit>.
            Some([_, _, unit]) => {
                disk.bus_type = "scsi";
                disk.unit = unit;
            }
            // virtio-blk: one disk per device.
            None => disk.bus_type = "virtio",
        },
        "ahci" => {
            // One host per unit.
            let (Some(index), Some(_)) = (host_index, target) else {
                return Ok(false);
            };
            disk.bus_type = "sata";
            disk.unit = index as u32;
        }
        _ => disk.bus_type = "nvme",
    }
    Ok(true)
}

/// The driver bound to the PCI device at `devpath`.
fn pci_driver(devpath: &str) -> Option<String> {
    let link = fs::read_link(format!("{devpath}/driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The `ata<N>` (or `host<N>`) numbers in `dir`, sorted; at most 8, as
/// qemu-ga reads them.
fn build_hosts(dir: &str, ata: bool) -> Result<Vec<u32>, String> {
    let prefix = if ata { "ata" } else { "host" };
    let entries =
        fs::read_dir(dir).map_err(|e| format!("opendir(\"{dir}\"): {}", io_strerror(&e)))?;
    let mut hosts: Vec<u32> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let rest = name.to_str()?.strip_prefix(prefix)?;
            Scan::new(rest).dec()
        })
        .take(8)
        .collect();
    hosts.sort_unstable();
    Ok(hosts)
}

/// `target<H>:<C>:<T>/<H>:<C>:<T>:<L>` after `/target`: the last three.
fn scsi_target(text: &str) -> Option<[u32; 3]> {
    let mut s = Scan::new(text);
    s.dec()?;
    s.lit(b':')?;
    s.dec()?;
    s.lit(b':')?;
    s.dec()?;
    s.lit(b'/')?;
    s.dec()?;
    s.lit(b':')?;
    let channel = s.dec()?;
    s.lit(b':')?;
    let id = s.dec()?;
    s.lit(b':')?;
    Some([channel, id, s.dec()?])
}

/// A virtio disk that is not on PCI (virtio-mmio, virtio-ccw).
fn nonpci_virtio(syspath: &str, disk: &mut DiskAddress) -> bool {
    if !syspath.contains("/virtio") || !syspath.contains("/block") {
        tracing::debug!("Unsupported virtio device '{syspath}'");
        return false;
    }
    let target = syspath
        .find("/target")
        .and_then(|at| scsi_target(&syspath[at + 7..]));
    match target {
        Some([bus, target, unit]) => {
            disk.bus_type = "scsi";
            disk.bus = bus;
            disk.target = target;
            disk.unit = unit;
        }
        None => disk.bus_type = "virtio",
    }
    true
}

/// An s390x channel I/O device: `/devices/css0/0.0.0000/0.0.0000/...`.
fn ccw_device(syspath: &str, disk: &mut DiskAddress) -> bool {
    let Some(at) = syspath.find("/devices/css") else {
        return false;
    };
    let rest = &syspath[at..];
    let Some(ccw) = ccw_address(&rest["/devices/css".len()..]) else {
        tracing::debug!("could not parse ccw device sysfs path: {syspath}");
        return false;
    };
    disk.ccw = Some(ccw);
    if rest.contains("/virtio") {
        nonpci_virtio(syspath, disk);
    }
    true
}

/// `<cssid>/<cssid>.<ssid>.<subchno>/<x>.<x>.<devno>` after `/devices/css`.
fn ccw_address(text: &str) -> Option<[u32; 4]> {
    let mut s = Scan::new(text);
    s.hex()?;
    s.lit(b'/')?;
    let cssid = s.hex()?;
    s.lit(b'.')?;
    let ssid = s.hex()?;
    s.lit(b'.')?;
    let subchno = s.hex()?;
    s.lit(b'/')?;
    s.hex()?;
    s.lit(b'.')?;
    s.hex()?;
    s.lit(b'.')?;
    Some([cssid, ssid, subchno, s.hex()?])
}

/// `0000:00/0000:00:02.0` after `/devices/pci`: the root bus, then the
/// first device's address and how many bytes it took.
fn pci_root(text: &str) -> Option<([u32; 4], usize)> {
    let mut s = Scan::new(text);
    s.hex()?;
    s.lit(b':')?;
    s.hex()?;
    s.lit(b'/')?;
    Some((s.pci()?, s.used))
}

/// `/0000:01:00.0`: the next device down a PCI bridge.
fn pci_next(text: &str) -> Option<([u32; 4], usize)> {
    let mut s = Scan::new(text);
    s.lit(b'/')?;
    Some((s.pci()?, s.used))
}

/// What libudev knows of a device: its `uevent` and its udev database entry.
pub(crate) struct Udev {
    properties: HashMap<String, String>,
}

impl Udev {
    /// `None` when `syspath` is not a device (no `uevent`), as
    /// `udev_device_new_from_syspath` fails then.
    pub(crate) fn open(paths: &Paths, syspath: &Path) -> Option<Udev> {
        let real = fs::canonicalize(syspath).ok()?;
        let uevent = fs::read_to_string(real.join("uevent")).ok()?;
        let mut properties: HashMap<String, String> = uevent
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let (Some(major), Some(minor)) = (properties.get("MAJOR"), properties.get("MINOR")) {
            let entry = paths.udev_data.join(format!("b{major}:{minor}"));
            if let Ok(db) = fs::read_to_string(entry) {
                for line in db.lines() {
                    if let Some((key, value)) =
                        line.strip_prefix("E:").and_then(|p| p.split_once('='))
                    {
                        properties
                            .entry(key.to_owned())
                            .or_insert_with(|| value.to_owned());
                    }
                }
            }
        }
        Some(Udev { properties })
    }

    /// The device node: `/dev/` and the kernel's `DEVNAME`.
    pub(crate) fn devnode(&self) -> Option<String> {
        let name = self.properties.get("DEVNAME")?;
        Some(if name.starts_with('/') {
            name.clone()
        } else {
            format!("/dev/{name}")
        })
    }

    /// A property, when set and not empty.
    pub(crate) fn property(&self, key: &str) -> Option<String> {
        self.properties.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

/// The device node of the device at `syspath`, if it is one.
pub(crate) fn devnode(paths: &Paths, syspath: &Path) -> Option<String> {
    Udev::open(paths, syspath)?.devnode()
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// The C library's text for an I/O error.
pub(crate) fn io_strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => strerror(Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// `sscanf` for the few patterns qemu-ga reads sysfs paths with: unsigned
/// hex and decimal numbers and literal bytes, left to right.
struct Scan<'a> {
    text: &'a [u8],
    used: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Scan<'a> {
        Scan {
            text: text.as_bytes(),
            used: 0,
        }
    }

    fn digits(&mut self, radix: u32) -> Option<u32> {
        let rest = &self.text[self.used..];
        let len = rest
            .iter()
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        let number = u32::from_str_radix(std::str::from_utf8(&rest[..len]).ok()?, radix).ok()?;
        self.used += len;
        Some(number)
    }

    fn hex(&mut self) -> Option<u32> {
        self.digits(16)
    }

    fn dec(&mut self) -> Option<u32> {
        self.digits(10)
    }

    fn lit(&mut self, byte: u8) -> Option<()> {
        (self.text.get(self.used) == Some(&byte)).then(|| self.used += 1)
    }

    /// `domain:bus:slot.function`, all hex.
    fn pci(&mut self) -> Option<[u32; 4]> {
        let domain = self.hex()?;
        self.lit(b':')?;
        let bus = self.hex()?;
        self.lit(b':')?;
        let slot = self.hex()?;
        self.lit(b'.')?;
        Some([domain, bus, slot, self.hex()?])
    }
}
