//! Starting the program the way qemu-ga's `g_spawn_async_with_pipes` (with
//! `G_SPAWN_SEARCH_PATH | G_SPAWN_SEARCH_PATH_FROM_ENVP`) starts it, so
//! that the same request runs the same file and fails with the same words.
//!
//! - A `path` with a slash is run as it is (relative to the agent's working
//!   directory); any other is looked up in the `PATH` of the request's `env`
//!   if it sets one, else in the agent's `PATH`, else in `/bin:/usr/bin:.`.
//!   An empty element of `PATH` is the working directory. Directories that
//!   do not hold it are skipped; if one held it without execute permission
//!   and none ran, the error is "Permission denied".
//! - A file the kernel cannot execute (no `#!`, `ENOEXEC`) runs through
//!   `/bin/sh`.
//! - `argv[0]` is `path` as given. With `env`, the program gets exactly that
//!   environment (an entry without `=` sets nothing; of two entries for one
//!   name the first counts, as `getenv` sees it); without, the agent's.
//! - stdin is the input pipe or `/dev/null`; stdout and stderr are pipes
//!   when the output is captured, `/dev/null` otherwise. SIGPIPE is back to
//!   its default in the child, as qemu-ga's child setup does.
//!
//! The program is not confined to the agent's root: the host asked for it,
//! as qemu-ga runs it.

use std::collections::HashSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::libc;

/// What to start.
pub(crate) struct Request {
    pub(crate) path: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Option<Vec<String>>,
    /// stdin is a pipe (the request had `input-data`).
    pub(crate) stdin: bool,
    /// stdout and stderr are pipes (`capture-output`).
    pub(crate) capture: bool,
}

/// Starts the program, or says why not in GLib's words:
/// `Failed to execute child process “/x” (No such file or directory)`.
pub(crate) fn spawn(request: &Request) -> Result<Child, String> {
    let fail = |errno: i32| {
        format!(
            "Failed to execute child process \u{201c}{}\u{201d} ({})",
            request.path,
            strerror(errno)
        )
    };
    let file = request.path.as_str();
    if file.is_empty() {
        return Err(fail(libc::ENOENT));
    }
    if file.contains('/') {
        return start(Path::new(file), request).map_err(|e| fail(errno(&e)));
    }
    let mut denied = false;
    let mut last = libc::ENOENT;
    for dir in search_path(request).split(':') {
        // "./name", not "name": std would search PATH for a bare name.
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(file);
        match start(&candidate, request) {
            Ok(child) => return Ok(child),
            Err(e) => match errno(&e) {
                libc::EACCES => {
                    denied = true;
                    last = libc::EACCES;
                }
                code @ (libc::ENOENT
                | libc::ENOTDIR
                | libc::ESTALE
                | libc::ENODEV
                | libc::ETIMEDOUT) => last = code,
                // It is there, and failed to run: no point looking further.
                code => return Err(fail(code)),
            },
        }
    }
    Err(fail(if denied { libc::EACCES } else { last }))
}

/// Where a name without a slash is looked for.
fn search_path(request: &Request) -> String {
    let from_env = request.env.as_ref().and_then(|env| {
        env.iter()
            .find_map(|entry| entry.strip_prefix("PATH=").map(str::to_owned))
    });
    from_env
        .or_else(|| std::env::var_os("PATH").map(|p| p.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "/bin:/usr/bin:.".to_owned())
}

/// Runs `program` itself, then through `/bin/sh` if the kernel cannot.
fn start(program: &Path, request: &Request) -> io::Result<Child> {
    match command(program, &request.path, &[], request).spawn() {
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let script = [program.to_path_buf()];
            command(Path::new("/bin/sh"), "/bin/sh", &script, request).spawn()
        }
        other => other,
    }
}

fn command(program: &Path, arg0: &str, before: &[PathBuf], request: &Request) -> Command {
    let mut command = Command::new(program);
    command.arg0(arg0).args(before).args(&request.args);
    if let Some(env) = &request.env {
        command.env_clear();
        let mut seen = HashSet::new();
        for (name, value) in env.iter().filter_map(|entry| entry.split_once('=')) {
            if seen.insert(name) {
                command.env(name, value);
            }
        }
    }
    let pipe_if = |pipe: bool| if pipe { Stdio::piped() } else { Stdio::null() };
    command
        .stdin(pipe_if(request.stdin))
        .stdout(pipe_if(request.capture))
        .stderr(pipe_if(request.capture));
    command
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The C library's text for `errno`.
pub(crate) fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    text.strip_suffix(&format!(" (os error {errno})"))
        .map_or(text.clone(), str::to_owned)
}
