//! The two commands against a temporary root, with a sibling directory
//! `outside` that no request may change. The seed vectors are the original
//! agent's (`testdata/seed-injectfile-vectors.json`, copied from the
//! project's reference).
//!
//! The shared helpers live here; the tests are in `values_tests.rs` (the
//! seed vectors, the value forms, the path checks, symbolic links) and
//! `writing_tests.rs` (the allow list, the config, backups, modes).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{Command, CommandError, ErrorKind};
use serde_json::{json, Value};

use crate::config::Config;
use crate::path::MAX_LINKS;
use crate::value::{BAD_BASE64, BAD_OBJECT, NO_COMMA, PATH_NOT_UTF8};
use crate::{FileInject, InjectFile, State, MAX_CONTENTS};

#[path = "values_tests.rs"]
mod values;
#[path = "writing_tests.rs"]
mod writing;

const VECTORS: &str = include_str!("../testdata/seed-injectfile-vectors.json");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `injectfile`'s value for `path` and `contents`, as JSON text.
fn injectfile_value(path: &[u8], contents: &[u8]) -> String {
    let mut data = path.to_vec();
    data.push(b',');
    data.extend_from_slice(contents);
    format!("\"{}\"", b64(&data))
}

struct Guest {
    dir: tempfile::TempDir,
    root: PathBuf,
    injectfile: InjectFile,
    file_inject: FileInject,
}

impl Guest {
    fn new() -> Guest {
        Guest::with_config("{}")
    }

    fn with_config(config_json: &str) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(outside.join("etc")).unwrap();
        fs::write(outside.join("etc/passwd"), "outside's passwd\n").unwrap();
        fs::write(outside.join("secret"), "outside's file\n").unwrap();
        let table = serde_json::from_str(config_json).unwrap();
        let state = Arc::new(State::new(root.clone(), Config::parse(table).unwrap()));
        Guest {
            dir,
            root,
            injectfile: InjectFile(Arc::clone(&state)),
            file_inject: FileInject(state),
        }
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn run(&self, command: &dyn Command, arguments: &str) -> Answer {
        TestCall::new().run(command, arguments)
    }

    fn injectfile_raw(&self, arguments: &str) -> Answer {
        self.run(&self.injectfile, arguments)
    }

    fn injectfile(&self, path: &str, contents: &[u8]) -> Answer {
        self.injectfile_raw(&injectfile_value(path.as_bytes(), contents))
    }

    fn file_inject_raw(&self, arguments: &str) -> Answer {
        self.run(&self.file_inject, arguments)
    }

    fn file_inject(&self, path: &str, contents: &[u8]) -> Answer {
        let value = serde_json::json!({
            "b64_path": b64(path.as_bytes()),
            "b64_file": b64(contents),
        });
        self.file_inject_raw(&value.to_string())
    }

    /// `path` (absolute, as the guest sees it) on the host.
    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> Vec<u8> {
        fs::read(self.host(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn write(&self, path: &str, contents: &[u8], mode: u32) {
        let host = self.host(path);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(&host, contents).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mkdir(&self, path: &str) {
        fs::create_dir_all(self.host(path)).unwrap();
    }

    fn symlink(&self, path: &str, target: impl AsRef<Path>) {
        let host = self.host(path);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        symlink(target, host).unwrap();
    }

    /// Everything under the temporary directory, the root and `outside`.
    fn snapshot(&self) -> Snapshot {
        snapshot(self.dir.path())
    }
}

/// Each entry under a directory: its type, mode, owner and contents (or
/// link target).
type Snapshot = BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut entries = Snapshot::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = fs::symlink_metadata(&path).unwrap();
        let contents = if metadata.file_type().is_symlink() {
            fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if metadata.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            Vec::new()
        } else if metadata.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new() // a FIFO: reading it would block
        };
        let key = path.strip_prefix(dir).unwrap().to_path_buf();
        entries.insert(
            key,
            (metadata.mode(), metadata.uid(), metadata.gid(), contents),
        );
    }
    entries
}

/// What a command answers.
type Answer = Result<Value, CommandError>;

/// Success: the empty string (the Nova parser answers "0" and "").
fn ok() -> Answer {
    Ok(json!(""))
}

/// Failure with `message` (the Nova parser answers "500" and it).
fn failed(message: &str) -> Answer {
    Err(CommandError::failed(message))
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn vector(id: &str) -> serde_json::Value {
    let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    vectors
        .into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// The vector's input, its file's path and expected contents.
fn vector_case(id: &str) -> (String, String, Vec<u8>) {
    let v = vector(id);
    assert_eq!(v["command"], "injectfile");
    let expected = &v["expected"];
    assert_eq!(expected["returncode"], 0);
    assert_eq!(expected["message"], "");
    let (path, contents) = if let Some(files) = expected["file"].as_object() {
        let (path, text) = files.iter().next().unwrap();
        (path.clone(), text.as_str().unwrap().as_bytes().to_vec())
    } else {
        let (path, hex) = expected["file_hex"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        (path.clone(), from_hex(hex.as_str().unwrap()))
    };
    (v["input"].as_str().unwrap().to_owned(), path, contents)
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs `request`, expects `message` and no change under the temporary
/// directory.
fn refused(guest: &Guest, request: impl FnOnce(&Guest) -> Answer, message: &str) {
    let before = guest.snapshot();
    assert_eq!(request(guest), failed(message));
    assert_eq!(guest.snapshot(), before, "{message}");
}
