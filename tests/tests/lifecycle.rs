//! Start-up and shutdown of `nova-agent run` through the built binary.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use nova_agent_tests::{agent_bin, nova, plugin, Client, Sandbox, BUILTIN};

#[test]
fn sigterm_exits_zero_within_five_seconds_and_removes_the_socket() {
    let sandbox = Sandbox::with_builtins();
    let mut agent = sandbox.start();
    let mode = std::fs::metadata(&sandbox.socket).unwrap();
    assert!(mode.file_type().is_socket());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // An idle client connected does not hold the exit up.
    let _idle = agent.connect();
    let (status, took) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!sandbox.socket.exists());
}

#[test]
fn sigint_exits_zero_too() {
    let sandbox = Sandbox::with_builtins();
    let mut agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    let (status, _) = agent.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_run_fails_clearly_before_loading_anything_and_the_first_keeps_serving() {
    let sandbox = Sandbox::with_builtins();
    let first = sandbox.start();
    let mut second = sandbox.spawn();
    let status = second
        .wait_exit(Duration::from_secs(30))
        .expect("second agent exits");
    assert_eq!(status.code(), Some(1));
    let log = second.log();
    let control = sandbox.path().join("run/control.sock");
    assert!(
        log.contains(&format!(
            "another nova-agent is running: its control socket {} answers",
            control.display()
        )),
        "{log}"
    );
    assert!(!log.contains("plugins loaded"), "{log}");
    assert_eq!(first.call("version"), nova("0", "2.0.0"));
    assert!(control.exists());
}

#[test]
fn a_stale_socket_is_replaced() {
    let sandbox = Sandbox::with_builtins();
    drop(std::os::unix::net::UnixListener::bind(&sandbox.socket).unwrap());
    assert!(sandbox.socket.exists());
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
}

#[test]
fn a_channel_without_its_exchange_fails_and_with_no_channel_left_run_exits_1() {
    let sandbox = Sandbox::empty();
    sandbox.add_plugin(&plugin("core"));
    sandbox.add_plugin(&plugin("json"));
    sandbox.write_config("");
    let mut agent = sandbox.spawn();
    let status = agent
        .wait_exit(Duration::from_secs(30))
        .expect("agent exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        agent
            .log()
            .contains("no plugin provides exchange 'unix-socket'"),
        "{}",
        agent.log()
    );
}

/// The README demo: with no --config and no /etc/nova-agent/agent.toml the
/// agent runs on its embedded default, everything under its own directory.
#[test]
fn the_embedded_default_serves_from_the_executables_directory() {
    if Path::new("/etc/nova-agent/agent.toml").exists() {
        eprintln!(
            "skipped: /etc/nova-agent/agent.toml exists, so the embedded default is not used"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(agent_bin(), bin.join("nova-agent")).unwrap();
    for name in BUILTIN.iter().chain(&["virtio-serial", "qga", "qga-core"]) {
        let so = plugin(name);
        std::fs::copy(&so, bin.join(so.file_name().unwrap())).unwrap();
    }
    let mut child = std::process::Command::new(bin.join("nova-agent"))
        .arg("run")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = bin.join("demo/run/agent.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "demo socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        Client::connect(&socket).request(r#"{"name": "version"}"#),
        nova("0", "2.0.0")
    );
    let call = std::process::Command::new(bin.join("nova-agent"))
        .args(["call", "version"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&call.stdout),
        format!("{}\n", nova("0", "2.0.0"))
    );
    assert!(bin.join("demo/root").is_dir());
    // The KVM host's protocol, on the demo's QGA socket.
    let mut qga = std::os::unix::net::UnixStream::connect(bin.join("demo/run/qga.sock")).unwrap();
    qga.write_all(br#"{"execute":"guest-sync","arguments":{"id":42}}"#)
        .unwrap();
    let mut reply = String::new();
    BufReader::new(qga).read_line(&mut reply).unwrap();
    assert_eq!(reply, "{\"return\": 42}\n");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_command_that_does_not_return_cannot_hold_the_exit_past_five_seconds() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&nova_agent_tests::test_plugin("panic"));
    let mut agent = sandbox.start();
    let mut hung = agent.connect();
    hung.send(b"{\"name\": \"hang\"}\n");
    agent.wait_for_log("hang: not returning for two minutes");
    // Other requests are still served meanwhile.
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    let (status, took) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Not an end of stream, which would say the request was not run.
    assert_eq!(hung.read_line(), nova("500", "agent is stopping"));
    assert!(hung.at_eof());
}
