//! The XenStore exchange end to end: the agent binary with its plugins, a
//! fake xenstored on a temporary socket, and the host's side done with
//! Debian's xenstore tools exactly as Nova's dom0 plugin does (write
//! `data/host/<uuid>`, poll `data/guest/<uuid>`).

use std::time::Duration;

use nova_agent_tests::dom0::{self, request_path, response_path, Dom0, HOME};
use nova_agent_tests::xenstored::{FakeXenstored, JournalOp};
use nova_agent_tests::{nova, test_plugin, Agent, Sandbox};

const WAIT: Duration = Duration::from_secs(30);

/// A fake xenstored, the host's tools pointed at it, and a sandbox whose
/// agent has a xenstore + json channel (plus the probe fixture's commands).
struct World {
    xenstored: Option<FakeXenstored>,
    dom0: Dom0,
    sandbox: Sandbox,
}

impl World {
    fn new() -> World {
        let mut world = World::without_xenstored();
        world.start_xenstored();
        world
    }

    /// The sandbox and the tools; nothing listens on the socket yet.
    fn without_xenstored() -> World {
        let sandbox = Sandbox::with_xenstore("");
        sandbox.add_plugin(&test_plugin("probe"));
        World {
            xenstored: None,
            dom0: Dom0::new(sandbox.xenstored_socket()),
            sandbox,
        }
    }

    fn start_xenstored(&mut self) {
        let socket = self.sandbox.xenstored_socket();
        self.xenstored = Some(FakeXenstored::start(socket).expect("starting the fake xenstored"));
    }

    fn xenstored(&self) -> &FakeXenstored {
        self.xenstored.as_ref().expect("the fake xenstored")
    }

    fn start_agent(&self) -> Agent {
        let agent = self.sandbox.start();
        agent.wait_for_logged("connected to XenStore", 1);
        agent
    }

    fn wait_gone(&self, path: &str) {
        assert!(
            self.xenstored()
                .wait_until(WAIT, |x| x.read(path).is_none()),
            "{path} was not removed"
        );
    }
}

fn message(response: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(response).unwrap();
    json["message"].as_str().unwrap().to_owned()
}

#[test]
fn version_features_and_an_unknown_command_are_answered() {
    let world = World::new();
    let _agent = world.start_agent();

    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));
    let features = message(&world.dom0.call("features", "\"\""));
    let features: Vec<&str> = features.split(',').collect();
    for name in ["version", "features", "nap", "read-metadata"] {
        assert!(features.contains(&name), "{features:?}");
    }
    assert_eq!(
        world.dom0.call("nope", "\"\""),
        nova("404", "No such agent command 'nope'")
    );

    // Requests are gone; responses stay for the host, which never removes them.
    assert!(world.dom0.list(&format!("{HOME}/data/host")).is_empty());
    assert_eq!(world.dom0.list(&format!("{HOME}/data/guest")).len(), 3);
}

#[test]
fn requests_waiting_at_start_up_are_served_and_answered_ones_are_not_run_again() {
    let world = World::new();
    let waiting = dom0::uuid();
    let answered = dom0::uuid();
    let earlier = nova("0", "answered before the agent stopped");
    world.dom0.write(&[
        (
            &request_path(&waiting),
            &dom0::request("version", "\"agent\""),
        ),
        (&request_path(&answered), &dom0::request("nap", "1")),
        (&response_path(&answered), &earlier),
    ]);

    let agent = world.start_agent();
    assert_eq!(
        world.dom0.wait_response(&waiting, WAIT).unwrap(),
        nova("0", "2.0.0")
    );
    world.wait_gone(&request_path(&answered));
    assert_eq!(world.dom0.read(&response_path(&answered)).unwrap(), earlier);
    agent.wait_for_logged("was already answered; removed without running it again", 1);
    assert!(!agent.log().contains("nap of"), "{}", agent.log());
}

