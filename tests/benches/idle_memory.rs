//! Benchmark (not a test): the idle agent's memory with every built-in
//! plugin installed, where it goes plugin by plugin, beside qemu-ga's, in
//! the same run (issue 17's method: one unix-socket channel, 100 `version`
//! requests, a `sync`, then VmRSS, Pss and Private_Dirty).
//!
//! `cargo bench -p nova-agent-tests --bench idle_memory`
//! Results go to stdout; docs/performance.md records them with the machine.

mod common;

use std::time::Duration;

use common::{cores, cpu_model, rollup_kb, rss_kb, spawn_agent, stop, wait_for_socket, LineClient};
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
    for every_plugin in [false, true] {
        let sandbox = Sandbox::with_builtins();
        let mut label = "nova-agent, core, json and unix-socket".to_owned();
        if every_plugin {
            let mut count = 0;
            for entry in std::fs::read_dir(nova_agent_tests::artifacts()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("libnova_agent_plugin_") && name.ends_with(".so") {
                    sandbox.add_plugin(&path);
                    count += 1;
                }
            }
            label = format!("nova-agent, every built-in plugin ({count})");
        }
        let mut agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        let pid = agent.id();
        settle(&sandbox.socket, br#"{"name": "version"}"#);
        line(&label, pid);
        if every_plugin {
            breakdown(&sandbox);
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
}

/// 100 requests, then the system quiet.
fn settle(socket: &std::path::Path, request: &[u8]) {
    LineClient::open(socket, request, None).round_trips(100);
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
/// heap and stacks.
fn breakdown(sandbox: &Sandbox) {
    let mut plugins: Vec<(String, u64, u64, u64)> = sandbox
        .plugins_json()
        .iter()
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
}
