//! Hot swap: how long from `rename(2)` of a new build over a plugin file to
//! the new code answering, and what each swap costs in memory.
//!
//! `cargo bench -p nova-agent-tests --bench hot_swap [-- --swaps N]`
//!
//! The swap fixture's two builds are compiled in release and moved out of
//! target/release (where the README's demo would load them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    cores, cpu_model, median, option, release_fixture, rss_anon_kb, rss_kb, stop, wait_for_socket,
};
use nova_agent_tests::{agent_bin, plugin, Sandbox};

const SWAP_FILE: &str = "libswap.so";

fn main() {
    nova_agent_tests::build_without_fixtures();
    let swaps: usize = option("--swaps", 100);
    println!("machine: {} cores, {}", cores(), cpu_model());
    let fixtures = tempfile::tempdir().unwrap();
    let builds = [
        release_fixture(fixtures.path(), "swap-v1"),
        release_fixture(fixtures.path(), "swap-v2"),
    ];

    let sandbox = Sandbox::empty();
    sandbox.add_plugin(&plugin("json"));
    sandbox.add_plugin(&plugin("unix-socket"));
    sandbox.add_plugin(&plugin("update"));
    sandbox.install_as(&builds[0], SWAP_FILE);
    sandbox.write_config("");
    let log = sandbox.path().join("agent.log");
    let mut agent = spawn_agent(&sandbox, &log);
    wait_for_socket(&sandbox.socket);
    let mut connection = Connection::open(&sandbox.socket);
    assert_eq!(connection.version(), "swap-v1");

    println!(
        "method: the swap fixture (release, {} kB) is installed the dpkg way ({SWAP_FILE}.dpkg-new, then\n        \
         rename over {SWAP_FILE}), alternating builds v1 and v2, {swaps} times; one client asks `version`\n        \
         back to back on one connection; each sample runs from just before the rename to the first\n        \
         answer from the new build (inotify, {} ms debounce, copy, dlopen, init, swap included)\n",
        std::fs::metadata(&builds[0]).unwrap().len() / 1024,
        20
    );
    let before = Memory::of(agent.id());
    let mut samples = Vec::with_capacity(swaps);
    for swap in 1..=swaps {
        let build = swap % 2;
        let tag = format!("swap-v{}", build + 1);
        let started = Instant::now();
        sandbox.install_as(&builds[build], SWAP_FILE);
        while connection.version() != tag {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "swap {swap} never answered; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        samples.push(started.elapsed());
        // Lets the old generation retire before the next sample.
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = Memory::of(agent.id());
    report_latency(&samples);
    let fixture_mapped = superseded_bytes(&sandbox, "swap-fixture") / swaps as u64;
    println!(
        "memory per swap of the fixture: RSS {:+.1} kB, of it anonymous {:+.1} kB; {:.1} kB of address space \
         mapped ({} swaps: RSS {} -> {} kB)",
        after.delta_rss(&before) / swaps as f64,
        after.delta_anon(&before) / swaps as f64,
        fixture_mapped as f64 / 1024.0,
        swaps,
        before.rss,
        after.rss,
    );

    // The largest real plugin, replaced by copies of itself, until the agent
    // warns (default [reload] warn_superseded_mib = 64).
    let update = plugin("update");
    let update_name = update.file_name().unwrap().to_str().unwrap().to_owned();
    let warning = "replaced plugin generations keep";
    let before = Memory::of(agent.id());
    let mut update_swaps = 0;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(warning)
    {
        update_swaps += 1;
        assert!(update_swaps <= 100, "no warning after 100 swaps of update");
        let generation = update_swaps + 1;
        sandbox.install_as(&update, &update_name);
        let started = Instant::now();
        while generation_of(&sandbox, "update") != generation {
            assert!(started.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let after = Memory::of(agent.id());
    let update_mapped = superseded_bytes(&sandbox, "update") / update_swaps as u64;
    println!(
        "memory per swap of `update` ({} kB file): RSS {:+.1} kB, of it anonymous {:+.1} kB; {:.1} kB mapped",
        std::fs::metadata(&update).unwrap().len() / 1024,
        after.delta_rss(&before) / update_swaps as f64,
        after.delta_anon(&before) / update_swaps as f64,
        update_mapped as f64 / 1024.0
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = log_text.lines().find(|l| l.contains(warning)).unwrap_or("");
    println!(
        "warning after {} fixture swaps and {update_swaps} `update` swaps:\n    {}",
        swaps,
        line.split_once("WARN").map_or(line, |(_, w)| w.trim())
    );
    println!(
        "with the default 64 MiB: after {} swaps of the fixture alone, or {} of `update` alone",
        (64u64 << 20).div_ceil(fixture_mapped.max(1)),
        (64u64 << 20).div_ceil(update_mapped.max(1))
    );
    stop(&mut agent);
}

/// Builds the swap fixture's `build` in release and moves it to `dir`.
fn spawn_agent(sandbox: &Sandbox, log: &Path) -> Child {
    Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&sandbox.config)
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .expect("starting nova-agent")
}

fn report_latency(samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "rename -> new build answering: median {:.1} ms, p90 {:.1} ms, max {:.1} ms, min {:.1} ms",
        ms(median(samples)),
        ms(at(0.9)),
        ms(at(1.0)),
        ms(at(0.0))
    );
}

fn superseded_bytes(sandbox: &Sandbox, name: &str) -> u64 {
    sandbox.plugin_entry(name)["superseded"]["mapped_bytes"]
        .as_u64()
        .unwrap_or(0)
}

fn generation_of(sandbox: &Sandbox, name: &str) -> usize {
    sandbox.plugin_entry(name)["generation"]
        .as_u64()
        .unwrap_or(0) as usize
}

struct Memory {
    rss: u64,
    anon: u64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        Memory {
            rss: rss_kb(pid),
            anon: rss_anon_kb(pid),
        }
    }

    fn delta_rss(&self, before: &Memory) -> f64 {
        self.rss as f64 - before.rss as f64
    }

    fn delta_anon(&self, before: &Memory) -> f64 {
        self.anon as f64 - before.anon as f64
    }
}

struct Connection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    fn open(socket: &Path) -> Connection {
        let stream = UnixStream::connect(socket).expect("connecting");
        Connection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// The message of a `version` answer.
    fn version(&mut self) -> String {
        self.writer
            .write_all(b"{\"name\": \"version\"}\n")
            .expect("writing");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("reading");
        let answer: serde_json::Value = serde_json::from_str(&line).expect("a JSON answer");
        answer["message"].as_str().unwrap_or_default().to_owned()
    }
}
