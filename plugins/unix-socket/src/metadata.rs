//! Metadata as files: the key `vm-data/hostname` is the file
//! `<metadata_dir>/vm-data/hostname`, with XenStore's key layout, so commands
//! such as `resetnetwork` run without Xen.

use std::fs;
use std::io;
use std::path::PathBuf;

use nova_agent_plugin_api::PluginError;

/// The metadata directory of `[plugins.unix-socket] metadata_dir`, if any.
pub(crate) struct Metadata {
    dir: Option<PathBuf>,
}

impl Metadata {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Metadata { dir }
    }

    /// The value of `key`: the file's content as UTF-8 (lossy) with one
    /// trailing newline removed (people's files end in one; XenStore values do
    /// not). `None` without a metadata directory, or when the file is missing
    /// or is a directory.
    pub(crate) fn read(&self, key: &str) -> Result<Option<String>, PluginError> {
        check_key(key)?;
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = dir.join(key);
        match fs::read(&path) {
            Ok(bytes) => {
                let mut value = String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                if value.ends_with('\n') {
                    value.pop();
                }
                Ok(Some(value))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(PluginError::failed(format!(
                "metadata key {key}: cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// The names of the entries under `dir`, sorted; empty when there is no
    /// such directory (or no metadata directory at all).
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<String>, PluginError> {
        check_key(dir)?;
        let Some(root) = &self.dir else {
            return Ok(Vec::new());
        };
        let path = root.join(dir);
        let failed = |e: io::Error| {
            PluginError::failed(format!(
                "metadata directory {dir}: cannot list {}: {e}",
                path.display()
            ))
        };
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(failed)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort_unstable();
        Ok(names)
    }
}

/// Missing, or not the kind of file asked for (a directory read as a value, a
/// value listed as a directory, a value used as a directory on the way).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
    )
}

/// A key is a relative, slash-separated path whose every component is a plain
/// name: nothing can reach outside the metadata directory by name.
pub(crate) fn check_key(key: &str) -> Result<(), PluginError> {
    if key.starts_with('/') {
        return Err(PluginError::failed(format!(
            "metadata key {key:?} must be relative"
        )));
    }
    if key.contains('\0') {
        return Err(PluginError::failed(format!(
            "metadata key {key:?} contains a NUL byte"
        )));
    }
    match key.split('/').find(|c| matches!(*c, "" | "." | "..")) {
        Some(component) => Err(PluginError::failed(format!(
            "metadata key {key:?} has an invalid component {component:?}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn with_files(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        let metadata = Metadata::new(Some(dir.path().to_path_buf()));
        (dir, metadata)
    }

    #[test]
    fn keys_are_checked() {
        for good in [
            "vm-data/hostname",
            "vm-data/networking/BC764E000001",
            "vm-data",
            "a.b/..c/d..",
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/vm-data/hostname",
            "/",
            "vm-data//hostname",
            "vm-data/",
            "./vm-data",
            "vm-data/.",
            "..",
            "vm-data/../../etc/shadow",
            "vm-data/a\0b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_key("vm-data/../x").unwrap_err().message(),
            r#"metadata key "vm-data/../x" has an invalid component "..""#
        );
    }

    #[test]
    fn bad_keys_are_errors_for_read_and_list() {
        let (_dir, metadata) = with_files(&[("etc/passwd", b"root\n")]);
        assert!(metadata.read("../etc/passwd").is_err());
        assert!(metadata.read("/etc/passwd").is_err());
        assert!(metadata.list("vm-data/..").is_err());
        assert!(metadata.list("/").is_err());
    }

    #[test]
    fn read_strips_exactly_one_trailing_newline() {
        let (_dir, metadata) = with_files(&[
            ("vm-data/hostname", b"web01\n"),
            ("vm-data/xenstore-style", b"web02"),
            ("vm-data/two", b"a\n\n"),
            ("vm-data/crlf", b"a\r\n"),
            ("vm-data/empty", b""),
            ("vm-data/newline", b"\n"),
            (
                "vm-data/networking/BC764E000001",
                b"{\"label\": \"public\"}\n",
            ),
        ]);
        let read = |key: &str| metadata.read(key).unwrap();
        assert_eq!(read("vm-data/hostname").as_deref(), Some("web01"));
        assert_eq!(read("vm-data/xenstore-style").as_deref(), Some("web02"));
        assert_eq!(read("vm-data/two").as_deref(), Some("a\n"));
        assert_eq!(read("vm-data/crlf").as_deref(), Some("a\r"));
        assert_eq!(read("vm-data/empty").as_deref(), Some(""));
        assert_eq!(read("vm-data/newline").as_deref(), Some(""));
        assert_eq!(
            read("vm-data/networking/BC764E000001").as_deref(),
            Some("{\"label\": \"public\"}")
        );
    }

    #[test]
    fn read_is_lossy_utf8() {
        let (_dir, metadata) = with_files(&[("vm-data/bin", b"a\xffb\n")]);
        assert_eq!(
            metadata.read("vm-data/bin").unwrap().as_deref(),
            Some("a\u{fffd}b")
        );
    }

    #[test]
    fn missing_files_and_directories_read_as_none() {
        let (_dir, metadata) = with_files(&[("vm-data/hostname", b"web01\n")]);
        assert_eq!(metadata.read("vm-data/missing").unwrap(), None);
        assert_eq!(metadata.read("nothing/here").unwrap(), None);
        assert_eq!(metadata.read("vm-data").unwrap(), None);
        // A value used as a directory on the way.
        assert_eq!(metadata.read("vm-data/hostname/x").unwrap(), None);
    }

    #[test]
    fn without_a_directory_everything_is_absent() {
        let metadata = Metadata::new(None);
        assert_eq!(metadata.read("vm-data/hostname").unwrap(), None);
        assert_eq!(metadata.list("vm-data").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn list_is_sorted_and_missing_is_empty() {
        let (dir, metadata) = with_files(&[
            ("vm-data/networking/BC764E000003", b"{}"),
            ("vm-data/networking/BC764E000001", b"{}\n"),
            ("vm-data/networking/AA0000000002", b"{}"),
            ("vm-data/hostname", b"web01"),
        ]);
        fs::create_dir(dir.path().join("vm-data/networking/zz-dir")).unwrap();
        assert_eq!(
            metadata.list("vm-data/networking").unwrap(),
            ["AA0000000002", "BC764E000001", "BC764E000003", "zz-dir"]
        );
        assert_eq!(
            metadata.list("vm-data").unwrap(),
            ["hostname", "networking"]
        );
        assert!(metadata.list("vm-data/missing").unwrap().is_empty());
        assert!(metadata.list("vm-data/hostname").unwrap().is_empty());
        assert!(Path::new(dir.path()).join("vm-data").is_dir());
    }
}
