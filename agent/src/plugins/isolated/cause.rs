//! Why a plugin's child process ended, in one line for the host and the
//! log: "plugin crash-fixture died: signal SIGSEGV", "... ran out of memory
//! (limit 256 MiB)", "... timed out after 5 s".

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

/// What the Rust runtime prints before it aborts on a failed allocation.
const OUT_OF_MEMORY: &str = "memory allocation of ";
/// What the Rust runtime prints when a thread runs past its stack guard.
const STACK_OVERFLOW: &str = "has overflowed its stack";

/// Whether a line of a child's output says why it is about to end.
pub(crate) fn explains_an_end(line: &str) -> bool {
    line.contains(OUT_OF_MEMORY)
        || line.contains(STACK_OVERFLOW)
        || line.contains("fatal runtime error")
}

/// A duration as a person reads it: `5 s`, `0.5 s`, `90 s`.
pub(crate) fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} s", (secs * 1000.0).round() / 1000.0)
    }
}

/// The cause of an end the agent did not ask for, from the exit status and
/// the last lines the child wrote to stderr. `memory_limit` is in bytes.
pub(crate) fn describe(
    plugin: &str,
    status: Option<ExitStatus>,
    stderr_tail: &str,
    memory_limit: u64,
) -> String {
    let Some(status) = status else {
        return format!("plugin {plugin} stopped answering: it closed its connection to the agent");
    };
    if stderr_tail.contains(OUT_OF_MEMORY) {
        return format!(
            "plugin {plugin} ran out of memory (limit {} MiB)",
            memory_limit >> 20
        );
    }
    if let Some(code) = status.code() {
        return format!("plugin {plugin} died: exit status {code}");
    }
    let Some(signal) = status.signal() else {
        return format!("plugin {plugin} died: {status}");
    };
    let name = Signal::try_from(signal).map_or_else(
        |_| format!("signal {signal}"),
        |s| format!("signal {}", s.as_str()),
    );
    if stderr_tail.contains(STACK_OVERFLOW) {
        return format!("plugin {plugin} died: stack overflow ({name})");
    }
    if signal == libc::SIGKILL {
        return format!(
            "plugin {plugin} died: {name}, sent by something other than the agent \
             (the kernel's out-of-memory killer, or an operator)"
        );
    }
    format!("plugin {plugin} died: {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn each_end_reads_as_its_cause() {
        let mib = 256 << 20;
        assert_eq!(
            describe("crash-fixture", signalled(libc::SIGSEGV), "", mib),
            "plugin crash-fixture died: signal SIGSEGV"
        );
        assert_eq!(
            describe("crash-fixture", signalled(libc::SIGABRT), "", mib),
            "plugin crash-fixture died: signal SIGABRT"
        );
        assert_eq!(
            describe("crash-fixture", exited(3), "", mib),
            "plugin crash-fixture died: exit status 3"
        );
        assert_eq!(
            describe(
                "crash-fixture",
                signalled(libc::SIGABRT),
                "memory allocation of 16777216 bytes failed\n",
                mib
            ),
            "plugin crash-fixture ran out of memory (limit 256 MiB)"
        );
        assert_eq!(
            describe(
                "crash-fixture",
                signalled(libc::SIGABRT),
                "\nthread '<unnamed>' has overflowed its stack\nfatal runtime error: stack overflow\n",
                mib
            ),
            "plugin crash-fixture died: stack overflow (signal SIGABRT)"
        );
        assert!(describe("p", signalled(libc::SIGKILL), "", mib)
            .starts_with("plugin p died: signal SIGKILL, sent by something other than the agent"));
        assert_eq!(
            describe("p", None, "", mib),
            "plugin p stopped answering: it closed its connection to the agent"
        );
    }

    #[test]
    fn durations_read_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(5)), "5 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25 s");
    }
}
