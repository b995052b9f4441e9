//! The request loop end to end: the toy plugin's `queue` exchange feeds a
//! channel, and what it was answered is checked.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nova_agent_plugin_api::{Call, Command, CommandError, Host, Incoming, PluginError, Provides};
use nova_agent_support::sync::{lock, wait, wait_timeout};
use serde_json::Value;

use super::{Channels, Shared};
use crate::plugins::testing::{self, Queue, ToyAgent};

/// A running `queue` + `parser` channel, and the queue.
fn serve(parser: &str, deny: &[&str]) -> (Channels, ToyAgent, Arc<Queue>, impl Drop) {
    let serial = testing::serial();
    let queue = Queue::shared();
    queue.reset();
    let config = testing::config(parser, deny);
    let agent = ToyAgent::new(&config);
    let shared = Arc::new(Shared {
        table: Arc::clone(&agent.serving),
        policy: Arc::clone(&agent.policy),
        stopping: Arc::default(),
        in_flight: Default::default(),
        waker: Default::default(),
    });
    let mut channels = Channels::new(&config.channels);
    let all = channels.stale(&agent.registry);
    assert!(channels.start(&all, &agent.registry, &shared).is_empty());
    assert_eq!(channels.views()[0].error, None);
    (channels, agent, queue, serial)
}

fn text(answers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    answers
        .iter()
        .map(|(id, bytes)| (id.clone(), String::from_utf8_lossy(bytes).into_owned()))
        .collect()
}

fn answer(id: &str, text: &str) -> (String, String) {
    (id.to_owned(), text.to_owned())
}

#[test]
fn each_input_is_decoded_dispatched_encoded_and_answered_once() {
    let (mut channels, _agent, queue, _serial) = serve("lines", &["big"]);
    queue.push(Incoming::request("1", "echo 1"));
    queue.push(Incoming::request("2", "nope 2"));
    queue.push(Incoming::request("3", "quiet 3"));
    queue.push(Incoming::request("4", "big 4"));
    queue.push(Incoming::unreadable("5", "too large"));
    queue.push(Incoming::request("6", "panics 0"));
    let answered = text(&queue.answered(6));
    channels.stop_all();
    assert_eq!(answered.len(), 6);
    for expected in [
        answer("1", "ok [\"queue+lines\",\"1\"]\n"),
        answer("2", "err UnknownCommand \n"),
        // A success the command wants unanswered: responded with nothing.
        answer("3", ""),
        answer("4", "err Disabled \n"),
        answer("5", "unreadable too large\n"),
        answer(
            "6",
            "err Panicked command 'panics' failed unexpectedly; see the agent's log\n",
        ),
    ] {
        assert!(answered.contains(&expected), "{expected:?} in {answered:?}");
    }
}

#[test]
fn a_response_over_the_exchanges_limit_becomes_an_error() {
    let (mut channels, _agent, queue, _serial) = serve("lines", &[]);
    queue.push(Incoming::request("1", "big 200"));
    let answered = text(&queue.answered(1));
    channels.stop_all();
    assert_eq!(
        answered,
        [answer(
            "1",
            "err Failed Response too large (206 bytes; the limit is 100)\n"
        )]
    );
}

#[test]
fn a_parser_that_fails_to_decode_answers_an_internal_error() {
    let (mut channels, agent, queue, _serial) = serve("lines", &[]);
    queue.push(Incoming::request("1", "!"));
    let answered = text(&queue.answered(1));
    channels.stop_all();
    assert_eq!(
        answered,
        [answer(
            "1",
            "err Failed internal error in the agent's parser\n"
        )]
    );
    let toy = &agent.registry.table.parsers["lines"].instance;
    // One failed decode (the parser), one answer delivered (the exchange).
    assert_eq!(toy.requests(), (2, 1));
}

#[test]
fn streams_are_decoded_across_chunks_and_forgotten_at_their_end() {
    let (mut channels, _agent, queue, _serial) = serve("lines", &[]);
    queue.push(Incoming::stream("1", "a", b"echo 1\necho ".to_vec()));
    assert_eq!(queue.answered(1).len(), 1);
    // Two calls in one input, answered together, in order.
    queue.push(Incoming::stream("2", "b", b"echo 3\necho 4\n".to_vec()));
    assert_eq!(queue.answered(2).len(), 2);
    queue.push(Incoming::stream("3", "a", b"2\n".to_vec()));
    assert_eq!(queue.answered(3).len(), 3);
    queue.push(Incoming {
        id: "4".into(),
        input: nova_agent_plugin_api::Input::StreamEnd { stream: "a".into() },
    });
    assert_eq!(queue.answered(4).len(), 4);
    queue.push(Incoming::stream("5", "a", b"\n".to_vec()));
    let answered = text(&queue.answered(5));
    channels.stop_all();
    assert_eq!(
        answered,
        [
            answer("1", "ok [\"queue+lines\",\"1\"]\n"),
            answer(
                "2",
                "ok [\"queue+lines\",\"3\"]\nok [\"queue+lines\",\"4\"]\n"
            ),
            answer("3", "ok [\"queue+lines\",\"2\"]\n"),
            answer("4", ""),
            // A fresh decoder: the empty line names the command "".
            answer("5", "err UnknownCommand \n"),
        ]
    );
}

