//! Stopping: signals that must not end the agent, those that stop it
//! cleanly, and the QGA client of a command still running at the stop.
//! (The Nova client's is in `lifecycle`.)

use std::time::Duration;

use nova_agent_tests::qga_pty::{pty_sandbox, PtyHost};
use nova_agent_tests::{nova, test_plugin, Sandbox};

fn send(pid: i32, signal: i32) {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn a_stray_signal_neither_kills_the_agent_nor_leaves_its_socket() {
    let sandbox = Sandbox::with_builtins();
    let mut agent = sandbox.start();
    let strays = [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGRTMIN() + 1, "SIGRTMIN+1"),
    ];
    for (signal, name) in strays {
        send(agent.pid(), signal);
        agent.wait_for_log(&format!("{name} received; ignored"));
        assert_eq!(agent.call("version"), nova("0", "2.0.0"), "after {name}");
    }
    // Ignored as std leaves it: nothing to log.
    send(agent.pid(), libc::SIGPIPE);
    assert_eq!(agent.call("version"), nova("0", "2.0.0"), "after SIGPIPE");
    assert!(agent.wait_exit(Duration::ZERO).is_none());

    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(!sandbox.socket.exists(), "socket left behind");
    assert!(!sandbox.path().join("run/control.sock").exists());
}

#[test]
fn sigquit_stops_cleanly_too() {
    let sandbox = Sandbox::with_builtins();
    let mut agent = sandbox.start();
    let (status, _) = agent.stop_with(libc::SIGQUIT);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(agent.log().contains("SIGQUIT received; stopping"));
    assert!(!sandbox.socket.exists(), "socket left behind");
}

#[test]
fn a_qga_command_still_running_at_the_stop_is_answered_a_generic_error() {
    let mut host = PtyHost::open();
    let sandbox = pty_sandbox(&host.slave, "virtio-serial");
    sandbox.add_plugin(&test_plugin("panic"));
    let mut agent = sandbox.start();
    agent.wait_for_logged(&format!("opened {}", host.slave.display()), 1);
    host.send(b"{\"execute\": \"hang\", \"id\": 7}");
    agent.wait_for_log("hang: not returning for two minutes");
    let (status, took) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let reply = host.reply();
    assert_eq!(
        reply.error_class(),
        Some("GenericError"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.desc(), Some("agent is stopping"));
    assert_eq!(reply.id(), Some(&serde_json::json!(7)));
}
