//! The runner for system commands: every external program the agent starts
//! goes through it, so that `apply = false` runs nothing, each run is logged
//! with its secrets masked, and no program can hang the agent.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::arg::command_line;
use crate::child::{self, Failure};

pub use crate::arg::Arg;

/// How long a program may run when the runner is given no other timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs external programs, or, with `apply = false`, only logs them.
#[derive(Debug, Clone)]
pub struct Runner {
    apply: bool,
    timeout: Duration,
}

impl Runner {
    /// `apply = false`: nothing runs; each call is logged at info as
    /// `not running (apply = false): <program> <args>`.
    pub fn new(apply: bool) -> Runner {
        Runner {
            apply,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Kill the program (SIGKILL, then reap it) if it runs longer than
    /// `timeout`; the default is [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(self, timeout: Duration) -> Runner {
        Runner { timeout, ..self }
    }

    pub fn apply(&self) -> bool {
        self.apply
    }

    /// Runs `program` (a name looked up on the agent's PATH, or an absolute
    /// path) with `args`: stdin /dev/null, stdout and stderr captured (the
    /// first 64 KiB of each kept, the rest read and dropped), the agent's
    /// environment inherited.
    ///
    /// Logs `running: <program> <args>` at info first, secrets masked. The
    /// output is not logged (it may echo a secret): callers decide.
    pub fn run(&self, program: &str, args: &[Arg]) -> Result<Outcome, RunError> {
        let line = command_line(program, args);
        if !self.apply {
            tracing::info!("not running (apply = false): {line}");
            return Ok(Outcome::Skipped);
        }
        tracing::info!("running: {line}");
        let failed = |failure| RunError {
            program: program.to_owned(),
            line: line.clone(),
            timeout: self.timeout,
            failure,
        };
        // A relative path would depend on the agent's working directory.
        if program.contains('/') && !program.starts_with('/') {
            let why = "a program must be a plain name or an absolute path";
            let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
            return Err(failed(Failure::Start(error)));
        }
        let exit = child::run(program, args, self.timeout).map_err(failed)?;
        if exit.output_left_open {
            tracing::warn!(
                "{line} exited, but a process it started still holds its output open; \
                 not waiting for it"
            );
        }
        Ok(Outcome::Finished(Finished {
            code: exit.status.code(),
            signal: exit.status.signal(),
            stdout: String::from_utf8_lossy(&exit.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&exit.stderr).into_owned(),
        }))
    }

    /// Whether `program` can be found: an absolute path that is an executable
    /// file, or a name found as an executable file in one of the (absolute)
    /// directories of the agent's PATH. Does not consult `apply`.
    pub fn find(&self, program: &str) -> Option<PathBuf> {
        if program.starts_with('/') {
            return is_executable_file(Path::new(program)).then(|| PathBuf::from(program));
        }
        if program.is_empty() || program.contains('/') {
            return None;
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable_file(candidate))
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// What a call to [`Runner::run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing ran: the runner's `apply` is false.
    Skipped,
    Finished(Finished),
}

impl Outcome {
    /// Whether the program exited with status 0; `Skipped` counts as success.
    pub fn succeeded(&self) -> bool {
        match self {
            Outcome::Skipped => true,
            Outcome::Finished(finished) => finished.success(),
        }
    }
}

/// A program that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit status; `None` if a signal killed it.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The first 64 KiB of its stdout, as lossy UTF-8.
    pub stdout: String,
    /// The first 64 KiB of its stderr, as lossy UTF-8.
    pub stderr: String,
}

impl Finished {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A program that could not start, timed out, or whose output or status could
/// not be read. Neither `Display` nor `Debug` shows a secret argument.
#[derive(Debug)]
pub struct RunError {
    program: String,
    /// The command line with its secrets masked.
    line: String,
    timeout: Duration,
    failure: Failure,
}

impl RunError {
    /// The program as the caller named it.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Whether the program was killed for running longer than the timeout.
    pub fn timed_out(&self) -> bool {
        matches!(self.failure, Failure::TimedOut)
    }

    /// Whether the program could not be started because it does not exist.
    pub fn not_found(&self) -> bool {
        matches!(&self.failure, Failure::Start(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Start(e) => write!(f, "cannot run {}: {}", self.program, describe(e)),
            Failure::TimedOut => write!(
                f,
                "{} did not finish within {}; killed",
                self.line,
                show_duration(self.timeout)
            ),
            Failure::Io(doing, e) => write!(f, "{doing} {}: {}", self.line, describe(e)),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Start(e) | Failure::Io(_, e) => Some(e),
            Failure::TimedOut => None,
        }
    }
}

/// `e` without the " (os error 2)" that std appends to a system error.
fn describe(e: &std::io::Error) -> String {
    let message = e.to_string();
    match e.raw_os_error() {
        Some(code) => message
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(message.clone(), str::to_owned),
        None => message,
    }
}

/// "120 s" for whole seconds, "200 ms" otherwise.
fn show_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}
