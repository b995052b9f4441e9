//! The mount table as qemu-ga 7.2 builds it (`build_fs_mount_list` in
//! qga/commands-linux.c): `/proc/self/mountinfo`, or `/proc/self/mounts`
//! when that cannot be read, cut down to the filesystems that sit on a block
//! device, in mount order. Every freeze, thaw, trim and fsinfo walks this
//! list.

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{major, minor};

/// Where the kernel's live state is read: `/proc`, `/sys`, udev's database
/// and the device nodes a mount names. Tests point these into a crafted
/// tree.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) mountinfo: PathBuf,
    pub(crate) mounts: PathBuf,
    pub(crate) sys: PathBuf,
    /// udev's device database (`/run/udev/data`), where `ID_SERIAL` and
    /// `DM_NAME` live.
    pub(crate) udev_data: PathBuf,
    /// The directory a device path such as `/dev/sda1` is resolved under.
    pub(crate) devices: PathBuf,
    /// The block devices' I/O counters, `/proc/diskstats`.
    pub(crate) diskstats: PathBuf,
}

impl Paths {
    /// The running system's.
    pub(crate) fn live() -> Paths {
        Paths {
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            mounts: PathBuf::from("/proc/self/mounts"),
            sys: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
            devices: PathBuf::from("/"),
            diskstats: PathBuf::from("/proc/diskstats"),
        }
    }

    /// The same layout under `base` (`<base>/proc/self/mountinfo`, ...).
    #[cfg(test)]
    pub(crate) fn under(base: &Path) -> Paths {
        Paths {
            mountinfo: base.join("proc/self/mountinfo"),
            mounts: base.join("proc/self/mounts"),
            sys: base.join("sys"),
            udev_data: base.join("run/udev/data"),
            devices: base.to_path_buf(),
            diskstats: base.join("proc/diskstats"),
        }
    }

    /// A device path from the mount table (`/dev/sda1`), resolved under
    /// [`devices`](Self::devices).
    fn device(&self, source: &Path) -> PathBuf {
        match source.strip_prefix("/") {
            Ok(relative) => self.devices.join(relative),
            Err(_) => self.devices.join(source),
        }
    }
}

/// One mounted filesystem on a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The mount point, escapes decoded (its bytes may not be UTF-8).
    pub(crate) dir: PathBuf,
    pub(crate) fstype: String,
    pub(crate) major: u32,
    pub(crate) minor: u32,
}

impl Mount {
    /// The mount point as a JSON string shows it.
    pub(crate) fn shown(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Whether `mountpoint` names this mount exactly, byte for byte.
    pub(crate) fn is(&self, mountpoint: &str) -> bool {
        self.dir.as_os_str().as_bytes() == mountpoint.as_bytes()
    }
}

/// The local filesystems, in mount order. Fails only when neither table can
/// be read, with qemu-ga's words.
pub(crate) fn mount_list(paths: &Paths) -> Result<Vec<Mount>, String> {
    match fs::read(&paths.mountinfo) {
        Ok(text) => Ok(from_mountinfo(paths, &text)),
        Err(_) => match fs::read(&paths.mounts) {
            Ok(text) => Ok(from_mtab(paths, &text)),
            Err(_) => Err(format!(
                "failed to open mtab file: '{}'",
                paths.mounts.display()
            )),
        },
    }
}

/// What the node a mount names is.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Block(u32, u32),
    /// A directory: the mount is a bind mount.
    Directory,
    /// Missing, unreadable or neither.
    Other,
}

fn node(paths: &Paths, source: &Path) -> Node {
    match fs::metadata(paths.device(source)) {
        Ok(meta) if meta.is_dir() => Node::Directory,
        Ok(meta) if meta.file_type().is_block_device() => {
            let rdev = meta.rdev();
            Node::Block(major(rdev) as u32, minor(rdev) as u32)
        }
        _ => Node::Other,
    }
}

