//! The exchange object against a fake xenstored in this process: what the
//! end-to-end tests cannot time or reach (a node vanishing between event and
//! read, a response too big for one write, a channel restart).
//!
//! Every test shares one fake (XENSTORED_PATH is per process) and works
//! under its own request and response paths.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nova_agent_plugin_api::{Exchange, Incoming};
use nova_agent_tests::xenstored::FakeXenstored;
use xenstore_rs::tokio::XsTokio;

use crate::core::Core;
use crate::session::{examine, Found};
use crate::settings::Settings;
use crate::taken::{Taken, STOPPED};
use crate::XenstoreExchange;

const WAIT: Duration = Duration::from_secs(10);

fn xenstored() -> &'static FakeXenstored {
    static FAKE: OnceLock<(tempfile::TempDir, FakeXenstored)> = OnceLock::new();
    &FAKE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("xenstored.sock");
            let fake = FakeXenstored::start(&socket).unwrap();
            std::env::set_var("XENSTORED_PATH", &socket);
            (dir, fake)
        })
        .1
}

/// An exchange on `<name>/host` and `<name>/guest`, not started.
fn exchange(name: &str) -> XenstoreExchange {
    xenstored();
    let settings = Settings::parse(serde_json::json!({
        "request_path": format!("{name}/host"),
        "response_path": format!("{name}/guest"),
    }))
    .unwrap();
    XenstoreExchange {
        core: Arc::new(Core::new(settings, Taken::new(&state_dir(name)))),
        thread: Arc::default(),
    }
}

/// Exchange `name`'s state directory (its markers are under
/// `xenstore/taken/`), inside the fake's temporary directory.
fn state_dir(name: &str) -> PathBuf {
    xenstored().socket().with_file_name(format!("state-{name}"))
}

fn marker(name: &str, id: &str) -> PathBuf {
    state_dir(name).join("xenstore/taken").join(id)
}

fn abs(path: &str) -> String {
    format!("/local/domain/0/{path}")
}

/// Waits until the exchange is connected (metadata works only then).
fn wait_connected(exchange: &XenstoreExchange) {
    let deadline = std::time::Instant::now() + WAIT;
    while exchange.core.current().is_none() {
        assert!(std::time::Instant::now() < deadline, "never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn next_request(exchange: &XenstoreExchange) -> Incoming {
    exchange.next().unwrap().expect("a request")
}

#[test]
fn metadata_is_read_from_the_home_started_or_not() {
    let exchange = exchange("meta");
    xenstored().write(&abs("vm-data/hostname"), b"guest-1");
    xenstored().write(&abs("vm-data/binary"), b"\xff\xfe");
    // Not started (`nova-agent resetnetwork` at boot): a connection of its own.
    assert_eq!(
        exchange
            .metadata_read("vm-data/hostname")
            .unwrap()
            .as_deref(),
        Some("guest-1")
    );
    exchange.start().unwrap();
    wait_connected(&exchange);
    assert_eq!(
        exchange
            .metadata_read("vm-data/hostname")
            .unwrap()
            .as_deref(),
        Some("guest-1")
    );
    assert_eq!(exchange.metadata_read("vm-data/none").unwrap(), None);
    let error = exchange.metadata_read("vm-data/binary").unwrap_err();
    assert!(error.to_string().contains("not valid UTF-8"), "{error}");
    assert!(exchange
        .metadata_list("vm-data")
        .unwrap()
        .contains(&"hostname".to_owned()));
    assert!(exchange.metadata_list("vm-data/none").unwrap().is_empty());
    assert!(exchange.metadata_read("vm data").is_err());
}

#[test]
fn a_request_gone_before_it_is_read_is_skipped() {
    let exchange = exchange("vanish");
    let core = &exchange.core;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = runtime.block_on(async {
        let xs = XsTokio::new().await.unwrap();
        examine(core, &xs, "ghost").await
    });
    assert!(matches!(found, Ok(Found::Nothing)));
}

#[test]
fn a_value_that_is_not_utf8_reaches_the_parser_as_unreadable() {
    let exchange = exchange("binary");
    xenstored().write(&abs("binary/host/x"), b"{\"name\": \"\xff\"}");
    exchange.start().unwrap();
    let request = next_request(&exchange);
    assert_eq!(request, Incoming::unreadable("x", "Request is malformed"));
}

#[test]
fn a_response_too_big_for_one_write_is_dropped_without_breaking_the_connection() {
    let exchange = exchange("big");
    xenstored().write(&abs("big/host/a"), b"{}");
    exchange.start().unwrap();
    next_request(&exchange);
    exchange.respond("a", &[b'x'; 4096]).unwrap();
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("big/host/a")).is_none()));
    assert_eq!(xenstored().read(&abs("big/guest/a")), None);

    // Still connected: the next request is served.
    xenstored().write(&abs("big/host/b"), b"{}");
    assert_eq!(next_request(&exchange).id, "b");
    exchange.respond("b", b"ok").unwrap();
    assert_eq!(
        xenstored().wait_for(&abs("big/guest/b"), WAIT).as_deref(),
        Some(&b"ok"[..])
    );
}

