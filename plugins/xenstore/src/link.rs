//! The XenStore thread's outer loop: connect, run a session until the
//! connection fails, back off, reconnect; logged once per outage.
//!
//! Nothing is lost across an outage: requests stay in XenStore until they are
//! answered, and a response whose write failed is kept and written first on
//! the next connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use xenstore_rs::tokio::XsTokio;

use crate::core::{op, Core};
use crate::job::{Job, Outage};
use crate::session::{self, End};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// Present in every Xen guest with the xenfs or xen drivers loaded.
const PROC_XEN: &str = "/proc/xen";

/// Whether this machine shows some sign of XenStore.
fn xen_present() -> bool {
    [socket_path().as_str(), XENBUS_DEVICE, PROC_XEN]
        .iter()
        .any(|path| std::path::Path::new(path).exists())
}

/// The socket xenstore-rs tries first (then the xenbus device).
fn socket_path() -> String {
    std::env::var("XENSTORED_PATH").unwrap_or_else(|_| "/run/xenstored/socket".to_owned())
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
        outage.down(&reason, xen_present());
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
