//! Through Debian's `xenstore-*` tools. What they send (found with a
//! logging server and strace): xenstore-read a bare READ; xenstore-write,
//! -rm, -exists and -list wrap their requests in TRANSACTION_START /
//! TRANSACTION_END `T`; xenstore-ls DIRECTORY and READ (-p adds GET_PERMS);
//! xenstore-watch WATCH with the path as token. On E2BIG from DIRECTORY the
//! library falls back to DIRECTORY_PART.

use std::thread;
use std::time::{Duration, Instant};

use super::{run, run_ok, run_text, start, tool, Lines, Raw, TIMEOUT};
use crate::xenstored::{wire, FakeXenstored, JournalOp};

#[test]
fn tools_round_trip_absolute_and_relative_paths() {
    let (_dir, server) = start();
    run_ok(
        &server,
        "xenstore-write",
        &[
            "/local/domain/0/data/a",
            "one",
            "data/b",
            "two",
            "/vm/x",
            "",
        ],
    );
    assert_eq!(server.read("/local/domain/0/data/b").unwrap(), b"two");
    assert_eq!(server.read("/vm/x").unwrap(), b"");
    assert_eq!(server.read("/vm").unwrap(), b"", "parent created empty");

    assert_eq!(run_text(&server, "xenstore-read", &["data/a"]), "one\n");
    assert_eq!(
        run_text(&server, "xenstore-read", &["/local/domain/0/data/b"]),
        "two\n"
    );
    assert_eq!(run_text(&server, "xenstore-read", &["name"]), "Domain-0\n");
    assert_eq!(run_text(&server, "xenstore-list", &["data"]), "a\nb\n");
    assert_eq!(
        run_text(&server, "xenstore-ls", &["-f", "/local/domain/0/data"]),
        "/local/domain/0/data/a = \"one\"\n/local/domain/0/data/b = \"two\"\n"
    );
    let perms = run_text(&server, "xenstore-ls", &["-p", "/local/domain/0/data"]);
    assert!(perms.contains("(n0)"), "{perms}");

    assert!(run(&server, "xenstore-exists", &["data/a"])
        .status
        .success());
    run_ok(&server, "xenstore-rm", &["data/a"]);
    assert!(!run(&server, "xenstore-exists", &["data/a"])
        .status
        .success());
    assert!(
        !run(&server, "xenstore-exists", &["/local/domain/0/data/a"])
            .status
            .success()
    );
    run_ok(&server, "xenstore-rm", &["/vm"]);
    assert_eq!(server.read("/vm/x"), None);
    assert_eq!(server.children("/local/domain/0/data").unwrap(), ["b"]);
}

#[test]
fn non_utf8_values_are_unescaped_by_write_and_raw_with_read_r() {
    let (_dir, server) = start();
    // xenstore-write unescapes \xNN, \n, \\ ...; -R would write as is.
    run_ok(
        &server,
        "xenstore-write",
        &["/local/domain/0/x", r"\xff\xfe"],
    );
    assert_eq!(server.read("/local/domain/0/x").unwrap(), [0xff, 0xfe]);
    assert_eq!(run_ok(&server, "xenstore-read", &["-R", "x"]), [0xff, 0xfe]);
    // Without -R, xenstore-read escapes again and adds a newline.
    assert_eq!(run_text(&server, "xenstore-read", &["x"]), "\\xff\\xfe\n");

    run_ok(&server, "xenstore-write", &["-R", "y", r"\xff"]);
    assert_eq!(server.read("/local/domain/0/y").unwrap(), br"\xff");

    server.write("/local/domain/0/z", b"a\0b\xc3");
    assert_eq!(run_ok(&server, "xenstore-read", &["-R", "z"]), b"a\0b\xc3");
}

