//! The hand-over between the XenStore thread, which finds requests, and the
//! agent's workers, which block in `next` until one is there.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use nova_agent_plugin_api::Incoming;
use nova_agent_support::sync::{lock, wait};

#[derive(Default)]
pub(crate) struct RequestQueue {
    state: Mutex<State>,
    arrived: Condvar,
}

#[derive(Default)]
struct State {
    requests: VecDeque<Incoming>,
    closed: bool,
}

impl RequestQueue {
    /// Queues `request`; `false` (and dropped) when the queue is closed.
    pub(crate) fn push(&self, request: Incoming) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.requests.push_back(request);
        drop(state);
        self.arrived.notify_one();
        true
    }

    /// The next request; `None` once closed. Requests still queued at close
    /// stay unanswered in XenStore, where the next start finds them again.
    pub(crate) fn pop(&self) -> Option<Incoming> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return None;
            }
            if let Some(request) = state.requests.pop_front() {
                return Some(request);
            }
            state = wait(&self.arrived, state);
        }
    }

    /// Wakes every waiter with `None` and drops what was queued; returns the
    /// ids dropped.
    pub(crate) fn close(&self) -> Vec<String> {
        let mut state = lock(&self.state);
        state.closed = true;
        let dropped = state.requests.drain(..).map(|r| r.id).collect();
        drop(state);
        self.arrived.notify_all();
        dropped
    }

    pub(crate) fn reopen(&self) {
        lock(&self.state).closed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waiters_get_requests_in_order_then_none_when_closed() {
        let queue = Arc::new(RequestQueue::default());
        let waiter = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while let Some(request) = queue.pop() {
                    ids.push(request.id);
                }
                ids
            })
        };
        assert!(queue.push(Incoming::request("a", b"1".to_vec())));
        assert!(queue.push(Incoming::request("b", b"2".to_vec())));
        while !lock(&queue.state).requests.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(queue.close().is_empty());
        assert_eq!(waiter.join().unwrap(), ["a", "b"]);
    }

    #[test]
    fn close_returns_what_was_never_taken() {
        let queue = RequestQueue::default();
        assert!(queue.push(Incoming::request("a", Vec::new())));
        assert_eq!(queue.close(), ["a"]);
        assert!(queue.pop().is_none());
        assert!(!queue.push(Incoming::request("c", Vec::new())));
        queue.reopen();
        assert!(queue.push(Incoming::request("b", Vec::new())));
        assert_eq!(queue.pop().map(|r| r.id), Some("b".into()));
    }
}
