//! Benchmark (not a test): the XenStore exchange's latency, from the host's
//! write of a `version` request to the response being readable, and its
//! throughput, against the fake xenstored in this process.
//!
//! `cargo bench -p nova-agent-tests --bench xenstore [-- --requests N]`
//! The host's writes go straight into the fake's store (firing the agent's
//! watch as a client WRITE does), and the clock stops when the response node
//! exists, so neither a tool's start-up nor a polling interval is in the
//! figures. Results go to stdout; docs/performance.md records them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nova_agent_tests::dom0::{request, request_path, response_path, uuid};
use nova_agent_tests::xenstored::FakeXenstored;
use nova_agent_tests::{agent_bin, Sandbox};

mod common;
use common::{cores, cpu_model, micros, option, rss_kb, stop};

const WAIT: Duration = Duration::from_secs(30);
const WARMUP: usize = 200;

fn main() {
    nova_agent_tests::build_without_fixtures();
    let requests: usize = option("--requests", 5_000);
    println!("machine: {} cores, {}", cores(), cpu_model());

    let sandbox = Sandbox::with_xenstore("");
    let xenstored = FakeXenstored::start(sandbox.xenstored_socket()).expect("fake xenstored");
    let mut agent = spawn_agent(&sandbox);
    let version = request("version", "\"agent\"");
    let expected = nova_agent_tests::nova("0", "2.0.0");
    let call = |id: &str| {
        xenstored.write(&request_path(id), version.as_bytes());
        let response = xenstored
            .wait_for(&response_path(id), WAIT)
            .expect("no response within 30 s");
        assert_eq!(response, expected.as_bytes());
    };
    call(&uuid()); // waits out the connection

    for _ in 0..WARMUP {
        call(&uuid());
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_after_warmup = rss_kb(agent.id());
    let ids: Vec<String> = (0..requests).map(|_| uuid()).collect();
    let mut samples = Vec::with_capacity(requests);
    let started = Instant::now();
    for id in &ids {
        let t = Instant::now();
        call(id);
        samples.push(t.elapsed());
    }
    let sequential = started.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "\n`version` over XenStore, {requests} sequential requests after {WARMUP} warm-up, \
         host write → response readable:\n    median {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, \
         max {:.1} µs; back to back {:.0} requests/s",
        micros(at(0.5)),
        micros(at(0.99)),
        micros(at(0.999)),
        micros(*samples.last().unwrap()),
        requests as f64 / sequential.as_secs_f64()
    );

    for batch in [100, 1_000] {
        let ids: Vec<String> = (0..batch).map(|_| uuid()).collect();
        let started = Instant::now();
        for id in &ids {
            xenstored.write(&request_path(id), version.as_bytes());
        }
        for id in &ids {
            xenstored
                .wait_for(&response_path(id), WAIT)
                .expect("a response");
        }
        let took = started.elapsed();
        println!(
            "{batch} requests written at once: all answered in {:.1} ms ({:.0} requests/s)",
            micros(took) / 1000.0,
            batch as f64 / took.as_secs_f64()
        );
    }

    std::thread::sleep(Duration::from_millis(500));
    println!(
        "\nidle RSS, built-in plugins, xenstore and unix-socket channels: {rss_after_warmup} kB \
         after {} requests, {} kB after all of the above",
        WARMUP + 1,
        rss_kb(agent.id())
    );
    stop(&mut agent);
}

fn spawn_agent(sandbox: &Sandbox) -> Child {
    Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&sandbox.config)
        .env("XENSTORED_PATH", sandbox.xenstored_socket())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nova-agent")
}
