//! `fake-xenstored SOCKET`: the test suite's fake XenStore daemon
//! (`nova_agent_tests::xenstored`) as a program, for manual demos:
//!
//! ```text
//! fake-xenstored /tmp/xs.sock &
//! XENSTORED_PATH=/tmp/xs.sock xenstore-write data/host/1 '{"name":"version"}'
//! ```
//!
//! Prints `listening on SOCKET` once ready, then every change clients make.
//! Runs until SIGTERM, SIGINT or EOF on stdin (so a harness holding its
//! stdin pipe stops it by dropping it; from a shell script, keep stdin open,
//! e.g. `sleep infinity | fake-xenstored SOCKET`).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use nova_agent_tests::xenstored::FakeXenstored;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [socket] = &args[..] else {
        eprintln!("usage: fake-xenstored SOCKET");
        return ExitCode::from(2);
    };
    let handler = on_signal as extern "C" fn(libc::c_int);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
    let server = match FakeXenstored::start(Path::new(socket)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("fake-xenstored: {}: {e}", Path::new(socket).display());
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout();
    let _ = writeln!(out, "listening on {}", server.socket().display());
    let _ = out.flush();
    thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        STOP.store(true, Ordering::SeqCst);
    });
    let mut shown = 0;
    while !STOP.load(Ordering::SeqCst) {
        server.wait_until(Duration::from_millis(100), |s| s.journal().len() > shown);
        let journal = server.journal();
        for (conn, op) in &journal[shown..] {
            let _ = writeln!(out, "connection {conn}: {op:?}");
        }
        let _ = out.flush();
        shown = journal.len();
    }
    ExitCode::SUCCESS
}