#[test]
fn an_empty_response_removes_the_request_without_writing_one() {
    let exchange = exchange("silent");
    xenstored().write(&abs("silent/host/q"), b"{}");
    exchange.start().unwrap();
    assert_eq!(next_request(&exchange), Incoming::request("q", &b"{}"[..]));
    exchange.respond("q", b"").unwrap();
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("silent/host/q")).is_none()));
    assert_eq!(xenstored().read(&abs("silent/guest/q")), None);

    // Neither taken again nor in the way of the next one.
    xenstored().write(&abs("silent/host/r"), b"{}");
    assert_eq!(next_request(&exchange).id, "r");
    exchange.respond("r", b"ok").unwrap();
    assert_eq!(
        xenstored()
            .wait_for(&abs("silent/guest/r"), WAIT)
            .as_deref(),
        Some(&b"ok"[..])
    );
}

#[test]
fn a_restarted_channel_finds_the_requests_its_stop_left_waiting() {
    let exchange = exchange("restart");
    exchange.start().unwrap();
    wait_connected(&exchange);
    xenstored().write(&abs("restart/host/one"), b"{}");
    xenstored().write(&abs("restart/host/two"), b"{}");
    let first = next_request(&exchange);
    // The second is queued; wait until it is, then stop the channel.
    std::thread::sleep(Duration::from_millis(100));
    exchange.shutdown();
    assert!(exchange.next().unwrap().is_none());
    exchange.respond(&first.id, b"done").unwrap();
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("restart/host/one")).is_none()));

    exchange.start().unwrap();
    let again = next_request(&exchange);
    assert_eq!(again.id, "two");
    assert_eq!(
        xenstored().read(&abs("restart/guest/one")).as_deref(),
        Some(&b"done"[..])
    );
}

#[test]
fn a_request_directory_too_big_to_list_is_served_as_it_changes() {
    let exchange = Arc::new(exchange("many"));
    // 150 names of 40 bytes: more than one 4096-byte DIRECTORY reply holds.
    let ids: Vec<String> = (0..150).map(|i| format!("{i:0>40}")).collect();
    for id in &ids {
        xenstored().write(&abs(&format!("many/host/{id}")), b"{}");
    }
    exchange.start().unwrap();
    let (served_tx, served) = std::sync::mpsc::channel();
    let worker = Arc::clone(&exchange);
    std::thread::spawn(move || {
        while let Ok(Some(request)) = worker.next() {
            worker.respond(&request.id, b"ok").unwrap();
            let _ = served_tx.send(request.id);
        }
    });
    wait_connected(&exchange);

    // A new request is served at once through its event.
    xenstored().write(&abs("many/host/new"), b"{}");
    assert_eq!(served.recv_timeout(WAIT).unwrap(), "new");

    // The host gives up on 60 of them; the listing fits again, and the
    // other 90 are served.
    for id in &ids[..60] {
        xenstored().remove(&abs(&format!("many/host/{id}")));
    }
    let mut rest: Vec<String> = (0..90)
        .map(|_| served.recv_timeout(WAIT).unwrap())
        .collect();
    rest.sort();
    assert_eq!(rest, ids[60..]);
    exchange.shutdown();
}

/// Waits until `path` does not exist.
fn wait_no_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + WAIT;
    while path.symlink_metadata().is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{path:?} still exists"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_request_is_marked_taken_while_it_runs_and_unmarked_once_answered() {
    use std::os::unix::fs::PermissionsExt;
    let exchange = exchange("mark");
    xenstored().write(&abs("mark/host/m"), b"{}");
    exchange.start().unwrap();
    assert_eq!(next_request(&exchange), Incoming::request("m", &b"{}"[..]));
    let marker = marker("mark", "m");
    assert!(marker.is_file(), "no marker at {marker:?}");
    let dir = std::fs::metadata(marker.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);

    exchange.respond("m", b"ok").unwrap();
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("mark/host/m")).is_none()));
    wait_no_file(&marker);
    assert_eq!(
        xenstored().read(&abs("mark/guest/m")).as_deref(),
        Some(&b"ok"[..])
    );
}

#[test]
fn a_request_the_agent_died_running_is_answered_without_running_it_again() {
    let name = "died";
    let taken = marker(name, "x").parent().unwrap().to_owned();
    std::fs::create_dir_all(&taken).unwrap();
    // Left by an agent that died: running `crashed`, and after writing the
    // response to `answered`; `gone`'s request no longer exists.
    for id in ["crashed", "answered", "gone"] {
        std::fs::write(taken.join(id), b"").unwrap();
    }
    xenstored().write(&abs("died/host/crashed"), b"{\"name\": \"segfault\"}");
    xenstored().write(&abs("died/host/answered"), b"{}");
    xenstored().write(&abs("died/guest/answered"), b"earlier");
    let exchange = exchange(name);
    exchange.start().unwrap();

    assert_eq!(
        next_request(&exchange),
        Incoming::unreadable("crashed", STOPPED)
    );
    wait_no_file(&taken.join("gone"));
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("died/host/answered")).is_none()));
    wait_no_file(&taken.join("answered"));
    assert!(taken.join("crashed").is_file());

    exchange.respond("crashed", b"stopped").unwrap();
    assert!(xenstored().wait_until(WAIT, |x| x.read(&abs("died/host/crashed")).is_none()));
    wait_no_file(&taken.join("crashed"));
    assert_eq!(
        xenstored().read(&abs("died/guest/crashed")).as_deref(),
        Some(&b"stopped"[..])
    );

    // Later requests run as usual.
    xenstored().write(&abs("died/host/fresh"), b"{}");
    assert_eq!(
        next_request(&exchange),
        Incoming::request("fresh", &b"{}"[..])
    );
    exchange.shutdown();
}
