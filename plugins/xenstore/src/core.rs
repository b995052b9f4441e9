//! What the agent's workers and the XenStore thread share: the settings, the
//! queue of requests found, which ids are in flight (and their markers on
//! disk), the responses not yet written, and the live connection.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use nova_agent_support::sync::lock;
use xenstore_rs::tokio::XsTokio;

use crate::queue::RequestQueue;
use crate::settings::Settings;
use crate::taken::Taken;

/// How long one XenStore operation may take before the connection is taken
/// for dead: xenstore-rs waits forever for an answer that a dead xenstored
/// never sends.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Core {
    pub(crate) settings: Settings,
    pub(crate) queue: RequestQueue,
    /// The markers of requests handed to a worker, kept across restarts.
    pub(crate) taken: Taken,
    /// Ids taken and not yet answered and removed: queued, running, or with a
    /// response waiting to be written. A request is never taken twice.
    in_flight: Mutex<HashSet<String>>,
    /// Answers whose write (or, for `None`, whose request's removal) failed
    /// with the connection, or came while there was none; carried out first
    /// after reconnecting.
    unwritten: Mutex<HashMap<String, Option<String>>>,
    /// The live connection, for metadata reads from the workers.
    current: Mutex<Option<XsTokio>>,
}

impl Core {
    pub(crate) fn new(settings: Settings, taken: Taken) -> Core {
        Core {
            settings,
            queue: RequestQueue::default(),
            taken,
            in_flight: Mutex::default(),
            unwritten: Mutex::default(),
            current: Mutex::default(),
        }
    }

    /// Takes `id` for this agent; `false` if it already is.
    pub(crate) fn claim(&self, id: &str) -> bool {
        lock(&self.in_flight).insert(id.to_owned())
    }

    pub(crate) fn release(&self, id: &str) {
        lock(&self.in_flight).remove(id);
    }

    pub(crate) fn keep_unwritten(&self, id: String, response: Option<String>) {
        lock(&self.unwritten).insert(id, response);
    }

    pub(crate) fn take_unwritten(&self) -> Vec<(String, Option<String>)> {
        lock(&self.unwritten).drain().collect()
    }

    pub(crate) fn set_current(&self, xs: Option<XsTokio>) {
        *lock(&self.current) = xs;
    }

    pub(crate) fn current(&self) -> Option<XsTokio> {
        lock(&self.current).clone()
    }

    /// Closes the queue; what was queued but never taken is released, to be
    /// found again by a later scan.
    pub(crate) fn close_queue(&self) {
        for id in self.queue.close() {
            self.release(&id);
        }
    }
}

/// One XenStore operation, bounded by [`OP_TIMEOUT`].
pub(crate) async fn op<T>(operation: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(OP_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("XenStore did not answer within {OP_TIMEOUT:?}"),
            ))
        })
}

pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// xenstore-rs reports a value that is not UTF-8 as `InvalidData`.
pub(crate) fn is_not_text(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}
