//! Benchmark (not a test): the idle agent's memory with every built-in
//! plugin installed, where it goes plugin by plugin, beside qemu-ga's, in
//! the same run (issue 17's method: one unix-socket channel, 100 `version`
//! requests, a `sync`, then VmRSS, Pss and Private_Dirty). Plugins load at
//! first use: the idle agent holds what its channel and `version` need.
//! Then every plugin loaded (one command of each called, and a qga channel
//! for the plugins that provide none), measured the same way, and the
//! first-call latency of commands whose plugin is not loaded yet.
//!
//! `cargo bench -p nova-agent-tests --bench idle_memory`
//! Results go to stdout; docs/performance.md records them with the machine.

mod common;

use std::time::Duration;

use common::{
    cores, cpu_model, median, micros, rollup_kb, rss_kb, spawn_agent, stop, wait_for_socket,
    LineClient,
};
use nova_agent_tests::qga::{Peer, QemuGa};
use nova_agent_tests::Sandbox;

fn main() {
    nova_agent_tests::build_without_fixtures();
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "method: one unix-socket channel, 100 requests on one connection, sync(2), 200 ms idle,\n        \
         then /proc/<pid>/status VmRSS and /proc/<pid>/smaps_rollup Pss and Private_Dirty (kB)\n"
    );
    println!(
        "{:<44} {:>7} {:>7} {:>13}",
        "", "VmRSS", "Pss", "Private_Dirty"
    );
    {
        let sandbox = Sandbox::with_builtins();
        let mut agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        settle(&sandbox.socket, VERSION);
        line("nova-agent, core, json and unix-socket", agent.id());
        stop(&mut agent);
    }
    let mut first_calls = Vec::new();
    {
        let sandbox = Sandbox::with_builtins();
        let count = install_every_plugin(&sandbox);
        let mut agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        // The first `version` loads core; with the 100 after it, the method's.
        first_calls.push(first_call(&sandbox.socket, "core", VERSION));
        quiet();
        line(
            &format!("nova-agent, every built-in plugin ({count})"),
            agent.id(),
        );
        breakdown(&sandbox);
        first_calls.push(first_call(&sandbox.socket, "qga-core", HOST_NAME));
        stop(&mut agent);
    }
    {
        // The plugins that provide no command load for a channel that names
        // them: a second one, on a socket of the sandbox, serves qga.
        let sandbox = Sandbox::with_builtins();
        let count = install_every_plugin(&sandbox);
        let qga = sandbox.path().join("run/qga.sock");
        sandbox.write_config(&format!(
            "\n[[channel]]\nexchange = \"virtio-serial\"\nparser = \"qga\"\n\n\
             [plugins.virtio-serial]\nmethod = \"unix-listen\"\npath = \"{}\"\n",
            qga.display()
        ));
        let mut agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        for request in ONE_COMMAND_OF_EACH {
            LineClient::open(&sandbox.socket, request.as_bytes(), None).round_trips(1);
        }
        settle(&sandbox.socket, VERSION);
        line(
            &format!("every plugin loaded ({count}, + qga channel)"),
            agent.id(),
        );
        let not_loaded = breakdown(&sandbox);
        if !not_loaded.is_empty() {
            println!(
                "    not loaded (nothing names them): {}",
                not_loaded.join(", ")
            );
        }
        stop(&mut agent);
    }
    if let Some(qemu_ga) = QemuGa::start_quiet() {
        settle(qemu_ga.socket(), br#"{"execute": "guest-ping"}"#);
        line(
            &format!("qemu-ga {}, 100 guest-ping", QemuGa::version()),
            qemu_ga.pid(),
        );
    }
    println!();
    for (plugin, first, later) in first_calls {
        println!(
            "first call (loads {plugin}): {:.1} ms; later calls: median {:.1} µs",
            first.as_secs_f64() * 1e3,
            micros(later)
        );
    }
}

