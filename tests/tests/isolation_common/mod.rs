//! What the isolation tests share: the crash fixture's sandbox, the
//! agent's plugin-host children as /proc shows them, requests left in
//! flight, and the live `isolation` entry.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nova_agent_tests::procs::{children, cmdline};
use nova_agent_tests::{nova, test_plugin, Agent, Sandbox};

pub const WAIT: Duration = Duration::from_secs(30);
/// How long a crashed child may stay unreaped.
pub const REAPED_WITHIN: Duration = Duration::from_secs(5);

/// The isolation most tests use: short timeout, small memory, no backoff.
pub const ISOLATED: &str = "\n[isolation]\nprocess = [\"crash-fixture\"]\ntimeout = 2\n\
                        memory_mib = 64\nrestart_delay = 0\n";

pub fn crash_sandbox(isolation: &str) -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("crash"));
    sandbox.write_config(isolation);
    sandbox
}

pub fn request(name: &str, value: &str) -> String {
    format!("{{\"name\": \"{name}\", \"value\": {value}}}")
}

pub fn failed(cause: &str) -> String {
    nova("500", cause)
}

pub fn is_plugin_host(pid: i32) -> bool {
    cmdline(pid).starts_with(b"nova-agent\0plugin-host\0")
}

/// The agent's live plugin-host children (zombies excluded) and its zombie
/// children.
pub fn plugin_hosts_and_zombies(agent: &Agent) -> (Vec<i32>, Vec<i32>) {
    let all = children(agent.pid());
    let zombies = all.iter().filter(|p| p.state == 'Z').map(|p| p.pid);
    let hosts = all
        .iter()
        .filter(|p| p.state != 'Z' && is_plugin_host(p.pid));
    (hosts.map(|p| p.pid).collect(), zombies.collect())
}

/// Polls `done` until it holds; panics with `what` and the log after
/// `within`.
pub fn wait_until(agent: &Agent, within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} (after {within:?}); log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// No zombie child of the agent, and at most `hosts` plugin-host children.
pub fn assert_clean(agent: &Agent, hosts: usize) {
    let mut seen = (Vec::new(), Vec::new());
    wait_until(
        agent,
        REAPED_WITHIN,
        "zombies or extra plugin hosts",
        || {
            seen = plugin_hosts_and_zombies(agent);
            seen.0.len() <= hosts && seen.1.is_empty()
        },
    );
}

/// The `isolation` object of `name`'s live `plugins list --json` entry.
pub fn isolation(sandbox: &Sandbox, name: &str) -> serde_json::Value {
    let entry = sandbox.plugin_entry(name);
    assert_eq!(entry["isolation"]["mode"], "process", "{entry:#}");
    entry["isolation"].clone()
}

/// A request sent on a connection of its own, its answer read later.
pub struct InFlight(BufReader<UnixStream>);

impl InFlight {
    pub fn send(agent: &Agent, line: &str) -> InFlight {
        use std::io::Write;
        let mut stream = UnixStream::connect(&agent.socket).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        InFlight(BufReader::new(stream))
    }

    pub fn answered(&mut self) -> bool {
        self.0.get_ref().set_nonblocking(true).unwrap();
        // Buffers what arrived, if anything, for `answer`.
        let filled = self.0.fill_buf().map(|b| !b.is_empty());
        self.0.get_ref().set_nonblocking(false).unwrap();
        !matches!(filled, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    pub fn answer(mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("reading the answer");
        line.trim_end_matches('\n').to_owned()
    }
}

/// The pid `ok "pid"` answers: the process that served it.
pub fn served_by(agent: &Agent) -> i32 {
    let answer: serde_json::Value =
        serde_json::from_str(&agent.request(&request("ok", "\"pid\""))).unwrap();
    assert_eq!(answer["returncode"], "0", "{answer}; log:\n{}", agent.log());
    answer["message"].as_str().unwrap().parse().unwrap()
}
