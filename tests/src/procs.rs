//! What /proc says about processes: state, parent, command line, children
//! (for tests and benchmarks that watch the agent's child processes).

/// A process as /proc/<pid>/stat has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
}

/// `None` once the process is gone (reaped).
pub fn stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state })
}

/// The NUL-separated arguments; empty once the process is gone.
pub fn cmdline(pid: i32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// The processes whose parent is `parent`, zombies included.
pub fn children(parent: i32) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter_map(stat)
                .filter(|p| p.ppid == parent)
                .collect()
        })
        .unwrap_or_default()
}
