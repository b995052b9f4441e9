//! The XenStore thread's outer loop: connect, run a session until the
//! connection fails, back off, reconnect; logged once per outage.
//!
//! Nothing is lost across an outage: requests stay in XenStore until they are
//! answered, and a response whose write failed is kept and written first on
//! the next connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use xenstore_rs::tokio::XsTokio;

use crate::core::{op, Core};
use crate::session::{self, End};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// The socket xenstore-rs tries first (then the xenbus device).
fn socket_path() -> String {
    std::env::var("XENSTORED_PATH").unwrap_or_else(|_| "/run/xenstored/socket".to_owned())
}

/// What the agent's side sends the XenStore thread.
pub(crate) enum Job {
    /// A response to write, then its request to remove.
    Respond { id: String, response: String },
    /// Look at every waiting request again (after the queue was reopened).
    Rescan,
    /// Finish the writes under way and end the thread.
    Stop,
}

pub(crate) async fn serve(core: &Arc<Core>, mut jobs: UnboundedReceiver<Job>) {
    let mut outage = Outage::default();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connected = tokio::select! {
            connected = op(XsTokio::new()) => connected,
            () = park_jobs(core, &mut jobs) => return,
        };
        let reason = match connected {
            Ok(xs) => match session::run(core, xs, &mut jobs, &mut outage).await {
                End::Stop => return,
                End::Lost(reason) => {
                    backoff = FIRST_BACKOFF;
                    reason
                }
                End::Refused(reason) => reason,
            },
            Err(e) => format!(
                "cannot connect to {} or {XENBUS_DEVICE}: {e}",
                socket_path()
            ),
        };
        outage.down(&reason);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = park_jobs(core, &mut jobs) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// While there is no connection: keeps responses for later; returns on
/// `Stop`.
async fn park_jobs(core: &Core, jobs: &mut UnboundedReceiver<Job>) {
    loop {
        match jobs.recv().await {
            Some(Job::Respond { id, response }) => core.keep_unwritten(id, response),
            Some(Job::Rescan) => {}
            Some(Job::Stop) | None => return,
        }
    }
}

/// Logs an outage once when it starts and once when it ends.
#[derive(Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
    was_up: bool,
}

impl Outage {
    pub(crate) fn down(&mut self, reason: &str) {
        if self.since.is_some() {
            tracing::debug!("XenStore still unreachable: {reason}");
            return;
        }
        self.since = Some(Instant::now());
        if self.was_up {
            tracing::warn!("lost the XenStore connection ({reason}); reconnecting");
        } else {
            tracing::warn!("XenStore is not reachable ({reason}); retrying until it is");
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
