#![allow(dead_code)] // each benchmark uses a different part
//! What the benchmarks share: statistics, the machine's description,
//! handling of the processes they measure, and a line client that times
//! round trips.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The number after `name` on the command line (`--requests 500`), else
/// `default`.
pub fn option(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

pub fn report(label: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    let total: Duration = sorted.iter().sum();
    println!(
        "{label}:\n    median {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs; {:.0} requests/s on one connection",
        micros(at(0.5)),
        micros(at(0.99)),
        micros(at(0.999)),
        sorted.len() as f64 / total.as_secs_f64()
    );
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `RssAnon` of /proc/<pid>/status: the process's own memory, without the
/// file-backed pages of its code.
pub fn rss_anon_kb(pid: u32) -> u64 {
    status_kb(pid, "RssAnon:")
}

/// A field of /proc/<pid>/smaps_rollup (`Pss:`, `Private_Dirty:`), in kB.
pub fn rollup_kb(pid: u32, key: &str) -> u64 {
    field_kb(&format!("/proc/{pid}/smaps_rollup"), key)
}

pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn status_kb(pid: u32, key: &str) -> u64 {
    field_kb(&format!("/proc/{pid}/status"), key)
}

fn field_kb(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Builds the test fixture `nova-agent-test-plugin-<suffix>` in release and
/// moves its `.so` out of target/release (where the README's demo would
/// load it) into `dir`.
pub fn release_fixture(dir: &Path, suffix: &str) -> PathBuf {
    let crate_name = format!("nova-agent-test-plugin-{suffix}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", &crate_name])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building {crate_name} failed");
    let file = format!("libnova_agent_test_plugin_{}.so", suffix.replace('-', "_"));
    let built = nova_agent_tests::artifacts().join(&file);
    let kept = dir.join(&file);
    std::fs::copy(&built, &kept).unwrap();
    std::fs::remove_file(&built).unwrap();
    kept
}

/// `nova-agent run` on the sandbox's config, its log discarded.
pub fn spawn_agent(sandbox: &nova_agent_tests::Sandbox) -> Child {
    Command::new(nova_agent_tests::agent_bin())
        .args(["run", "--config"])
        .arg(&sandbox.config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting nova-agent")
}

pub fn stop(child: &mut Child) {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// One connection sending the same one-line request again and again, each
/// answered by one line.
pub struct LineClient {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    message: Vec<u8>,
    /// Every answer must be exactly this line, when given.
    expected: Option<Vec<u8>>,
    line: Vec<u8>,
}

impl LineClient {
    /// `request` without its newline; `expected` with it.
    pub fn open(socket: &Path, request: &[u8], expected: Option<&[u8]>) -> LineClient {
        let stream = UnixStream::connect(socket).expect("connecting");
        let mut message = request.to_vec();
        message.push(b'\n');
        LineClient {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            message,
            expected: expected.map(<[u8]>::to_vec),
            line: Vec::with_capacity(128),
        }
    }

    /// The time of each of `count` round trips.
    pub fn round_trips(&mut self, count: usize) -> Vec<Duration> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            self.line.clear();
            let started = Instant::now();
            self.writer.write_all(&self.message).unwrap();
            self.reader.read_until(b'\n', &mut self.line).unwrap();
            samples.push(started.elapsed());
            assert!(self.line.ends_with(b"\n"), "short response");
            if let Some(expected) = &self.expected {
                assert_eq!(&self.line, expected, "unexpected answer");
            }
        }
        samples
    }
}