#[test]
fn a_hundred_requests_written_at_once_are_each_answered_once() {
    let world = World::new();
    let agent = world.start_agent();
    let ids: Vec<String> = (0..100).map(|_| dom0::uuid()).collect();
    let requests: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (request_path(id), dom0::request("nap", &(i % 3).to_string())))
        .collect();
    let pairs: Vec<(&str, &str)> = requests
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .collect();
    world.dom0.write(&pairs); // one xenstore-write, one transaction

    for (i, id) in ids.iter().enumerate() {
        let response = world.dom0.wait_response(id, WAIT).expect("a response");
        assert_eq!(response, nova("0", &format!("slept {} ms", i % 3)));
    }
    world.wait_gone(&request_path(&ids[99]));
    assert!(world.dom0.list(&format!("{HOME}/data/host")).is_empty());
    agent.wait_for_logged("command \"nap\" answered", 100);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(agent.log().matches("command \"nap\" answered").count(), 100);
}

#[test]
fn the_response_is_written_before_the_request_is_removed() {
    let world = World::new();
    let _agent = world.start_agent();

    // The host's view: xenstore-watch sees the request, the response, then
    // the request's removal.
    let watch = world.dom0.watch(&format!("{HOME}/data"));
    assert_eq!(watch.next(WAIT).as_deref(), Some(&*format!("{HOME}/data")));
    let id = world.dom0.send("version", "\"agent\"");
    let events: Vec<String> = (0..3).filter_map(|_| watch.next(WAIT)).collect();
    assert_eq!(
        events,
        [request_path(&id), response_path(&id), request_path(&id)]
    );
    assert!(world.dom0.read(&request_path(&id)).is_none());

    // The daemon's journal, over many requests: one write of each response,
    // before the one removal of its request.
    let ids: Vec<String> = (0..20)
        .map(|_| world.dom0.send("version", "\"\""))
        .collect();
    for id in &ids {
        world.wait_gone(&request_path(id));
    }
    let journal: Vec<JournalOp> = world
        .xenstored()
        .journal()
        .into_iter()
        .map(|(_, op)| op)
        .collect();
    for id in &ids {
        let writes: Vec<usize> = positions(
            &journal,
            |op| matches!(op, JournalOp::Write { path, .. } if *path == response_path(id)),
        );
        let removals = positions(
            &journal,
            |op| matches!(op, JournalOp::Remove { path } if *path == request_path(id)),
        );
        assert_eq!(writes.len(), 1, "{journal:#?}");
        assert_eq!(removals.len(), 1, "{journal:#?}");
        assert!(writes[0] < removals[0], "{journal:#?}");
    }
}

fn positions(journal: &[JournalOp], wanted: impl Fn(&JournalOp) -> bool) -> Vec<usize> {
    (0..journal.len())
        .filter(|&i| wanted(&journal[i]))
        .collect()
}

#[test]
fn a_xenstored_restart_mid_run_loses_nothing() {
    let mut world = World::new();
    let agent = world.start_agent();
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));

    // A request in flight when xenstored goes away, and one that appears
    // while the agent is still disconnected.
    let in_flight = world.dom0.send("nap", "1500");
    agent.wait_for_logged(&format!("request {in_flight} taken"), 1);
    world.xenstored.as_mut().unwrap().stop();
    agent.wait_for_logged("nap of 1500 ms done", 1);
    agent.wait_for_logged("lost the XenStore connection", 1);
    let arrived_meanwhile = dom0::uuid();
    world.xenstored().write(
        &request_path(&arrived_meanwhile),
        dom0::request("version", "\"agent\"").as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    world.xenstored.as_mut().unwrap().resume().unwrap();

    assert_eq!(
        world.dom0.wait_response(&in_flight, WAIT).unwrap(),
        nova("0", "slept 1500 ms")
    );
    assert_eq!(
        world.dom0.wait_response(&arrived_meanwhile, WAIT).unwrap(),
        nova("0", "2.0.0")
    );
    world.wait_gone(&request_path(&in_flight));
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));

    let log = agent.log();
    assert_eq!(
        log.matches("lost the XenStore connection").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("XenStore connection restored").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("command \"nap\" answered").count(), 1, "{log}");
}

