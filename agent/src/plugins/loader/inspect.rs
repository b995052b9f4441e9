//! A plugin file's manifest section (see `nova_agent_plugin_api::manifest`),
//! read without mapping the file or running any of its code.
//!
//! Only the ELF header, the section headers, the section names and the
//! manifest section itself are read, each with `pread`: the file's offset
//! never moves, so whoever later copies or opens the same descriptor is
//! not affected.

use std::fs::File;
use std::os::unix::fs::FileExt;

use nova_agent_plugin_api::manifest::{self, FileManifest};
use object::elf::{FileHeader32, FileHeader64, SHT_NOBITS};
use object::read::elf::{FileHeader, SectionHeader};
use object::read::{ReadCache, ReadCacheOps, StringTable};
use object::{Endianness, FileKind};

/// The largest manifest section, or section names table, read: real ones
/// are a few hundred bytes.
const MAX_SECTION: u64 = 64 * 1024;

/// The manifest section of the ELF file `file` holds, read without mapping
/// or running it. `Ok(None)`: the file has no such section (a plugin built
/// against plugin-api < 0.2.2).
pub(crate) fn inspect(file: &File) -> Result<Option<FileManifest>, String> {
    let cache = ReadCache::new(Pread { file, at: 0 });
    let section = match FileKind::parse(&cache) {
        Ok(FileKind::Elf64) => manifest_section::<FileHeader64<Endianness>>(&cache)?,
        Ok(FileKind::Elf32) => manifest_section::<FileHeader32<Endianness>>(&cache)?,
        _ => return Err("not an ELF file".to_owned()),
    };
    section
        .map(|bytes| {
            manifest::parse(bytes)
                .map_err(|reason| format!("its manifest section is malformed: {reason}"))
        })
        .transpose()
}

fn manifest_section<'data, Elf>(
    data: &'data ReadCache<Pread<'_>>,
) -> Result<Option<&'data [u8]>, String>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let not_elf = |_| "not an ELF file".to_owned();
    let header = Elf::parse(data).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let unreadable = |e| format!("cannot read its section headers: {e}");
    let sections = header.section_headers(endian, data).map_err(unreadable)?;
    let names_index = header.shstrndx(endian, data).map_err(unreadable)?;
    let names = sections
        .get(names_index as usize)
        .ok_or("its section names table is missing")?;
    // One read of the names table (a few hundred bytes), not one per name.
    let names = bounded(names, endian, data, "section names table")?;
    let names = StringTable::new(names, 0, names.len() as u64);
    let wanted = manifest::SECTION.as_bytes();
    let Some(section) = sections
        .iter()
        .find(|section| section.name(endian, names) == Ok(wanted))
    else {
        return Ok(None);
    };
    if section.sh_type(endian) == SHT_NOBITS {
        return Err("its manifest section is malformed: it has no content in the file".to_owned());
    }
    bounded(section, endian, data, "manifest section").map(Some)
}

/// The content of `section`, refused when larger than [`MAX_SECTION`].
fn bounded<'data, S: SectionHeader<Endian = Endianness>>(
    section: &S,
    endian: Endianness,
    data: &'data ReadCache<Pread<'_>>,
    what: &str,
) -> Result<&'data [u8], String> {
    let size: u64 = section.sh_size(endian).into();
    if size > MAX_SECTION {
        return Err(format!(
            "its {what} is {size} bytes, more than the {MAX_SECTION} it may have"
        ));
    }
    section
        .data(endian, data)
        .map_err(|e| format!("cannot read its {what}: {e}"))
}

/// Reads at an offset of its own, by `pread`, leaving the file's untouched.
struct Pread<'a> {
    file: &'a File,
    at: u64,
}

impl ReadCacheOps for Pread<'_> {
    fn len(&mut self) -> Result<u64, ()> {
        self.file.metadata().map(|m| m.len()).map_err(drop)
    }

    fn seek(&mut self, pos: u64) -> Result<u64, ()> {
        self.at = pos;
        Ok(pos)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        let read = self.file.read_at(buf, self.at).map_err(drop)?;
        self.at += read as u64;
        Ok(read)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        self.file.read_exact_at(buf, self.at).map_err(drop)?;
        self.at += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};

    use super::{inspect, manifest, File, MAX_SECTION};

    /// An ELF object file with a section `name` holding `content`.
    fn elf_with(name: &str, content: &[u8]) -> File {
        let mut object = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = object.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        object.append_section_data(text, &[0xc3], 1);
        let section = object.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        );
        object.append_section_data(section, content, 1);
        file_of(&object.write().unwrap())
    }

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file
    }

    fn section(records: &[&str]) -> Vec<u8> {
        let mut bytes = manifest::MAGIC.to_vec();
        for record in records {
            bytes.extend_from_slice(record.as_bytes());
            bytes.push(0);
        }
        bytes
    }

    const RECORDS: &[&str] = &[
        "format=1",
        "api=0.2.2",
        "name=qga-fs",
        "version=2.0.0",
        "description=filesystems",
        "provides=declared",
        "command=guest-fsfreeze-freeze",
        "gate=frozen",
    ];

    #[test]
    fn the_manifest_is_read_from_the_section_and_the_offset_stays() {
        let mut file = elf_with(manifest::SECTION, &section(RECORDS));
        file.seek(SeekFrom::Start(5)).unwrap();
        let manifest = inspect(&file).unwrap().unwrap();
        assert_eq!(manifest.name, "qga-fs");
        assert_eq!(manifest.api, "0.2.2");
        let provides = manifest.provides.unwrap();
        assert_eq!(provides.commands, ["guest-fsfreeze-freeze"]);
        assert_eq!(provides.gates, ["frozen"]);
        assert_eq!(file.stream_position().unwrap(), 5);
    }

    #[test]
    fn a_file_without_the_section_has_no_manifest() {
        let file = elf_with(".rodata.other", &section(RECORDS));
        assert_eq!(inspect(&file), Ok(None));
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        for bytes in [
            &b"not an ELF file at all, but long enough"[..],
            b"",
            b"\x7fELF",
        ] {
            assert_eq!(inspect(&file_of(bytes)), Err("not an ELF file".to_owned()));
        }
    }

    #[test]
    fn a_malformed_section_is_refused_with_the_reason() {
        let file = elf_with(manifest::SECTION, &section(&RECORDS[..2]));
        assert_eq!(
            inspect(&file),
            Err("its manifest section is malformed: it has no name= record".to_owned())
        );
    }

    #[test]
    fn an_oversized_section_is_refused() {
        let mut content = section(RECORDS);
        content.resize(MAX_SECTION as usize + 1, 0);
        let file = elf_with(manifest::SECTION, &content);
        let reason = inspect(&file).unwrap_err();
        assert_eq!(
            reason,
            "its manifest section is 65537 bytes, more than the 65536 it may have"
        );
    }
}