#[test]
fn a_missing_node_fails_the_tools() {
    let (_dir, server) = start();
    let output = run(&server, "xenstore-read", &["/local/domain/0/missing"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("couldn't read"));
    assert!(!run(&server, "xenstore-list", &["/missing"])
        .status
        .success());
    assert!(!run(&server, "xenstore-read", &["/bad path"])
        .status
        .success());
    // RM of a missing node is fine while its parent exists.
    run_ok(&server, "xenstore-rm", &["/local/domain/0/missing"]);
    assert!(!run(&server, "xenstore-rm", &["/missing/child"])
        .status
        .success());
}

#[test]
fn xenstore_watch_prints_events_for_a_write_and_an_rm() {
    let (_dir, server) = start();
    let mut relative = tool(&server, "xenstore-watch");
    relative.arg("data");
    let relative = Lines::spawn(relative);
    let mut absolute = tool(&server, "xenstore-watch");
    absolute.arg("/local/domain/0/data");
    let absolute = Lines::spawn(absolute);
    // The initial event carries the watched path as given.
    assert_eq!(relative.next(), "data");
    assert_eq!(absolute.next(), "/local/domain/0/data");

    run_ok(&server, "xenstore-write", &["data/host/1", "{}"]);
    assert_eq!(relative.next(), "data/host/1");
    assert_eq!(absolute.next(), "/local/domain/0/data/host/1");
    run_ok(&server, "xenstore-rm", &["/local/domain/0/data/host"]);
    assert_eq!(relative.next(), "data/host");
    assert_eq!(absolute.next(), "/local/domain/0/data/host");
    // Removing an ancestor fires the watches below it, with their own path.
    server.remove("/local/domain/0");
    assert_eq!(relative.next(), "data");
    assert_eq!(absolute.next(), "/local/domain/0/data");

    server.write("/local/domain/1/data/x", b"elsewhere");
    relative.assert_quiet(Duration::from_millis(200));
    assert_eq!(server.watches().len(), 2);
    drop((relative, absolute));
    assert!(server.wait_until(TIMEOUT, |s| s.connections() == 0));
    assert!(server.watches().is_empty());
}

#[test]
fn stop_and_resume_keep_the_store_and_clients_reconnect() {
    let (_dir, mut server) = start();
    run_ok(&server, "xenstore-write", &["data/x", "kept"]);
    let mut watcher = tool(&server, "xenstore-watch");
    watcher.arg("data");
    let watcher = Lines::spawn(watcher);
    assert_eq!(watcher.next(), "data");
    let mut raw = Raw::connect(&server);
    raw.ok(wire::WATCH, b"/\0t\0");
    raw.event("/", "t");
    assert_eq!(server.connections(), 2);

    server.stop();
    assert!(!server.socket().exists());
    assert_eq!(server.connections(), 0);
    assert!(server.watches().is_empty());
    assert!(
        wire::read_reply(&mut raw.stream).is_err(),
        "connection closed"
    );
    assert!(!run(&server, "xenstore-read", &["data/x"]).status.success());
    // The direct access keeps working, without anyone to notify.
    server.write("/local/domain/0/data/y", b"offline");

    server.resume().unwrap();
    assert_eq!(run_text(&server, "xenstore-read", &["data/x"]), "kept\n");
    assert_eq!(run_text(&server, "xenstore-read", &["data/y"]), "offline\n");
    let mut raw = Raw::connect(&server);
    raw.ok(wire::WATCH, b"data\0again\0");
    raw.event("data", "again");
    run_ok(&server, "xenstore-write", &["data/z", "1"]);
    raw.event("data/z", "again");
    // The old xenstore-watch lost its connection: no events for it (the tool
    // does not notice and stays blocked).
    watcher.assert_quiet(Duration::from_millis(200));
    let writes = server
        .journal()
        .iter()
        .filter(|(_, op)| matches!(op, JournalOp::Write { .. }))
        .count();
    assert_eq!(writes, 3);
}

#[test]
fn an_oversized_header_disconnects_only_that_client() {
    let (_dir, server) = start();
    let mut bad = Raw::connect(&server);
    let mut good = Raw::connect(&server);
    assert_eq!(
        good.call(wire::READ, 0, b"name\0"),
        (wire::READ, b"Domain-0".to_vec())
    );
    // Only the header: the server must not wait for 4097 bytes.
    let header = wire::message(wire::READ, 1, 0, &[]);
    let mut header = header[..12].to_vec();
    header.extend_from_slice(&4097u32.to_ne_bytes());
    std::io::Write::write_all(&mut bad.stream, &header).unwrap();
    assert!(wire::read_reply(&mut bad.stream).is_err(), "closed");
    assert!(server.wait_until(TIMEOUT, |s| s.connections() == 1));
    assert_eq!(
        good.call(wire::READ, 0, b"name\0"),
        (wire::READ, b"Domain-0".to_vec())
    );
    assert_eq!(run_text(&server, "xenstore-read", &["name"]), "Domain-0\n");
}

#[test]
fn a_big_directory_is_listed_through_directory_part() {
    let (_dir, server) = start();
    let names: Vec<String> = (0..400).map(|i| format!("child-number-{i:04}")).collect();
    for name in &names {
        server.write(&format!("/big/{name}"), b"");
    }
    let mut raw = Raw::connect(&server);
    raw.error(wire::DIRECTORY, 0, b"/big\0", "E2BIG");
    let listed = run_text(&server, "xenstore-list", &["/big"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), names);
}

#[test]
fn the_journal_orders_what_clients_did() {
    let (_dir, server) = start();
    server.write("/local/domain/0/data/host/X", b"{\"name\":\"version\"}");
    run_ok(&server, "xenstore-write", &["data/guest/X", "{\"ok\":1}"]);
    run_ok(&server, "xenstore-rm", &["data/host/X"]);
    let mut raw = Raw::connect(&server);
    raw.ok(wire::MKDIR, b"/m\0");
    raw.ok(wire::SET_PERMS, b"/m\0n0\0");

    let journal = server.journal();
    let ops: Vec<&JournalOp> = journal.iter().map(|(_, op)| op).collect();
    let path = |p: &str| format!("/local/domain/0/data/{p}");
    assert_eq!(
        ops,
        [
            &JournalOp::Write {
                path: path("host/X"),
                len: 18
            },
            &JournalOp::Write {
                path: path("guest/X"),
                len: 8
            },
            &JournalOp::Remove {
                path: path("host/X")
            },
            &JournalOp::Mkdir { path: "/m".into() },
            &JournalOp::SetPerms { path: "/m".into() },
        ]
    );
    let conns: Vec<u64> = journal.iter().map(|(c, _)| *c).collect();
    assert_eq!(conns[0], 0, "direct access");
    assert_eq!(conns[1..4], [1, 2, 3], "one connection per tool run");
    assert_eq!(conns[3], conns[4]);
}

#[test]
fn concurrent_tools_all_land_and_wait_for_sees_them() {
    let (_dir, server) = start();
    thread::scope(|scope| {
        for t in 0..8 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..5 {
                    let path = format!("/c/{t}/{i}");
                    run_ok(server, "xenstore-write", &[&path, &format!("{t}.{i}")]);
                }
            });
        }
        let late = scope.spawn(|| {
            thread::sleep(Duration::from_millis(100));
            run_ok(&server, "xenstore-write", &["/late", "now"]);
        });
        assert_eq!(server.wait_for("/late", TIMEOUT).unwrap(), b"now");
        late.join().unwrap();
    });
    for t in 0..8 {
        assert_eq!(server.children(&format!("/c/{t}")).unwrap().len(), 5);
    }
    assert_eq!(server.read("/c/7/4").unwrap(), b"7.4");
    assert_eq!(server.journal().len(), 41);
    assert!(server.wait_until(TIMEOUT, |s| s.connections() == 0));
    assert_eq!(server.wait_for("/never", Duration::from_millis(50)), None);
}

#[test]
fn dropping_the_server_with_busy_clients_is_quick() {
    let (_dir, server) = start();
    let mut watcher = tool(&server, "xenstore-watch");
    watcher.arg("/");
    let watcher = Lines::spawn(watcher);
    assert_eq!(watcher.next(), "/");
    // Watches everything, asks for 600 KB of replies and reads nothing: its
    // writer thread is blocked in write() when the server goes.
    let mut idle = Raw::connect(&server);
    idle.send(wire::WATCH, 0, b"/\0t\0");
    server.write("/big", &[b'x'; 4000]);
    for _ in 0..150 {
        idle.send(wire::READ, 0, b"/big\0");
    }
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn start_replaces_a_stale_socket_but_not_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "stale socket file left behind");
    let server = FakeXenstored::start(&socket).unwrap();
    let second = FakeXenstored::start(&socket);
    assert_eq!(
        second.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::AddrInUse)
    );
    assert_eq!(run_text(&server, "xenstore-read", &["name"]), "Domain-0\n");
    drop(server);
    assert!(!socket.exists());

    std::fs::write(&socket, "not a socket").unwrap();
    assert!(FakeXenstored::start(&socket).is_err());
    assert_eq!(std::fs::read(&socket).unwrap(), b"not a socket");
}
