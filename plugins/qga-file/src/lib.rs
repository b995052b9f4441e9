//! The `qga-file` plugin: QGA's `guest-file-open`, `-close`, `-read`,
//! `-write`, `-seek` and `-flush`, as qemu-ga 7.2 does them on Linux, on
//! files under the agent's root. It takes no config keys.
//!
//! - Paths: an absolute path names `<root><path>`, a relative one is
//!   relative to the root; each component is opened without following links,
//!   links are followed inside the root only, and a `..` above the root is
//!   refused (`guest_path`).
//! - Open: the modes of `fopen` (`r w a r+ w+ a+`, each also with `b`;
//!   `r` by default), with `O_NOCTTY | O_NONBLOCK` so that a FIFO or a
//!   terminal cannot hang the agent. A new file is created exclusively and
//!   given mode 0666 whatever the umask, as qemu-ga does; a file the open
//!   created is removed again if the open fails after all.
//! - Handles (`handles`): 1000 up, never reused, the counter kept in
//!   `<state_dir>/qga-file/`. They belong to this plugin instance, and its
//!   `on_shutdown` closes them all (a hot swap too).
//! - Read and write go straight to the descriptor, where qemu-ga goes
//!   through stdio: a write is in the file when it is answered, so
//!   `guest-file-flush` has nothing left to do, and the read/write switching
//!   stdio needs does not arise. A read or write that meets `EAGAIN` after
//!   some bytes answers with those bytes (qemu-ga drops them and fails).
//! - Base64 is qemu-ga's (`glib_base64`): the same alphabet check and
//!   texts, GLib's lenient decoding.
//!
//! What it is not: a sandbox for the guest's own processes, or a logger of
//! file contents (a path, a mode and a handle are logged, never the bytes).

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{lseek, unlinkat, UnlinkatFlags, Whence};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::config::no_keys;
use nova_agent_support::qapi::Args;
use nova_agent_support::sync::lock;
use serde_json::{json, Value};

mod handles;

#[cfg(test)]
mod tests;

use handles::Handles;
use nova_agent_support::guest_path::{strerror, GuestRoot, Resolved};

/// `count` when a read gives none (`QGA_READ_COUNT_DEFAULT`).
const DEFAULT_READ: i64 = 4096;
/// The largest read (`GUEST_FILE_READ_COUNT_MAX`): 48 MiB, whose base64
/// fits QEMU's 64 MiB JSON token limit.
const MAX_READ: i64 = 48 << 20;
/// How much one `read` asks for, so a large count on a small file does not
/// allocate the whole count.
const CHUNK: usize = 64 << 10;
/// The mode of a file an open creates (`DEFAULT_NEW_FILE_MODE`).
const NEW_FILE_MODE: u32 = 0o666;

struct Files {
    root: PathBuf,
    handles: Handles,
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::failed(message)
}

/// An I/O error as `strerror` words it.
fn os_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => strerror(Errno::from_raw(errno)),
        None => e.to_string(),
    }
}

