//! A plugin that crashes the agent, without isolation: the `crash-fixture`'s
//! `segfault`, asked for over XenStore, kills the agent by SIGSEGV. The test
//! then starts the agent again on the same sandbox, as systemd's
//! `Restart=on-failure` does, and the request in flight is answered "500"
//! without being run a second time; everything else is served as usual.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nova_agent_tests::dom0::{request_path, response_path, Dom0};
use nova_agent_tests::xenstored::FakeXenstored;
use nova_agent_tests::{nova, test_plugin, Agent, Sandbox, TIMEOUT};

/// The answer to a request the agent died running (the xenstore plugin's
/// `taken::STOPPED`, answered by the json parser).
const STOPPED: &str = "the agent stopped while running this request; it was not run again";

/// The XenStore world of one test: a fake xenstored, the host's tools, and a
/// sandbox whose agent has a xenstore + json channel and the crash fixture.
struct World {
    _xenstored: FakeXenstored,
    dom0: Dom0,
    sandbox: Sandbox,
}

impl World {
    fn new() -> World {
        let sandbox = Sandbox::with_xenstore("");
        sandbox.add_plugin(&test_plugin("crash"));
        World {
            _xenstored: FakeXenstored::start(sandbox.xenstored_socket())
                .expect("starting the fake xenstored"),
            dom0: Dom0::new(sandbox.xenstored_socket()),
            sandbox,
        }
    }

    fn start_agent(&self) -> Agent {
        let agent = self.sandbox.start();
        agent.wait_for_logged("connected to XenStore", 1);
        agent
    }

    /// Request `id`'s taken marker.
    fn marker(&self, id: &str) -> PathBuf {
        self.taken_dir().join(id)
    }

    fn taken_dir(&self) -> PathBuf {
        self.sandbox.path().join("state/xenstore/taken")
    }

    /// Waits until request `id` and its marker are gone.
    fn wait_done(&self, id: &str) {
        wait_until(
            || self.dom0.read(&request_path(id)).is_none(),
            || format!("request {id} was not removed"),
        );
        let marker = self.marker(id);
        wait_until(
            || marker.symlink_metadata().is_err(),
            || format!("{} was not removed", marker.display()),
        );
    }
}

fn wait_until(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_unit_restarts_the_agent_on_failure() {
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/nova-agent.service");
    let unit = std::fs::read_to_string(unit).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    assert!(lines.contains(&"Restart=on-failure"), "{unit}");
    assert!(lines.contains(&"RestartSec=2"), "{unit}");
}

#[test]
fn a_segfault_kills_the_agent_and_after_the_restart_its_request_is_answered_not_run_again() {
    let world = World::new();
    let mut agent = world.start_agent();
    let id = world.dom0.send("segfault", "\"\"");

    let status = agent.wait_exit(TIMEOUT).expect("the agent did not die");
    assert_eq!(
        status.signal(),
        Some(11),
        "{status:?}; log:\n{}",
        agent.log()
    );
    assert!(
        agent
            .log()
            .contains("segfault: writing through a null pointer"),
        "{}",
        agent.log()
    );
    // Left behind: the request, no response, and the marker saying it ran.
    assert!(world.dom0.read(&request_path(&id)).is_some());
    assert_eq!(world.dom0.read(&response_path(&id)), None);
    assert!(world.marker(&id).is_file());
    let mode = std::fs::metadata(world.taken_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(agent);

    // What systemd does (RestartSec=2 later): start it again.
    let agent = world.start_agent();
    assert_eq!(
        world.dom0.wait_response(&id, TIMEOUT).as_deref(),
        Some(nova("500", STOPPED).as_str())
    );
    world.wait_done(&id);
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));
    assert_eq!(world.dom0.call("ok", "\"\""), nova("0", "fine"));
    assert_eq!(agent.call("ok"), nova("0", "fine"));

    let mut agent = agent;
    assert!(agent.wait_exit(Duration::ZERO).is_none(), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains(&format!(
            "request {id} was being run when the agent stopped"
        )),
        "{log}"
    );
    assert!(!log.contains("segfault: writing"), "run again:\n{log}");
}

#[test]
fn an_answered_request_leaves_no_marker_and_stale_markers_go_at_start() {
    let world = World::new();
    // A marker whose request is gone (the host gave up on it).
    std::fs::create_dir_all(world.taken_dir()).unwrap();
    let stale = world.marker("6f0d7a1e-stale");
    std::fs::write(&stale, b"").unwrap();

    let _agent = world.start_agent();
    let id = world.dom0.send("ok", "\"\"");
    assert_eq!(
        world.dom0.wait_response(&id, TIMEOUT).as_deref(),
        Some(nova("0", "fine").as_str())
    );
    world.wait_done(&id);
    assert!(!stale.exists(), "{} was not removed", stale.display());
    let left: Vec<_> = std::fs::read_dir(world.taken_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
