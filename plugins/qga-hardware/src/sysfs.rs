//! Reading and writing the small files of sysfs the way qemu-ga does, so
//! that its errors read as qemu-ga's: the directory opened first, then the
//! start of one file read in one go.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// What `strerror` says for `e`: std's text without its " (os error 2)".
pub(crate) fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// Opens `path` as a directory (`O_DIRECTORY`), only to see that it can be.
pub(crate) fn open_dir(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY)
        .open(path)
}

/// Why the start of a file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Open(io::Error),
    Read(io::Error),
    /// The file is empty.
    Eof,
}

impl ReadError {
    /// The `errno` qemu-ga is left with: 0 for an empty file.
    pub(crate) fn errno(&self) -> i32 {
        match self {
            ReadError::Open(e) | ReadError::Read(e) => e.raw_os_error().unwrap_or(0),
            ReadError::Eof => 0,
        }
    }

    pub(crate) fn not_found(&self) -> bool {
        self.errno() == nix::libc::ENOENT
    }
}

/// Up to `max` bytes from the start of `path`, read with one `pread`.
pub(crate) fn read_start(path: &str, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut file = File::open(path).map_err(ReadError::Open)?;
    let mut buffer = vec![0; max];
    let n = loop {
        match file.read(&mut buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other.map_err(ReadError::Read)?,
        }
    };
    if n == 0 {
        return Err(ReadError::Eof);
    }
    buffer.truncate(n);
    Ok(buffer)
}

/// Writes `value` at the start of the existing file `path`.
pub(crate) fn write_start(path: &str, value: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all_at(value, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_is_the_c_library_text_alone() {
        let e = io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert_eq!(strerror(&e), "No such file or directory");
        assert_eq!(strerror(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn read_start_tells_a_missing_file_from_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let text = path.to_str().unwrap();
        let missing = read_start(text, 4).unwrap_err();
        assert!(missing.not_found());
        std::fs::write(&path, "").unwrap();
        assert!(matches!(read_start(text, 4), Err(ReadError::Eof)));
        std::fs::write(&path, "online\n").unwrap();
        assert_eq!(read_start(text, 4).unwrap(), b"onli");
        assert!(open_dir(text).is_err(), "a file is not a directory");
        assert!(open_dir(dir.path().to_str().unwrap()).is_ok());
    }
}
