//! Benchmark (not a test): the unix-socket round trip of `version`, side by
//! side with qemu-guest-agent's `guest-ping` through the same client loop;
//! the time from `nova-agent run` to the first answered request (idle memory:
//! the `idle_memory` bench).
//!
//! `cargo bench -p nova-agent-tests --bench roundtrip [-- --requests N]`
//! Results go to stdout; docs/performance.md records them with the machine.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nova_agent_tests::qga::{Peer, QemuGa};
use nova_agent_tests::Sandbox;

mod common;
use common::{
    cores, cpu_model, median, micros, option, report, rss_kb, spawn_agent, stop, wait_for_socket,
    LineClient,
};

const WARMUP: usize = 2_000;

/// Rounds per subject; subjects take turns, so drift on a shared VM hits all
/// of them alike.
const ROUNDS: usize = 10;

struct Subject {
    label: String,
    socket: std::path::PathBuf,
    request: &'static [u8],
    pid: u32,
    samples: Vec<Duration>,
}

fn main() {
    nova_agent_tests::build_without_fixtures();
    let requests: usize = option("--requests", 40_000);
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "method: one client connection per server, {requests} sequential requests each, in {ROUNDS} \
         interleaved rounds\n        after {WARMUP} warm-up requests; each round trip timed from \
         the write to the end of the response line\n"
    );

    let mut keep_alive = Vec::new();
    let mut subjects = Vec::new();
    for (label, level) in [
        (
            "nova-agent `version`, [log] level = \"info\" (the default)",
            "info",
        ),
        ("nova-agent `version`, [log] level = \"warn\"", "warn"),
    ] {
        let sandbox = Sandbox::with_builtins();
        sandbox.write_config(&format!("[log]\nlevel = \"{level}\"\n"));
        let agent = spawn_agent(&sandbox);
        wait_for_socket(&sandbox.socket);
        subjects.push(Subject {
            label: label.to_owned(),
            socket: sandbox.socket.clone(),
            request: br#"{"name": "version", "value": "agent"}"#,
            pid: agent.id(),
            samples: Vec::new(),
        });
        keep_alive.push((agent, sandbox));
    }
    // Killed when dropped, at the end of main.
    let qemu_ga = QemuGa::start_quiet();
    if let Some(qga) = &qemu_ga {
        subjects.push(Subject {
            label: format!("qemu-ga {} `guest-ping`", QemuGa::version()),
            socket: qga.socket().to_path_buf(),
            request: br#"{"execute": "guest-ping"}"#,
            pid: qga.pid(),
            samples: Vec::new(),
        });
    }

    let mut connections: Vec<_> = subjects
        .iter()
        .map(|s| LineClient::open(&s.socket, s.request, None))
        .collect();
    for connection in &mut connections {
        connection.round_trips(WARMUP);
    }
    for _ in 0..ROUNDS {
        for (subject, connection) in subjects.iter_mut().zip(&mut connections) {
            let samples = connection.round_trips(requests / ROUNDS);
            subject.samples.extend(samples);
        }
    }
    drop(connections);
    for subject in &subjects {
        report(&subject.label, &subject.samples);
        println!("    RSS after the run: {} kB", rss_kb(subject.pid));
    }
    if let (Some(nova), Some(qga)) = (subjects.first(), subjects.get(2)) {
        println!(
            "\nratio of medians, nova-agent (default) / qemu-ga: {:.2}",
            median(&nova.samples).as_secs_f64() / median(&qga.samples).as_secs_f64()
        );
    }
    for (mut child, _) in keep_alive {
        stop(&mut child);
    }

    start_up_time();
}

/// From spawning `nova-agent run` to the first `version` answer, 20 times.
fn start_up_time() {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let sandbox = Sandbox::with_builtins();
        let started = Instant::now();
        let mut agent = spawn_agent(&sandbox);
        loop {
            if let Ok(stream) = UnixStream::connect(&sandbox.socket) {
                let mut writer = stream.try_clone().unwrap();
                writer.write_all(b"{\"name\": \"version\"}\n").unwrap();
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.ends_with('\n') {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
        stop(&mut agent);
    }
    samples.sort();
    println!(
        "\nstart-up, from spawning `nova-agent run` (3 built-in plugins) to the first answered request, 20 runs:\n    median {:.1} ms, max {:.1} ms",
        micros(samples[samples.len() / 2]) / 1000.0,
        micros(*samples.last().unwrap()) / 1000.0
    );
}
