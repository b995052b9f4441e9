//! What a plugin's code costs this process: the address space its library
//! maps, and how much of that is in memory. A library is found in
//! /proc/self/maps (or smaps) by the inode of the descriptor it was opened
//! by and the name the kernel gives that descriptor (`... (deleted)` for an
//! unnamed staged copy).

use std::fs::{self, File};
use std::os::fd::{AsRawFd, RawFd};

use serde::{Deserialize, Serialize};

/// How much of one library's mappings is in memory (/proc/self/smaps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Resident {
    pub(crate) rss_bytes: u64,
    /// Its proportional share: pages shared with other processes count in
    /// part.
    pub(crate) pss_bytes: u64,
    /// Pages written since mapped (relocations, statics).
    pub(crate) private_dirty_bytes: u64,
}

/// The library held open by `descriptor`: its inode and mapping name.
struct Library {
    inode: String,
    name: String,
}

impl Library {
    fn of(descriptor: RawFd) -> Option<Library> {
        // SAFETY: fstat writes into the zeroed struct; an invalid
        // descriptor fails with EBADF.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(descriptor, &mut stat) } != 0 {
            return None;
        }
        let name = fs::read_link(format!("/proc/self/fd/{descriptor}")).ok()?;
        Some(Library {
            inode: stat.st_ino.to_string(),
            name: name.to_string_lossy().into_owned(),
        })
    }

    /// The address range of a maps or smaps header line mapping this
    /// library.
    fn range_in<'a>(&self, line: &'a str) -> Option<&'a str> {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let inode = fields.nth(3)?;
        let name = fields.next()?.trim_start();
        (inode == self.inode && name == self.name).then_some(range)
    }
}

fn range_len(range: &str) -> Option<u64> {
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    Some(end.saturating_sub(start))
}

/// Bytes of this process's address space mapped from what `file` holds.
pub(crate) fn mapped_bytes(file: &File) -> u64 {
    let (Some(library), Ok(maps)) = (
        Library::of(file.as_raw_fd()),
        fs::read_to_string("/proc/self/maps"),
    ) else {
        return 0;
    };
    maps.lines()
        .filter_map(|line| library.range_in(line))
        .filter_map(range_len)
        .sum()
}

/// This process's /proc/self/smaps, read once for any number of libraries.
pub(crate) struct Smaps(String);

impl Smaps {
    /// Empty when it cannot be read: every library then reads as not in
    /// memory.
    pub(crate) fn read() -> Smaps {
        Smaps(fs::read_to_string("/proc/self/smaps").unwrap_or_default())
    }

    /// How much of the library `descriptor` holds is in memory.
    pub(crate) fn resident(&self, descriptor: RawFd) -> Resident {
        let mut resident = Resident::default();
        let Some(library) = Library::of(descriptor) else {
            return resident;
        };
        let mut inside = false;
        for line in self.0.lines() {
            // A header starts with the range; a field line with its name.
            if line
                .split(' ')
                .next()
                .is_some_and(|first| range_len(first).is_some())
            {
                inside = library.range_in(line).is_some();
            } else if inside {
                resident.add(line);
            }
        }
        resident
    }
}

/// A whole process's memory (`/proc/<pid>/smaps_rollup`); `None` once it is
/// gone.
pub(crate) fn process_memory(pid: u32) -> Option<Resident> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mut resident = Resident::default();
    rollup.lines().for_each(|line| resident.add(line));
    Some(resident)
}

impl Resident {
    /// Adds an smaps field line (`Rss:   412 kB`) it counts.
    fn add(&mut self, line: &str) {
        let Some((key, value)) = line.split_once(':') else {
            return;
        };
        let bytes = || {
            let kib = value.trim().trim_end_matches("kB").trim().parse::<u64>();
            kib.unwrap_or(0) * 1024
        };
        match key {
            "Rss" => self.rss_bytes += bytes(),
            "Pss" => self.pss_bytes += bytes(),
            "Private_Dirty" => self.private_dirty_bytes += bytes(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_is_counted_and_an_unmapped_one_is_not() {
        let exe = File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(mapped_bytes(&exe) > 0);
        let smaps = Smaps::read();
        let exe_resident = smaps.resident(exe.as_raw_fd());
        assert!(exe_resident.rss_bytes > 0, "{exe_resident:?}");
        assert!(exe_resident.pss_bytes > 0, "{exe_resident:?}");
        assert!(
            exe_resident.rss_bytes <= mapped_bytes(&exe),
            "{exe_resident:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"x").unwrap();
        let unmapped = File::open(dir.path().join("x")).unwrap();
        assert_eq!(mapped_bytes(&unmapped), 0);
        assert_eq!(smaps.resident(unmapped.as_raw_fd()), Resident::default());
        assert_eq!(smaps.resident(-1), Resident::default());

        let me = process_memory(std::process::id()).unwrap();
        assert!(me.rss_bytes >= exe_resident.rss_bytes, "{me:?}");
        assert!(me.private_dirty_bytes > 0, "{me:?}");
    }
}
