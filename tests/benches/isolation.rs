//! Benchmark (not a test): what process isolation costs. The crash
//! fixture's `ok`, served in-process and from an isolated plugin's child
//! process, through the same client loop in interleaved rounds; then the
//! memory of both agents and of the child.
//!
//! `cargo bench -p nova-agent-tests --bench isolation [-- --requests N]`
//! Results go to stdout; docs/performance.md records them with the machine.

mod common;

use common::{
    cores, cpu_model, median, micros, option, release_fixture, report, rollup_kb, rss_anon_kb,
    rss_kb, spawn_agent, stop, wait_for_socket, LineClient,
};
use nova_agent_tests::procs::children;
use nova_agent_tests::Sandbox;

const WARMUP: usize = 2_000;
const ROUNDS: usize = 10;
const ANSWER: &[u8] = b"{\"message\": \"fine\", \"returncode\": \"0\"}\n";

fn main() {
    nova_agent_tests::build_without_fixtures();
    let requests: usize = option("--requests", 40_000);
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "method: `ok` of the crash fixture (plus core, json, unix-socket), one client connection \
         per agent,\n        {requests} sequential requests each in {ROUNDS} interleaved rounds \
         after {WARMUP} warm-up requests;\n        [log] level = \"info\" (the default), stderr \
         to /dev/null\n"
    );
    let fixtures = tempfile::tempdir().unwrap();
    let crash = release_fixture(fixtures.path(), "crash");

    let mut agents = Vec::new();
    for isolation in ["", "[isolation]\nprocess = [\"crash-fixture\"]\n"] {
        let sandbox = Sandbox::with_builtins();
        sandbox.add_plugin(&crash);
        sandbox.write_config(isolation);
        let agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        agents.push((sandbox, agent));
    }
    let mut clients: Vec<LineClient> = agents
        .iter()
        .map(|(sandbox, _)| LineClient::open(&sandbox.socket, br#"{"name": "ok"}"#, Some(ANSWER)))
        .collect();
    for client in &mut clients {
        client.round_trips(WARMUP);
    }
    let mut samples = vec![Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (client, samples) in clients.iter_mut().zip(&mut samples) {
            samples.extend(client.round_trips(requests / ROUNDS));
        }
    }
    drop(clients);
    report("`ok` in-process", &samples[0]);
    report("`ok` isolated ([isolation] process)", &samples[1]);
    let added = micros(median(&samples[1])) - micros(median(&samples[0]));
    println!("isolation adds {added:.1} µs to the median round trip (target: at most 50 µs)\n");

    for ((_, agent), label) in agents.iter().zip(["in-process", "isolated"]) {
        println!(
            "agent, crash fixture {label}: VmRSS {} kB, RssAnon {} kB, Pss {} kB",
            rss_kb(agent.id()),
            rss_anon_kb(agent.id()),
            rollup_kb(agent.id(), "Pss:")
        );
    }
    for child in children(agents[1].1.id() as i32)
        .iter()
        .map(|p| p.pid as u32)
    {
        println!(
            "its plugin-host child (pid {child}): VmRSS {} kB, RssAnon {} kB, Pss {} kB, \
             Private_Dirty {} kB",
            rss_kb(child),
            rss_anon_kb(child),
            rollup_kb(child, "Pss:"),
            rollup_kb(child, "Private_Dirty:")
        );
    }
    for (_, mut agent) in agents {
        stop(&mut agent);
    }
}
