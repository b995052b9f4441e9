//! Benchmark (not a test): the `guest-ping` round trip of nova-agent's QGA
//! side (virtio-serial exchange in unix-listen mode, `qga` parser,
//! `qga-core`) against the real qemu-ga's, through the same client loop, in
//! interleaved rounds.
//!
//! `taskset -c 0 cargo bench -p nova-agent-tests --bench qga_ping [-- --rounds R --pings N]`
//! Target (issue 14): ours ≤ 0.6 × qemu-ga's median, and a p99 no worse.
//! Results go to stdout; docs/performance.md records them with the machine.

use std::process::{Command, Stdio};
use std::time::Duration;

use nova_agent_tests::agent_bin;
use nova_agent_tests::qga::{qga_sandbox, qga_socket, wait_until_listening, Peer, QemuGa};

mod common;
use common::{cores, cpu_model, micros, option, rss_kb, stop, LineClient};

const WARMUP: usize = 2_000;
const PING: &[u8] = b"{\"execute\":\"guest-ping\"}";
const PONG: &[u8] = b"{\"return\": {}}\n";

struct Subject {
    label: String,
    connection: LineClient,
    pid: u32,
    samples: Vec<Duration>,
}

fn main() {
    nova_agent_tests::build_without_fixtures();
    let rounds = option("--rounds", 10);
    let pings = option("--pings", 2_000);
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    println!(
        "machine: {online} cores online, {} usable by this process, {}",
        cores(),
        cpu_model()
    );
    println!(
        "method: one connection per agent, `{}` and the reply line timed from the write to the \
         `\\n`;\n        {WARMUP} warm-up pings each, then {rounds} rounds of {pings} pings, \
         the agents taking turns\n",
        String::from_utf8_lossy(PING).trim_end()
    );

    let sandbox = qga_sandbox(&[], "");
    let mut agent = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&sandbox.config)
        .env_remove("RUST_LOG")
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nova-agent");
    let socket = qga_socket(&sandbox);
    wait_until_listening(&socket, "nova-agent");
    let mut subjects = vec![Subject {
        label: "nova-agent (virtio-serial unix-listen, qga, qga-core), [log] level = \"info\""
            .to_owned(),
        connection: LineClient::open(&socket, PING, Some(PONG)),
        pid: agent.id(),
        samples: Vec::new(),
    }];
    let theirs = QemuGa::start_quiet();
    match &theirs {
        Some(qga) => subjects.push(Subject {
            label: format!("qemu-ga {} -m unix-listen", QemuGa::version()),
            connection: LineClient::open(qga.socket(), PING, Some(PONG)),
            pid: qga.pid(),
            samples: Vec::new(),
        }),
        None => println!("qemu-ga: not installed; no comparison\n"),
    }

    for subject in &mut subjects {
        subject.connection.round_trips(WARMUP);
    }
    for _ in 0..rounds {
        for subject in &mut subjects {
            let samples = subject.connection.round_trips(pings);
            subject.samples.extend(samples);
        }
    }
    let mut figures = Vec::new();
    for subject in &mut subjects {
        subject.samples.sort();
        let f = Figures::of(&subject.samples);
        println!(
            "{}:\n    median {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs; RSS {} kB",
            subject.label,
            micros(f.median),
            micros(f.p99),
            micros(f.p999),
            micros(f.max),
            rss_kb(subject.pid)
        );
        figures.push(f);
    }
    if let [ours, theirs] = figures[..] {
        let median = ours.median.as_secs_f64() / theirs.median.as_secs_f64();
        let p99 = ours.p99.as_secs_f64() / theirs.p99.as_secs_f64();
        println!("\nratio nova-agent / qemu-ga: median {median:.2}, p99 {p99:.2}");
        println!(
            "target (median ≤ 0.60, p99 ≤ 1.00): {}",
            if median <= 0.6 && p99 <= 1.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    drop(subjects);
    drop(theirs);
    stop(&mut agent);
}

#[derive(Clone, Copy)]
struct Figures {
    median: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

impl Figures {
    /// From sorted samples.
    fn of(sorted: &[Duration]) -> Figures {
        let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
        Figures {
            median: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}
