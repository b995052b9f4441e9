//! The agent as a service: systemd's notify protocol and watchdog (with a
//! datagram socket standing in for systemd), `run --daemonize --pidfile`, and
//! the log file.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use nova_agent_tests::{agent_bin, nova, test_plugin, Client, Sandbox};

const WAIT: Duration = Duration::from_secs(30);

/// What the agent tells "systemd".
struct FakeSystemd {
    socket: UnixDatagram,
    path: String,
}

impl FakeSystemd {
    fn new(sandbox: &Sandbox) -> FakeSystemd {
        let path = sandbox.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        FakeSystemd {
            socket,
            path: path.display().to_string(),
        }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Skips keep-alives until a message that is not one.
    fn next_not_watchdog(&self) -> String {
        loop {
            let message = self.next();
            if message != "WATCHDOG=1" {
                return message;
            }
        }
    }

    /// Forgets what was sent so far.
    fn drain(&self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while self.socket.recv(&mut buf).is_ok() {}
        self.socket.set_nonblocking(false).unwrap();
    }

    /// Keep-alives received within `window`.
    fn keepalives_within(&self, window: Duration) -> usize {
        let deadline = Instant::now() + window;
        let mut count = 0;
        self.socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                count += usize::from(&buf[..n] == b"WATCHDOG=1");
            }
        }
        self.socket.set_read_timeout(Some(WAIT)).unwrap();
        count
    }
}

#[test]
fn systemd_hears_ready_status_keepalives_reloads_and_stopping() {
    let sandbox = Sandbox::with_builtins();
    let systemd = FakeSystemd::new(&sandbox);
    let mut agent = sandbox.spawn_with(&[
        ("NOTIFY_SOCKET", &systemd.path),
        ("WATCHDOG_USEC", "200000"),
    ]);
    assert_eq!(
        systemd.next_not_watchdog(),
        "READY=1\nSTATUS=3 plugins (2 loaded, 1 at first use); 1 of 1 channels serving"
    );
    // Every 100 ms: at least 3 in a second, even on a loaded machine.
    assert!(systemd.keepalives_within(Duration::from_millis(1000)) >= 3);

    // Renamed into place: a reload never sees it half copied.
    sandbox.install_as(&test_plugin("probe"), "libprobe.so");
    assert_eq!(
        systemd.next_not_watchdog(),
        "STATUS=4 plugins (2 loaded, 2 at first use); 1 of 1 channels serving"
    );
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    assert_eq!(systemd.next_not_watchdog(), "STOPPING=1");
}

#[test]
fn a_watchdog_meant_for_another_process_is_ignored() {
    let sandbox = Sandbox::with_builtins();
    let systemd = FakeSystemd::new(&sandbox);
    let _agent = sandbox.spawn_with(&[
        ("NOTIFY_SOCKET", &systemd.path),
        ("WATCHDOG_USEC", "100000"),
        ("WATCHDOG_PID", "1"),
    ]);
    assert!(systemd.next().starts_with("READY=1\n"));
    assert_eq!(systemd.keepalives_within(Duration::from_millis(400)), 0);
}

#[test]
fn keepalives_stop_while_every_worker_is_stuck_and_resume_after() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("probe"));
    let systemd = FakeSystemd::new(&sandbox);
    let agent = sandbox.spawn_with(&[
        ("NOTIFY_SOCKET", &systemd.path),
        ("WATCHDOG_USEC", "300000"),
    ]);
    assert!(systemd.next_not_watchdog().starts_with("READY=1\n"));
    agent.wait_for_log("nova-agent 2.0.0 started");

    // The channel's four workers each take a 2.5 s nap.
    let mut nappers: Vec<Client> = (0..4).map(|_| agent.connect()).collect();
    for napper in &mut nappers {
        napper.send(b"{\"name\": \"nap\", \"value\": 2500}\n");
    }
    // Stalled from 0.3 s on; what was sent before is old news.
    std::thread::sleep(Duration::from_millis(600));
    systemd.drain();
    let during = systemd.keepalives_within(Duration::from_millis(1200));
    assert_eq!(during, 0, "{}", agent.log());
    agent.wait_for_log("withholding the watchdog keep-alive");
    for napper in &mut nappers {
        assert_eq!(napper.read_line(), nova("0", "slept 2500 ms"));
    }
    assert!(systemd.keepalives_within(Duration::from_millis(1500)) >= 1);
}

/// The file's text once it has a line with `needle`.
fn wait_for_file_line(path: &std::path::Path, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            started.elapsed() < WAIT,
            "no {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn daemon_config(sandbox: &Sandbox) -> std::path::PathBuf {
    let log = sandbox.path().join("agent.log");
    sandbox.write_config(&format!("[log]\nfile = \"{}\"\n", log.display()));
    log
}

fn run_daemonized(sandbox: &Sandbox, pidfile: &std::path::Path) -> std::process::Output {
    Command::new(agent_bin())
        .args(["run", "--daemonize", "--pidfile"])
        .arg(pidfile)
        .arg("--config")
        .arg(&sandbox.config)
        .output()
        .expect("running nova-agent")
}

fn wait_gone(pid: i32) {
    let started = Instant::now();
    // SAFETY: kill with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(started.elapsed() < WAIT, "pid {pid} still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn daemonize_returns_once_serving_with_a_locked_pidfile_and_a_private_log() {
    let sandbox = Sandbox::with_builtins();
    let log = daemon_config(&sandbox);
    let pidfile = sandbox.path().join("run/nova-agent.pid");

    let out = run_daemonized(&sandbox, &pidfile);
    assert!(out.status.success(), "{out:?}");
    // Ready when the parent returns: no waiting.
    assert_eq!(
        Client::connect(&sandbox.socket).request(r#"{"name": "version"}"#),
        nova("0", "2.0.0")
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for_file_line(&log, "nova-agent 2.0.0 started");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second one is refused, and says so from the foreground.
    let second = run_daemonized(&sandbox, &pidfile);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("is held by a running nova-agent (pid {pid})")),
        "{stderr}"
    );

    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_gone(pid);
    assert!(!pidfile.exists());
    assert!(!sandbox.socket.exists());
}

#[test]
fn a_daemon_that_cannot_serve_fails_in_the_foreground() {
    let sandbox = Sandbox::empty();
    daemon_config(&sandbox);
    let pidfile = sandbox.path().join("run/nova-agent.pid");
    let out = run_daemonized(&sandbox, &pidfile);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no channel could start"), "{stderr}");
    assert!(!pidfile.exists());
}

#[test]
fn a_log_file_gets_the_log_too_mode_0600() {
    let sandbox = Sandbox::with_builtins();
    let log = daemon_config(&sandbox);
    std::fs::write(&log, "earlier line\n").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    // Each event goes to stderr, then to the file: wait for the file too.
    let text = wait_for_file_line(&log, "command \"version\" answered");
    let text = if text.contains("nova-agent 2.0.0 started") {
        text
    } else {
        wait_for_file_line(&log, "nova-agent 2.0.0 started")
    };
    assert!(text.starts_with("earlier line\n"), "{text}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // And stderr still has it (not under systemd).
    assert!(agent.log().contains("nova-agent 2.0.0 started"));
}
