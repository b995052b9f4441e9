//! The QGA channel of the whole agent (`nova-agent run` with the
//! virtio-serial exchange, the qga parser and qga-core) over a pty, as over
//! a virtio-serial port: the test is the host on the pty's master.
//!
//! Reference §1.2: with no host attached a virtio port reads 0 and polls
//! POLLHUP over and over; the agent must take that as waiting, stay up, use
//! no CPU, and never let bytes from a host that went away reach a later
//! host's answers.

use std::path::Path;
use std::time::Duration;

use nova_agent_tests::qga::{wait_until_listening, QgaClient};
use nova_agent_tests::qga_pty::{cpu_time, point, pty_sandbox, PtyHost};
use nova_agent_tests::{nova, Agent, Sandbox};
use serde_json::json;

/// What an idle agent may use in two seconds: a hot loop would use all of
/// them.
const IDLE_CPU: Duration = Duration::from_millis(50);

/// The agent on `path` with `method`, once it has opened (or listened on)
/// the port.
fn serve(path: &Path, method: &str) -> (Sandbox, Agent) {
    let sandbox = pty_sandbox(path, method);
    let agent = sandbox.start();
    if method == "unix-listen" {
        wait_until_listening(path, "the virtio-serial exchange");
    } else {
        agent.wait_for_logged(&format!("opened {}", path.display()), 1);
    }
    (sandbox, agent)
}

/// CPU the agent uses over two seconds of (supposed) idleness.
fn cpu_over_two_seconds(agent: &Agent) -> Duration {
    let before = cpu_time(agent.pid());
    std::thread::sleep(Duration::from_secs(2));
    cpu_time(agent.pid()) - before
}

fn assert_no_warnings(agent: &Agent) {
    let log = agent.log();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "waiting is not a problem; log:\n{log}"
    );
}

#[test]
fn requests_and_replies_cross_a_pty_as_a_virtio_port() {
    let mut host = PtyHost::open();
    let (_sandbox, _agent) = serve(&host.slave, "virtio-serial");
    let sync = host.request("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1234}}\n");
    assert_eq!(sync.json, json!({"return": 1234}));
    // No newline needed; an id is echoed.
    let ping = host.request("{\"execute\":\"guest-ping\",\"id\":\"a\"}");
    assert_eq!(ping.json, json!({"return": {}, "id": "a"}));
    // Two requests in one write, then one over two writes.
    host.send(b"{\"execute\":\"guest-ping\",\"id\":1}{\"execute\":\"guest-ping\",\"id\":2}");
    assert_eq!(host.reply().json, json!({"return": {}, "id": 1}));
    assert_eq!(host.reply().json, json!({"return": {}, "id": 2}));
    host.send(b"{\"execute\":\"guest-");
    assert!(!host.has_output(Duration::from_millis(200)));
    let ping = host.request("ping\",\"id\":3}");
    assert_eq!(ping.json, json!({"return": {}, "id": 3}));
    let unknown = host.request("{\"execute\":\"no-such-command\"}");
    assert_eq!(unknown.error_class(), Some("CommandNotFound"));
}

#[test]
fn the_host_closing_its_end_leaves_the_agent_up_and_idle() {
    let mut host = PtyHost::open();
    let (_sandbox, mut agent) = serve(&host.slave, "virtio-serial");
    assert_eq!(
        host.request("{\"execute\":\"guest-ping\"}").json,
        json!({"return": {}})
    );
    host.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":");
    host.detach();
    agent.wait_for_log("the host of host-1 went away");
    // The port now polls POLLHUP and reads 0 for as long as nobody comes.
    let used = cpu_over_two_seconds(&agent);
    assert!(
        used < IDLE_CPU,
        "the agent used {used:?} of CPU waiting for a host"
    );
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    assert_no_warnings(&agent);
    let (status, took) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_later_host_is_not_answered_with_bytes_from_before() {
    // isa-serial opens the line afresh after a hang-up, so a symlink moved
    // to a second pty stands for the host coming back.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyQGA");
    let mut first = PtyHost::open();
    point(&link, &first.slave);
    let (_sandbox, agent) = serve(&link, "isa-serial");
    let ping = first.request("{\"execute\":\"guest-ping\",\"id\":\"first\"}");
    assert_eq!(ping.json, json!({"return": {}, "id": "first"}));
    // Half a request, and the host is gone.
    first.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":");
    let mut second = PtyHost::open();
    point(&link, &second.slave);
    first.detach();
    agent.wait_for_log(&format!("reopened {}", link.display()));
    // Kept, the half request would swallow this one.
    let ping = second.request("{\"execute\":\"guest-ping\",\"id\":\"second\"}\n");
    assert_eq!(ping.json, json!({"return": {}, "id": "second"}));
    assert!(!second.has_output(Duration::from_millis(200)));
}

#[test]
fn a_later_client_of_unix_listen_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qga.sock");
    let (_sandbox, agent) = serve(&socket, "unix-listen");
    let mut first = QgaClient::connect(&socket);
    first.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":");
    drop(first);
    let mut second = QgaClient::connect(&socket);
    let ping = second.request("{\"execute\":\"guest-ping\",\"id\":9}\n");
    assert_eq!(ping.json, json!({"return": {}, "id": 9}));
    second.assert_nothing_pending();
    drop(agent);
}

#[test]
fn an_absent_port_is_waited_for_quietly_then_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.qemu.guest_agent.0");
    let sandbox = pty_sandbox(&path, "virtio-serial");
    let agent = sandbox.start();
    let waiting = format!("waiting for {}", path.display());
    agent.wait_for_logged(&waiting, 1);
    let used = cpu_over_two_seconds(&agent);
    assert!(
        used < IDLE_CPU,
        "the agent used {used:?} of CPU waiting for the port"
    );

    let mut host = PtyHost::open();
    point(&path, &host.slave);
    agent.wait_for_logged(&format!("opened {}", path.display()), 1);
    let ping = host.request("{\"execute\":\"guest-ping\"}");
    assert_eq!(ping.json, json!({"return": {}}));
    assert_eq!(agent.log().matches(&waiting).count(), 1, "{}", agent.log());
    assert_no_warnings(&agent);
}