/// The open flags of an `fopen` mode.
fn open_flags(mode: &str) -> Option<OFlag> {
    let base = match mode {
        "r" | "rb" => OFlag::O_RDONLY,
        "w" | "wb" => OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
        "a" | "ab" => OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND,
        "r+" | "rb+" | "r+b" => OFlag::O_RDWR,
        "w+" | "wb+" | "w+b" => OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_TRUNC,
        "a+" | "ab+" | "a+b" => OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_APPEND,
        _ => return None,
    };
    Some(base | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
}

impl Files {
    /// qemu-ga's `safe_open_or_create`, under the root.
    fn open(&self, path: &str, mode: &str) -> Result<File, CommandError> {
        let flags =
            open_flags(mode).ok_or_else(|| failed(format!("invalid file open mode '{mode}'")))?;
        let fail = |why: &dyn Display| {
            failed(format!(
                "failed to open file '{path}' (mode: '{mode}'): {why}"
            ))
        };
        if path.is_empty() {
            return Err(fail(&strerror(Errno::ENOENT)));
        }
        let resolved = GuestRoot::open(&self.root)
            .and_then(|root| root.resolve(path, true))
            .map_err(|e| fail(&e))?;
        // A trailing slash names a directory, as open(2) takes it: nothing
        // can be created by such a name.
        let mut flags = flags;
        if path.ends_with('/') {
            if flags.contains(OFlag::O_CREAT) {
                return Err(fail(&strerror(Errno::EISDIR)));
            }
            flags |= OFlag::O_DIRECTORY;
        }
        // As qemu-ga: create exclusively, so the mode can be set whatever the
        // umask; an existing file (or a link, which O_EXCL never follows) is
        // opened as it is.
        if flags.contains(OFlag::O_CREAT) && !resolved.via_link {
            match resolved.open(flags | OFlag::O_EXCL, Mode::empty()) {
                Ok(fd) => return self.created(File::from(fd), &resolved, path, mode),
                Err(Errno::EEXIST) => {}
                Err(errno) => return Err(fail(&strerror(errno))),
            }
        }
        let fd = resolved
            .open(flags - OFlag::O_CREAT, Mode::empty())
            .map_err(|errno| fail(&strerror(errno)))?;
        Ok(File::from(fd))
    }

    /// A file the open just created gets qemu-ga's mode, or is removed.
    fn created(
        &self,
        file: File,
        resolved: &Resolved,
        path: &str,
        mode: &str,
    ) -> Result<File, CommandError> {
        let Err(errno) = fchmod(&file, Mode::from_bits_truncate(NEW_FILE_MODE)) else {
            return Ok(file);
        };
        if let Some(name) = &resolved.name {
            let _ = unlinkat(&resolved.dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        Err(failed(format!(
            "failed to set permission 0{NEW_FILE_MODE:03o} on new file '{path}' (mode: '{mode}'): {}",
            strerror(errno)
        )))
    }
}

/// `guest-file-open {path, *mode}` → the handle.
struct Open(Arc<Files>);

impl Command for Open {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let path = args.str("path")?;
        let mode = args.opt_str("mode")?.unwrap_or_else(|| "r".to_owned());
        args.finish()?;
        let file = self.0.open(&path, &mode)?;
        let handle = self.0.handles.add(file)?;
        tracing::info!("guest-file-open: {path:?} (mode {mode:?}) is handle {handle}");
        Ok(json!(handle))
    }
}

/// `guest-file-close {handle}`.
struct Close(Arc<Files>);

impl Command for Close {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let handle = args.int("handle")?;
        args.finish()?;
        let file = self.0.handles.remove(handle)?;
        tracing::info!("guest-file-close: handle {handle}");
        // While another request still reads or writes it, the file closes
        // when that one ends; otherwise here, where a failure can be told.
        if let Some(file) = Arc::into_inner(file) {
            let file = file.into_inner().unwrap_or_else(|e| e.into_inner());
            nix::unistd::close(file)
                .map_err(|errno| failed(format!("failed to close handle: {}", strerror(errno))))?;
        }
        Ok(json!({}))
    }
}

/// `guest-file-read {handle, *count}` → `{count, buf-b64, eof}`.
struct ReadFile(Arc<Files>);

impl Command for ReadFile {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let handle = args.int("handle")?;
        let count = args.opt_int("count")?;
        args.finish()?;
        let file = self.0.handles.get(handle)?;
        let count = match count.unwrap_or(DEFAULT_READ) {
            count @ 0..=MAX_READ => count as usize,
            bad => {
                return Err(failed(format!(
                    "value '{bad}' is invalid for argument count"
                )))
            }
        };
        let (bytes, eof) = read_up_to(&lock(&file), count)
            .map_err(|e| failed(format!("failed to read file: {}", os_text(&e))))?;
        Ok(json!({
            "count": bytes.len(),
            "buf-b64": nova_agent_support::glib_base64::encode(&bytes),
            "eof": eof,
        }))
    }
}