const VERSION: &[u8] = br#"{"name": "version"}"#;
/// qga-core's `guest-get-host-name`, through the Nova JSON parser.
const HOST_NAME: &[u8] = br#"{"name": "guest-get-host-name", "value": {}}"#;

/// A call that loads each plugin providing commands, and changes nothing:
/// read-only commands, or arguments the command refuses (apply is false
/// anyway). The answers do not matter.
const ONE_COMMAND_OF_EACH: &[&str] = &[
    r#"{"name": "version"}"#,
    r#"{"name": "injectfile", "value": 42}"#,
    r#"{"name": "kmsactivate", "value": 42}"#,
    r#"{"name": "resetnetwork", "value": 42}"#,
    r#"{"name": "keyinit", "value": 42}"#,
    r#"{"name": "agentupdate", "value": 42}"#,
    r#"{"name": "guest-get-host-name", "value": {}}"#,
    r#"{"name": "guest-exec-status", "value": 42}"#,
    r#"{"name": "guest-file-close", "value": 42}"#,
    r#"{"name": "guest-fsfreeze-status", "value": {}}"#,
    r#"{"name": "guest-get-vcpus", "value": {}}"#,
    r#"{"name": "guest-ssh-get-authorized-keys", "value": 42}"#,
];

/// Copies every built-in plugin the build made into the sandbox; their
/// number.
fn install_every_plugin(sandbox: &Sandbox) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(nova_agent_tests::artifacts()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("libnova_agent_plugin_") && name.ends_with(".so") {
            sandbox.add_plugin(&path);
            count += 1;
        }
    }
    count
}

/// The first call of a command whose plugin is not loaded (its first use
/// loads it), and the median of the 100 calls after it.
fn first_call(
    socket: &std::path::Path,
    plugin: &'static str,
    request: &[u8],
) -> (&'static str, Duration, Duration) {
    let mut client = LineClient::open(socket, request, None);
    let first = client.round_trips(1)[0];
    let later = median(&client.round_trips(100));
    (plugin, first, later)
}

/// 100 requests, then the system quiet.
fn settle(socket: &std::path::Path, request: &[u8]) {
    LineClient::open(socket, request, None).round_trips(100);
    quiet();
}

fn quiet() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
}

fn line(label: &str, pid: u32) {
    println!(
        "{label:<44} {:>7} {:>7} {:>13}",
        rss_kb(pid),
        rollup_kb(pid, "Pss:"),
        rollup_kb(pid, "Private_Dirty:")
    );
}

/// Each plugin's code and data mappings, as the agent's live
/// `plugins list --json` reports them; the rest is the agent's binary, libc,
/// heap and stacks. Returns the plugins not in memory, which it leaves
/// out.
fn breakdown(sandbox: &Sandbox) -> Vec<String> {
    let list = sandbox.plugins_json();
    let not_loaded: Vec<String> = list
        .iter()
        .filter(|p| p["in_memory"] != true)
        .map(|p| p["name"].as_str().unwrap_or("?").to_owned())
        .collect();
    let mut plugins: Vec<(String, u64, u64, u64)> = list
        .iter()
        .filter(|p| p["in_memory"] == true)
        .map(|p| {
            let kb = |key: &str| p["resident"][key].as_u64().unwrap_or(0) / 1024;
            (
                p["name"].as_str().unwrap_or("?").to_owned(),
                kb("rss_bytes"),
                kb("pss_bytes"),
                kb("private_dirty_bytes"),
            )
        })
        .collect();
    plugins.sort_by_key(|p| std::cmp::Reverse(p.1));
    let mut total = (0, 0, 0);
    for (name, rss, pss, dirty) in &plugins {
        println!(
            "    {:<40} {rss:>7} {pss:>7} {dirty:>13}",
            format!("plugin {name}")
        );
        total = (total.0 + rss, total.1 + pss, total.2 + dirty);
    }
    println!(
        "    {:<40} {:>7} {:>7} {:>13}",
        "all plugins' mappings", total.0, total.1, total.2
    );
    not_loaded
}
