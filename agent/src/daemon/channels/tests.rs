//! The request loop end to end: the toy plugin's `queue` exchange feeds a
//! channel, and what it was answered is checked.

use std::sync::Arc;

use nova_agent_plugin_api::Incoming;

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