/// `/proc/self/mountinfo`: `id parent major:minor root mountpoint options
/// [optional fields] - type source super-options`. An entry whose major is 0
/// (tmpfs, proc, overlay, ...) is skipped, except btrfs, which reports 0 and
/// whose source device then gives the numbers.
fn from_mountinfo(paths: &Paths, text: &[u8]) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(entry) = MountinfoLine::parse(line) else {
            continue;
        };
        let (major, minor) = match entry.major {
            0 if entry.fstype == b"btrfs" => match node(paths, &bytes_path(&entry.source)) {
                Node::Block(major, minor) => (major, minor),
                _ => continue,
            },
            0 => continue,
            major => (major, entry.minor),
        };
        mounts.push(Mount {
            dir: bytes_path(&entry.dir),
            fstype: String::from_utf8_lossy(&entry.fstype).into_owned(),
            major,
            minor,
        });
    }
    mounts
}

struct MountinfoLine {
    major: u32,
    minor: u32,
    dir: Vec<u8>,
    fstype: Vec<u8>,
    source: Vec<u8>,
}

impl MountinfoLine {
    fn parse(line: &[u8]) -> Option<MountinfoLine> {
        let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        number(fields.next()?)?;
        number(fields.next()?)?;
        let (major, minor) = split_once(fields.next()?, b':')?;
        let (major, minor) = (number(major)?, number(minor)?);
        let _root = fields.next()?;
        let dir = fields.next()?;
        // qemu-ga wants something after the mount point, then " - ".
        fields.next()?;
        fields.find(|f| *f == b"-")?;
        let fstype = fields.next()?;
        let source = fields.next()?;
        Some(MountinfoLine {
            major,
            minor,
            dir: decode_octal(dir),
            fstype: fstype.to_vec(),
            source: decode_octal(source),
        })
    }
}

/// `/proc/self/mounts`, read as getmntent(3) reads it: only sources that are
/// paths, no smbfs or cifs, no bind mounts; a source that is not a block
/// device (or cannot be looked at) gives 0:0.
fn from_mtab(paths: &Paths, text: &[u8]) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let mut fields = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|f| !f.is_empty());
        let Some(source) = fields.next() else {
            continue;
        };
        if source.starts_with(b"#") {
            continue;
        }
        let (Some(dir), Some(fstype)) = (fields.next(), fields.next()) else {
            continue;
        };
        let source = decode_mntent(source);
        if !source.starts_with(b"/") || fstype == b"smbfs" || fstype == b"cifs" {
            continue;
        }
        let (major, minor) = match node(paths, &bytes_path(&source)) {
            Node::Directory => continue,
            Node::Block(major, minor) => (major, minor),
            Node::Other => (0, 0),
        };
        mounts.push(Mount {
            dir: bytes_path(&decode_mntent(dir)),
            fstype: String::from_utf8_lossy(&decode_mntent(fstype)).into_owned(),
            major,
            minor,
        });
    }
    mounts
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(bytes.to_vec()))
}