/// Up to `count` bytes, and whether the end of the file was met.
fn read_up_to(mut file: &File, count: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0; count.min(CHUNK)];
    while bytes.len() < count {
        let want = (count - bytes.len()).min(CHUNK);
        match file.read(&mut chunk[..want]) {
            Ok(0) => return Ok((bytes, true)),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !bytes.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok((bytes, false))
}

/// `guest-file-write {handle, buf-b64, *count}` → `{count, eof}`.
struct WriteFile(Arc<Files>);

impl Command for WriteFile {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let handle = args.int("handle")?;
        let text = args.str("buf-b64")?;
        let count = args.opt_int("count")?;
        args.finish()?;
        let file = self.0.handles.get(handle)?;
        let bytes = nova_agent_support::glib_base64::decode(&text).map_err(failed)?;
        let count = match count {
            None => bytes.len(),
            Some(count) if usize::try_from(count).is_ok_and(|c| c <= bytes.len()) => count as usize,
            Some(bad) => {
                return Err(failed(format!(
                    "value '{bad}' is invalid for argument count"
                )))
            }
        };
        let written = write_up_to(&lock(&file), &bytes[..count])
            .map_err(|e| failed(format!("failed to write to file: {}", os_text(&e))))?;
        Ok(json!({"count": written, "eof": false}))
    }
}

/// Writes `bytes`, or as many as a non-blocking file takes; how many.
fn write_up_to(mut file: &File, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// `guest-file-seek {handle, offset, whence}` → `{position, eof}`.
struct Seek(Arc<Files>);

impl Command for Seek {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let handle = args.int("handle")?;
        let offset = args.int("offset")?;
        let code = whence_code(&mut args)?;
        args.finish()?;
        let file = self.0.handles.get(handle)?;
        let whence = match code {
            0 => Whence::SeekSet,
            1 => Whence::SeekCur,
            2 => Whence::SeekEnd,
            _ => return Err(failed(format!("invalid whence code {code}"))),
        };
        let position = lseek(&*lock(&file), offset, whence)
            .map_err(|errno| failed(format!("failed to seek file: {}", strerror(errno))))?;
        Ok(json!({"position": position, "eof": false}))
    }
}

/// `whence`, QAPI's alternate of an integer and the names `set`, `cur`,
/// `end` (0, 1, 2), checked as QEMU's visitor checks it.
fn whence_code(args: &mut Args) -> Result<i64, CommandError> {
    match args.opt_raw("whence")? {
        None => Err(CommandError::bad_arguments("Parameter 'whence' is missing")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| args.type_error("whence", "integer")),
        Some(Value::String(name)) => match name.as_str() {
            "set" => Ok(0),
            "cur" => Ok(1),
            "end" => Ok(2),
            _ => Err(CommandError::bad_arguments(format!(
                "Parameter 'whence' does not accept value '{name}'"
            ))),
        },
        Some(_) => Err(args.type_error("whence", "GuestFileWhence")),
    }
}

/// `guest-file-flush {handle}`: writes go straight to the file, so there is
/// no buffer to flush; the handle must exist.
struct Flush(Arc<Files>);

impl Command for Flush {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let handle = args.int("handle")?;
        args.finish()?;
        self.0.handles.get(handle)?;
        Ok(json!({}))
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("qga-file", &config)?;
    let files = Arc::new(Files {
        root: host.root(),
        handles: Handles::new(host.state_dir().join("qga-file")),
    });
    let retired = Arc::clone(&files);
    Ok(Provides::new()
        .command("guest-file-open", Open(Arc::clone(&files)))
        .command("guest-file-close", Close(Arc::clone(&files)))
        .command("guest-file-read", ReadFile(Arc::clone(&files)))
        .command("guest-file-write", WriteFile(Arc::clone(&files)))
        .command("guest-file-seek", Seek(Arc::clone(&files)))
        .command("guest-file-flush", Flush(files))
        .on_shutdown(move || retired.handles.close_all()))
}

export_plugin! {
    name: "qga-file",
    description: "QGA guest-file-*: open, read, write, seek and close files under the agent's root, by handle",
    provides: {
        commands: [
            "guest-file-open",
            "guest-file-close",
            "guest-file-read",
            "guest-file-write",
            "guest-file-seek",
            "guest-file-flush",
        ],
    },
    init: init,
}