#[test]
fn bad_values_get_the_parser_s_answer_and_oversized_responses_a_short_500() {
    let world = World::new();
    let _agent = world.start_agent();
    let malformed = nova("500", "Request is malformed");
    for raw in ["abc", "", "[1, 2]", "\"version\"", r"\xff\xfe{"] {
        let id = world.dom0.send_raw(raw);
        assert_eq!(
            world.dom0.wait_response(&id, WAIT).unwrap(),
            malformed,
            "{raw}"
        );
    }
    let id = world.dom0.send_raw(r#"{"value": 1}"#);
    assert_eq!(
        world.dom0.wait_response(&id, WAIT).unwrap(),
        nova("500", "Request is missing 'name' key")
    );

    // The largest request that fits one XenStore write is served.
    let path_len = request_path(&dom0::uuid()).len();
    let room = 4096 - path_len - 1 - dom0::request("version", "\"\"").len();
    let value = format!("\"{}\"", "v".repeat(room));
    assert_eq!(world.dom0.call("version", &value), nova("0", "2.0.0"));

    // A long unknown name is echoed by its first 64 characters.
    let name = "n".repeat(4000);
    let short = format!("No such agent command '{}...'", &name[..64]);
    assert_eq!(world.dom0.call(&name, "\"\""), nova("404", &short));

    // An answer too big to write becomes a short 500.
    let big = "b".repeat(4000);
    world.dom0.write(&[(&format!("{HOME}/vm-data/big"), &big)]);
    let response = world.dom0.call("read-metadata", "\"vm-data/big\"");
    assert!(response.len() < 200, "{response}");
    assert!(
        response.contains("\"returncode\": \"500\"") && response.contains("Response too large"),
        "{response}"
    );

    // An id too long to leave room for a response's path is refused briefly.
    let long_id = "a".repeat(65);
    world
        .dom0
        .write(&[(&request_path(&long_id), &dom0::request("version", "\"\""))]);
    assert_eq!(
        world.dom0.wait_response(&long_id, WAIT).unwrap(),
        nova("500", "Request id is longer than 64 bytes")
    );
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));
}

#[test]
fn commands_read_metadata_from_the_domain_s_home() {
    let world = World::new();
    let _agent = world.start_agent();
    world.dom0.write(&[
        (&format!("{HOME}/vm-data/hostname"), "guest-1"),
        (&format!("{HOME}/vm-data/networking/BC764E000002"), "{}"),
        (&format!("{HOME}/vm-data/networking/BC764E000001"), "{}"),
    ]);
    assert_eq!(
        world.dom0.call("read-metadata", "\"vm-data/hostname\""),
        nova("0", "guest-1")
    );
    assert_eq!(
        world.dom0.call("list-metadata", "\"vm-data/networking\""),
        nova("0", "BC764E000001,BC764E000002")
    );
    assert_eq!(
        world.dom0.call("read-metadata", "\"vm-data/nothing\""),
        nova("404", "no metadata key vm-data/nothing")
    );
    assert_eq!(
        world.dom0.call("list-metadata", "\"vm-data/nothing\""),
        nova("0", "")
    );
    let absolute = world
        .dom0
        .call("read-metadata", "\"/local/domain/0/vm-data/hostname\"");
    assert!(absolute.contains("must be relative"), "{absolute}");
}

#[test]
fn the_agent_starts_without_xenstored_and_connects_when_it_appears() {
    let mut world = World::without_xenstored();
    let mut agent = world.sandbox.start();
    agent.wait_for_logged("XenStore is not reachable", 1);
    // The local channel serves meanwhile.
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));

    world.start_xenstored();
    agent.wait_for_logged("connected to XenStore", 1);
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));
    assert_eq!(agent.log().matches("XenStore is not reachable").count(), 1);

    world.xenstored.as_mut().unwrap().stop();
    let (status, took) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn the_fake_xenstored_program_serves_the_host_tools_and_the_agent() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let world = World::without_xenstored();
    let mut program = Command::new(nova_agent_tests::artifacts().join("fake-xenstored"))
        .arg(world.sandbox.xenstored_socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting fake-xenstored");
    let mut lines = std::io::BufReader::new(program.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("listening on "), "{first}");

    let _agent = world.start_agent();
    assert_eq!(world.dom0.call("version", "\"agent\""), nova("0", "2.0.0"));

    drop(program.stdin.take()); // EOF on stdin stops it
    assert!(program.wait().unwrap().success());
    assert!(!world.sandbox.xenstored_socket().exists());
}