fn number(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn split_once(field: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = field.iter().position(|&b| b == separator)?;
    Some((&field[..at], &field[at + 1..]))
}

/// The kernel's escapes in mountinfo (`\040` for a space, `\\`), decoded as
/// qemu-ga's `decode_mntname` does: `\` and three octal digits, the first
/// 0-3, is one byte; any other `\` stays.
fn decode_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let rest = &field[i..];
        if rest[0] != b'\\' {
            out.push(rest[0]);
            i += 1;
        } else if rest.get(1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let [_, a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] = rest {
            out.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
            i += 4;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
    out
}

/// getmntent(3)'s decoding: only `\040`, `\011`, `\012`, `\134` and `\\`.
fn decode_mntent(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let decoded = match &field[i..] {
            [b'\\', b'0', b'4', b'0', ..] => Some((b' ', 4)),
            [b'\\', b'0', b'1', b'1', ..] => Some((b'\t', 4)),
            [b'\\', b'0', b'1', b'2', ..] => Some((b'\n', 4)),
            [b'\\', b'1', b'3', b'4', ..] => Some((b'\\', 4)),
            [b'\\', b'\\', ..] => Some((b'\\', 2)),
            _ => None,
        };
        match decoded {
            Some((byte, width)) => {
                out.push(byte);
                i += width;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_with(mountinfo: Option<&str>, mounts: Option<&str>) -> (tempfile::TempDir, Paths) {
        let base = tempfile::tempdir().unwrap();
        let paths = Paths::under(base.path());
        fs::create_dir_all(paths.mountinfo.parent().unwrap()).unwrap();
        if let Some(text) = mountinfo {
            fs::write(&paths.mountinfo, text).unwrap();
        }
        if let Some(text) = mounts {
            fs::write(&paths.mounts, text).unwrap();
        }
        (base, paths)
    }

    fn dirs(mounts: &[Mount]) -> Vec<String> {
        mounts.iter().map(Mount::shown).collect()
    }

    #[test]
    fn mountinfo_keeps_block_devices_in_mount_order() {
        let text = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,size=4k
29 27 254:1 / /srv/my\\040data rw,relatime shared:1 master:2 - xfs /dev/vda1 rw
30 29 254:1 /sub /bind rw,relatime - xfs /dev/vda1 rw
";
        let (_base, paths) = paths_with(Some(text), None);
        let mounts = mount_list(&paths).unwrap();
        assert_eq!(dirs(&mounts), ["/", "/srv/my data", "/bind"]);
        assert_eq!(
            mounts[1],
            Mount {
                dir: PathBuf::from("/srv/my data"),
                fstype: "xfs".into(),
                major: 254,
                minor: 1
            }
        );
    }

    #[test]
    fn a_btrfs_mount_takes_its_numbers_from_its_device_or_is_skipped() {
        let text = "40 1 0:45 / /data rw - btrfs /dev/nonexistent rw\n\
                    41 1 0:46 / /home rw - btrfs /dev/dir rw\n";
        let (base, paths) = paths_with(Some(text), None);
        fs::create_dir_all(base.path().join("dev/dir")).unwrap();
        assert_eq!(mount_list(&paths).unwrap(), []);
    }

    #[test]
    fn malformed_mountinfo_lines_are_skipped() {
        let text = "garbage\n\
                    1 2 8:1 / /a rw\n\
                    1 2 x:1 / /b rw - ext4 /dev/b rw\n\
                    1 2 8:3 / /c rw - ext4\n\
                    1 2 8:4 / /d rw - ext4 /dev/d rw\n";
        let (_base, paths) = paths_with(Some(text), None);
        assert_eq!(dirs(&mount_list(&paths).unwrap()), ["/d"]);
    }

    #[test]
    fn without_mountinfo_mounts_is_read_as_getmntent_reads_it() {
        let text = "\
# a comment
proc /proc proc rw 0 0
/dev/vda / ext4 rw 0 0
//server/share /mnt/smb cifs rw 0 0
/srv/src /srv/bind none rw,bind 0 0
/dev/vdb /mnt/with\\040space\\134x ext4 rw 0 0
";
        let (base, paths) = paths_with(None, Some(text));
        fs::create_dir_all(base.path().join("srv/src")).unwrap();
        let mounts = mount_list(&paths).unwrap();
        assert_eq!(dirs(&mounts), ["/", "/mnt/with space\\x"]);
        // Sources that are not block devices here read as 0:0.
        assert_eq!((mounts[0].major, mounts[0].minor), (0, 0));
    }

    #[test]
    fn no_table_at_all_is_qemu_gas_error() {
        let (_base, paths) = paths_with(None, None);
        let error = mount_list(&paths).unwrap_err();
        assert_eq!(
            error,
            format!("failed to open mtab file: '{}'", paths.mounts.display())
        );
    }

    #[test]
    fn escapes_decode_as_qemu_ga_decodes_them() {
        assert_eq!(decode_octal(b"a\\040b\\\\c\\9d\\477"), b"a b\\c\\9d\\477");
        assert_eq!(decode_octal(b"end\\"), b"end\\");
        assert_eq!(
            decode_mntent(b"a\\040b\\011c\\012d\\134e\\\\f\\041"),
            b"a b\tc\nd\\e\\f\\041"
        );
    }

    #[test]
    fn a_mount_is_named_by_its_exact_mount_point() {
        let mount = Mount {
            dir: PathBuf::from("/mnt/x"),
            fstype: "ext4".into(),
            major: 8,
            minor: 1,
        };
        assert!(mount.is("/mnt/x"));
        assert!(!mount.is("/mnt/x/"));
        assert!(!mount.is("/mnt"));
    }
}
