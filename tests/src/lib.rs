//! End-to-end test harness: builds the workspace's binary and plugins, lays
//! out a sandbox (plugin directory, root, config) in a temporary directory,
//! runs `nova-agent` there with `apply = false`, and talks to it.
//!
//! Nothing here touches the machine outside the sandbox. Test-only plugins
//! (panicking, wrong ABI, ...) live in `tests/plugins/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod dom0;
pub mod http;
pub mod password_host;
pub mod procs;
pub mod qga;
pub mod qga_pty;
pub mod vm;
pub mod xenstored;

/// The built-in plugins, by crate suffix.
pub const BUILTIN: [&str; 3] = ["core", "json", "unix-socket"];

/// `target/<profile>/`, where cargo leaves the binary and the `.so` files.
pub fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        build_workspace(dir);
        dir.to_path_buf()
    })
}

/// Set by the benchmarks: build the agent and the real plugins only, so no
/// test fixture lands in target/release, where the README's demo would load
/// it.
static WITHOUT_FIXTURES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For the benchmarks, before anything else: [`artifacts`] then builds only
/// the workspace's default members.
pub fn build_without_fixtures() {
    WITHOUT_FIXTURES.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// `cargo test` builds neither binaries nor cdylibs of other packages, so the
/// harness asks cargo for them once per test process (a no-op when fresh).
fn build_workspace(profile_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    // From the workspace root: inside a member's directory a plain `cargo
    // build` builds that member only, not the default members.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    command.current_dir(workspace).args(["build", "--quiet"]);
    if !WITHOUT_FIXTURES.load(std::sync::atomic::Ordering::SeqCst) {
        command.arg("--workspace");
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("running cargo build");
    assert!(status.success(), "cargo build failed");
}

pub fn agent_bin() -> PathBuf {
    artifacts().join("nova-agent")
}

/// A built-in plugin's `.so`, e.g. `plugin("unix-socket")`.
pub fn plugin(name: &str) -> PathBuf {
    artifacts().join(format!(
        "libnova_agent_plugin_{}.so",
        name.replace('-', "_")
    ))
}

/// A test plugin's `.so`, e.g. `test_plugin("panic")`.
pub fn test_plugin(name: &str) -> PathBuf {
    artifacts().join(format!(
        "libnova_agent_test_plugin_{}.so",
        name.replace('-', "_")
    ))
}

/// Whether the agent under test enforces the plugin trust check.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary directory with `plugins/` (mode 0755), `root/`, `run/` and a
/// config; removed when dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// The XenStore socket the agent is pointed at (`XENSTORED_PATH`), if any.
    xenstored: Option<PathBuf>,
    /// `RUST_LOG` for the agents this sandbox starts (`debug` unless changed).
    pub rust_log: String,
    pub plugins: PathBuf,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
}

impl Sandbox {
    /// A sandbox holding the built-in plugins and a unix-socket channel.
    pub fn with_builtins() -> Sandbox {
        let sandbox = Sandbox::empty();
        for name in BUILTIN {
            sandbox.add_plugin(&plugin(name));
        }
        sandbox.write_config("");
        sandbox
    }

    /// The built-in plugins with the `xenstore` plugin, and a second channel,
    /// xenstore + json, whose XenStore is the socket
    /// [`Sandbox::xenstored_socket`] (for a fake xenstored); `extra` TOML is
    /// appended to the config.
    pub fn with_xenstore(extra: &str) -> Sandbox {
        let mut sandbox = Sandbox::with_builtins();
        sandbox.add_plugin(&plugin("xenstore"));
        sandbox.write_config(&format!(
            "\n[[channel]]\nexchange = \"xenstore\"\nparser = \"json\"\n{extra}"
        ));
        sandbox.xenstored = Some(sandbox.path().join("xenstored.sock"));
        sandbox
    }

    /// Where the agent looks for xenstored (`XENSTORED_PATH`).
    pub fn xenstored_socket(&self) -> &Path {
        self.xenstored
            .as_deref()
            .expect("a sandbox made by with_xenstore")
    }

    pub fn empty() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let plugins = dir.path().join("plugins");
        let root = dir.path().join("root");
        for d in [
            &plugins,
            &root,
            &dir.path().join("run"),
            &dir.path().join("state"),
        ] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Sandbox {
            xenstored: None,
            rust_log: "debug".to_owned(),
            socket: dir.path().join("run/agent.sock"),
            config: dir.path().join("agent.toml"),
            plugins,
            root,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies a plugin in, owned by the current user, mode 0644.
    pub fn add_plugin(&self, so: &Path) -> PathBuf {
        let target = self.plugins.join(so.file_name().unwrap());
        std::fs::copy(so, &target).unwrap_or_else(|e| panic!("copying {}: {e}", so.display()));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        target
    }

    /// Installs `so` as `plugins/<name>` the way dpkg does: written to
    /// `<name>.dpkg-new`, then renamed over the old file in one step.
    pub fn install_as(&self, so: &Path, name: &str) -> PathBuf {
        let target = self.plugins.join(name);
        let temp = self.plugins.join(format!("{name}.dpkg-new"));
        std::fs::copy(so, &temp).unwrap_or_else(|e| panic!("copying {}: {e}", so.display()));
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&temp, &target).unwrap();
        target
    }

    /// `plugins list --json` (the running agent's live view when one runs);
    /// it exits 1 when an entry is refused or in error.
    pub fn plugins_json(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["plugins", "list", "--json"]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("plugins list --json prints JSON")
    }

    /// The `plugins list --json` entry of plugin `name`.
    pub fn plugin_entry(&self, name: &str) -> serde_json::Value {
        let list = self.plugins_json();
        list.iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no plugin {name} in {list:#?}"))
    }

    /// The standard config plus `extra` TOML appended.
    pub fn write_config(&self, extra: &str) {
        let d = self.path().display();
        let text = format!(
            "plugin_dir = \"{d}/plugins\"\nroot = \"{d}/root\"\napply = false\n\
             state_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\n\n\
             [[channel]]\nexchange = \"unix-socket\"\nparser = \"json\"\n\n\
             [plugins.unix-socket]\npath = \"{d}/run/agent.sock\"\n{extra}"
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// json, unix-socket and the swap fixture (`build`: `v1`, `v2`,
    /// `init-error`) as `libswap.so`, whose `version` and `features` are then
    /// the only commands. `extra` is appended to the config.
    pub fn with_swap_fixture(build: &str, extra: &str) -> Sandbox {
        let sandbox = Sandbox::empty();
        sandbox.add_plugin(&plugin("json"));
        sandbox.add_plugin(&plugin("unix-socket"));
        sandbox.install_as(&test_plugin(&format!("swap-{build}")), "libswap.so");
        sandbox.write_config(extra);
        sandbox
    }

    /// `nova-agent <args> --config <sandbox config>`, run to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(agent_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .envs(self.xenstored.iter().map(|s| ("XENSTORED_PATH", s)))
            .output()
            .expect("running nova-agent")
    }

    /// Starts `nova-agent run` and waits until it reports it is serving.
    pub fn start(&self) -> Agent {
        let agent = self.spawn();
        agent.wait_for_log("nova-agent 2.0.0 started");
        agent
    }

    /// Starts `nova-agent run` without waiting.
    pub fn spawn(&self) -> Agent {
        self.spawn_with(&[])
    }

    /// Starts `nova-agent run` with `env` added to its environment.
    pub fn spawn_with(&self, env: &[(&str, &str)]) -> Agent {
        let mut child = Command::new(agent_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", &self.rust_log)
            .envs(self.xenstored.iter().map(|s| ("XENSTORED_PATH", s)))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nova-agent");
        let log = Arc::new(Mutex::new(String::new()));
        let (line_tx, line_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = line_tx.send(line);
            }
        });
        Agent {
            child,
            log,
            lines: Mutex::new(line_rx),
            socket: self.socket.clone(),
        }
    }
}

/// A running `nova-agent run`; killed if still running when dropped.
pub struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
    lines: Mutex<mpsc::Receiver<String>>,
    pub socket: PathBuf,
}

pub const TIMEOUT: Duration = Duration::from_secs(30);

impl Agent {
    /// Blocks until a log line contains `needle`; panics with the log after
    /// `TIMEOUT` or if the agent exits first.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}; log:\n{}", self.log()),
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Blocks until the whole log so far, from the start, has `needle`
    /// `times` times; panics with the log after `TIMEOUT`.
    pub fn wait_for_logged(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {times} times; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Opens a connection to the agent's socket.
    pub fn connect(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// One request on a fresh connection; the response line.
    pub fn request(&self, line: &str) -> String {
        self.connect().request(line)
    }

    /// Command `name` with no value, on a fresh connection.
    pub fn call(&self, name: &str) -> String {
        self.request(&format!("{{\"name\": \"{name}\"}}"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and waits for the exit; returns the status and how long
    /// the exit took.
    pub fn stop_with(&mut self, signal: i32) -> (ExitStatus, Duration) {
        let started = Instant::now();
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.pid(), signal) };
        let status = self.wait_exit(TIMEOUT).expect("agent did not exit");
        (status, started.elapsed())
    }

    /// Waits up to `timeout` for the agent to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to the unix socket exchange.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    /// Sends `line` (a newline is added) and reads one response line.
    pub fn request(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.read_line()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the agent");
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("reading from the agent");
        assert!(
            line.ends_with('\n'),
            "response not newline-terminated: {line:?}"
        );
        line.pop();
        line
    }

    /// True when the agent closed the connection.
    pub fn at_eof(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// The Nova response for `(code, message)`, byte for byte.
/// A client sending each of `commands` in turn on one connection, back to
/// back, until `stop` is set; returns every answer (for tests of what load
/// sees while plugins change under it).
pub fn hammer(
    agent: &Agent,
    commands: &'static [&'static str],
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    let mut client = Client::connect(&agent.socket);
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let mut answers = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for name in commands {
                answers.push(client.request(&format!("{{\"name\": \"{name}\"}}")));
            }
        }
        answers
    })
}

pub fn nova(code: &str, message: &str) -> String {
    format!("{{\"message\": \"{message}\", \"returncode\": \"{code}\"}}")
}