#[test]
fn a_parser_without_streams_answers_stream_input_with_nothing() {
    let (mut channels, _agent, queue, _serial) = serve("framed", &[]);
    queue.push(Incoming::stream("1", "a", b"echo 1\n".to_vec()));
    queue.push(Incoming::request("2", "echo 2"));
    let answered = text(&queue.answered(2));
    channels.stop_all();
    assert!(answered.contains(&answer("1", "")));
    assert!(answered.contains(&answer("2", "ok [\"queue+framed\",\"2\"]\n")));
}

/// The `holder` plugin's state: `hold` blocks until released, `count`
/// counts its runs.
#[derive(Default)]
struct Held {
    holding: bool,
    released: bool,
    counted: usize,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    holding: false,
    released: false,
    counted: 0,
});
static HELD_CHANGED: Condvar = Condvar::new();

struct Hold;

impl Command for Hold {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        let mut held = lock(&HELD);
        held.holding = true;
        HELD_CHANGED.notify_all();
        while !held.released {
            held = wait(&HELD_CHANGED, held);
        }
        Ok(Value::Null)
    }
}

struct Count;

impl Command for Count {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        lock(&HELD).counted += 1;
        Ok(Value::Null)
    }
}

fn holder(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("hold", Hold)
        .command("count", Count))
}

/// [`serve`] with the `holder` plugin beside the toy, and the channels'
/// shared state.
fn serve_holding(parser: &str) -> (Channels, Arc<Shared>, Arc<Queue>, impl Drop) {
    let serial = testing::serial();
    *lock(&HELD) = Held::default();
    let queue = Queue::shared();
    queue.reset();
    let config = testing::config(parser, &[]);
    let agent = ToyAgent::new(&config);
    let held = testing::instance("holder", testing::ffi_init!(holder), 1, &agent.host)
        .expect("the holder plugin loads");
    let toy = Arc::clone(agent.registry.instances().next().unwrap());
    let registry = testing::registry(vec![toy, held], &config);
    agent.serving.store(Arc::clone(&registry.table));
    let shared = Arc::new(Shared {
        table: Arc::clone(&agent.serving),
        policy: Arc::clone(&agent.policy),
        stopping: Arc::default(),
        in_flight: Default::default(),
        waker: Default::default(),
    });
    let mut channels = Channels::new(&config.channels);
    let all = channels.stale(&registry);
    assert!(channels.start(&all, &registry, &shared).is_empty());
    (channels, shared, queue, serial)
}

fn wait_until_holding() {
    let mut held = lock(&HELD);
    while !held.holding {
        held = wait_timeout(&HELD_CHANGED, held, Duration::from_secs(10));
    }
}

fn release() {
    lock(&HELD).released = true;
    HELD_CHANGED.notify_all();
}

#[test]
fn an_abandoned_input_gets_what_it_produced_and_stopping_for_the_rest_once() {
    let (mut channels, shared, queue, _serial) = serve_holding("lines");
    assert!(
        shared.in_flight.abandon().is_empty(),
        "nothing is in flight"
    );
    queue.push(Incoming::stream(
        "1",
        "a",
        b"echo 1\nhold\ncount\n".to_vec(),
    ));
    wait_until_holding();
    let abandoned = shared.in_flight.abandon();
    assert_eq!(abandoned.len(), 1);
    abandoned.into_iter().for_each(|a| a.send());
    let stopping = format!("err Failed {}\n", super::in_flight::STOPPING);
    assert_eq!(
        text(&queue.answered(1)),
        [answer(
            "1",
            &format!("ok [\"queue+lines\",\"1\"]\n{stopping}{stopping}")
        )]
    );
    // Claimed once: a second stop finds nothing.
    assert!(shared.in_flight.abandon().is_empty());

    release();
    queue.push(Incoming::request("2", "echo 2"));
    queue.answered(2);
    channels.stop_all();
    // Every worker is joined: the held one answered nothing more and ran
    // none of the input's later calls.
    let answered = text(&queue.answered(0));
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert_eq!(answered[1], answer("2", "ok [\"queue+lines\",\"2\"]\n"));
    assert_eq!(lock(&HELD).counted, 0);
}

#[test]
fn a_request_finished_in_time_is_answered_by_its_worker() {
    let (mut channels, shared, queue, _serial) = serve_holding("framed");
    queue.push(Incoming::request("1", "hold"));
    wait_until_holding();
    release();
    assert_eq!(text(&queue.answered(1)), [answer("1", "ok null\n")]);
    channels.stop_all();
    assert!(shared.in_flight.abandon().is_empty());
    assert_eq!(queue.answered(0).len(), 1);
}
