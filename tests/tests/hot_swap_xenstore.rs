//! Hot swap of the XenStore exchange itself, with the host writing requests
//! the whole time: the channel stops, its last requests are answered by the
//! old generation, and the new one picks up what waited in XenStore. Every
//! request is answered exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nova_agent_tests::dom0::{self, request_path, response_path};
use nova_agent_tests::xenstored::{FakeXenstored, JournalOp};
use nova_agent_tests::{nova, plugin, test_plugin, Sandbox};

const WAIT: Duration = Duration::from_secs(30);
const SWAPS: usize = 5;

#[test]
fn swapping_the_xenstore_exchange_under_load_answers_every_request_once() {
    let sandbox = Sandbox::with_xenstore("");
    sandbox.add_plugin(&test_plugin("probe"));
    let xenstored = Arc::new(FakeXenstored::start(sandbox.xenstored_socket()).unwrap());
    let agent = sandbox.start();
    agent.wait_for_logged("connected to XenStore", 1);

    // The host: a request every 2 ms, some of them slow enough to be in
    // flight when a swap stops the channel.
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let (xenstored, stop) = (Arc::clone(&xenstored), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = dom0::uuid();
                let (request, expected) = match sent.len() % 4 {
                    0 => (dom0::request("nap", "30"), nova("0", "slept 30 ms")),
                    _ => (dom0::request("version", "\"agent\""), nova("0", "2.0.0")),
                };
                xenstored.write(&request_path(&id), request.as_bytes());
                sent.push((id, expected));
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        })
    };

    let file = plugin("xenstore");
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    for swap in 1..=SWAPS {
        std::thread::sleep(Duration::from_millis(150));
        // A new inode with the same build: a new generation all the same.
        sandbox.install_as(&file, &name);
        agent.wait_for_logged("channel restarted on its new exchange", swap);
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    let sent = host.join().unwrap();
    assert!(sent.len() > 200, "only {} requests sent", sent.len());

    for (id, expected) in &sent {
        let found = xenstored.wait_for(&response_path(id), WAIT);
        let response = found.unwrap_or_else(|| panic!("request {id} unanswered:\n{}", agent.log()));
        assert_eq!(String::from_utf8(response).unwrap(), *expected);
    }
    assert!(xenstored.wait_until(WAIT, |x| x
        .children(&format!("{}/data/host", dom0::HOME))
        .is_none_or(|c| c.is_empty())));

    let journal: Vec<JournalOp> = xenstored.journal().into_iter().map(|(_, op)| op).collect();
    for (id, _) in &sent {
        let writes = journal
            .iter()
            .filter(|op| matches!(op, JournalOp::Write { path, .. } if *path == response_path(id)))
            .count();
        assert_eq!(writes, 1, "response to {id} written {writes} times");
    }
    let entry = sandbox.plugin_entry("xenstore");
    assert_eq!(entry["generation"], SWAPS as u64 + 1, "{entry:#}");
    assert_eq!(
        entry["superseded"]["generations"], SWAPS as u64,
        "{entry:#}"
    );
    eprintln!(
        "{} requests answered across {SWAPS} exchange swaps",
        sent.len()
    );
}
