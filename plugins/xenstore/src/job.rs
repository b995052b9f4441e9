//! The messages and the state that the XenStore thread's loop (`link`) and a
//! connection's work (`session`) share: the jobs the agent's side sends, and
//! the outage being logged across reconnections.

use std::time::Instant;

/// What the agent's side sends the XenStore thread.
pub(crate) enum Job {
    /// Answers a request: writes its response (none when `None`), then
    /// removes the request.
    Respond {
        id: String,
        response: Option<String>,
    },
    /// Look at every waiting request again (after the queue was reopened).
    Rescan,
    /// Finish the writes under way and end the thread.
    Stop,
}

/// Logs an outage once when it starts and once when it ends.
#[derive(Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
    was_up: bool,
}

impl Outage {
    /// `present`: this machine shows some sign of Xen. Without one (a KVM
    /// guest, whose agent serves QGA) the wait is normal, and said at info.
    pub(crate) fn down(&mut self, reason: &str, present: bool) {
        if self.since.is_some() {
            tracing::debug!("XenStore still unreachable: {reason}");
            return;
        }
        self.since = Some(Instant::now());
        if self.was_up {
            tracing::warn!("lost the XenStore connection ({reason}); reconnecting");
        } else if present {
            tracing::warn!("XenStore is not reachable ({reason}); retrying until it is");
        } else {
            tracing::info!(
                "XenStore is not reachable ({reason}); this machine shows no sign of Xen, \
                 so the channel waits quietly"
            );
        }
    }

    pub(crate) fn up(&mut self) {
        match self.since.take() {
            Some(since) if self.was_up => tracing::info!(
                "XenStore connection restored after {:.1} s",
                since.elapsed().as_secs_f64()
            ),
            _ => tracing::info!("connected to XenStore"),
        }
        self.was_up = true;
    }
}
