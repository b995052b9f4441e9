//! `thaw_after`: one background thread that thaws the filesystems when the
//! host froze them and never came back (qemu-ga would stay frozen for ever).
//!
//! The thread runs only while a deadline is pending and ends at the
//! plugin's `on_shutdown`, so a replaced build leaves nothing running.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nova_agent_support::sync::{lock, wait_timeout};

/// What the deadline runs: thaw, if nothing armed or disarmed the watchdog
/// since the deadline (`generation` says which arming it was).
pub(crate) trait Overdue: Send + Sync + 'static {
    fn overdue(&self, generation: u64, after: Duration);
}

pub(crate) struct Watchdog {
    /// `None`: `thaw_after` is off, and nothing is ever armed.
    after: Option<Duration>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    /// Counts every arm and disarm, so that a deadline taken just before a
    /// new freeze does not thaw that freeze.
    generation: u64,
    stopped: bool,
    running: bool,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn new(after: Option<Duration>) -> Watchdog {
        Watchdog {
            after,
            shared: Arc::default(),
        }
    }

    /// Sets the deadline to `thaw_after` from now, replacing any other, and
    /// starts the thread if it is not running.
    pub(crate) fn arm(&self, target: Weak<dyn Overdue>) {
        let Some(after) = self.after else {
            return;
        };
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return;
        }
        state.generation += 1;
        state.deadline = Some(Instant::now() + after);
        if !state.running {
            // A thread that found nothing to wait for has left, or is
            // leaving without taking the lock again.
            if let Some(finished) = state.thread.take() {
                let _ = finished.join();
            }
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("qga-fs thaw_after".into())
                .spawn(move || run(&shared, &target, after));
            match spawned {
                Ok(thread) => {
                    state.running = true;
                    state.thread = Some(thread);
                }
                Err(e) => tracing::warn!("cannot start the thaw_after thread: {e}"),
            }
        }
        self.shared.wake.notify_all();
    }

    /// Drops the deadline: the filesystems were thawed.
    pub(crate) fn disarm(&self) {
        let mut state = lock(&self.shared.state);
        state.generation += 1;
        state.deadline = None;
        self.shared.wake.notify_all();
    }

    /// The current arming, for [`Overdue::overdue`] to compare with.
    pub(crate) fn generation(&self) -> u64 {
        lock(&self.shared.state).generation
    }

    /// Ends the thread and waits for it; nothing arms after this.
    pub(crate) fn stop(&self) {
        let thread = {
            let mut state = lock(&self.shared.state);
            state.stopped = true;
            state.deadline = None;
            self.shared.wake.notify_all();
            state.thread.take()
        };
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Whether the thread is running (for tests).
    #[cfg(test)]
    pub(crate) fn running(&self) -> bool {
        lock(&self.shared.state).running
    }
}

fn run(shared: &Shared, target: &Weak<dyn Overdue>, after: Duration) {
    let mut state = lock(&shared.state);
    while !state.stopped {
        let Some(deadline) = state.deadline else {
            break;
        };
        let now = Instant::now();
        if now < deadline {
            state = wait_timeout(&shared.wake, state, deadline - now);
            continue;
        }
        state.deadline = None;
        let generation = state.generation;
        drop(state);
        if let Some(target) = target.upgrade() {
            target.overdue(generation, after);
        }
        state = lock(&shared.state);
    }
    state.running = false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::wait_for;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64);

    impl Overdue for Count {
        fn overdue(&self, generation: u64, _after: Duration) {
            self.0.store(generation, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_deadline_fires_once_with_its_generation_and_the_thread_leaves() {
        let target = Arc::new(Count::default());
        let weak: Weak<dyn Overdue> = Arc::downgrade(&target) as Weak<dyn Overdue>;
        let watchdog = Watchdog::new(Some(Duration::from_millis(10)));
        watchdog.arm(weak.clone());
        wait_for("the deadline", || target.0.load(Ordering::SeqCst) == 1);
        wait_for("the thread to leave", || !watchdog.running());
        // A later arming starts a new thread.
        watchdog.arm(weak);
        wait_for("the second deadline", || {
            target.0.load(Ordering::SeqCst) == 2
        });
        watchdog.stop();
    }

    #[test]
    fn disarming_and_stopping_keep_the_deadline_from_firing() {
        let target = Arc::new(Count::default());
        let weak: Weak<dyn Overdue> = Arc::downgrade(&target) as Weak<dyn Overdue>;
        let watchdog = Watchdog::new(Some(Duration::from_secs(3600)));
        watchdog.arm(weak.clone());
        assert!(watchdog.running());
        watchdog.disarm();
        wait_for("the thread to leave", || !watchdog.running());
        watchdog.arm(weak.clone());
        watchdog.stop();
        assert!(!watchdog.running());
        watchdog.arm(weak);
        assert!(!watchdog.running(), "nothing arms after stop");
        assert_eq!(target.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn thaw_after_off_never_starts_a_thread() {
        let target = Arc::new(Count::default());
        let watchdog = Watchdog::new(None);
        watchdog.arm(Arc::downgrade(&target) as Weak<dyn Overdue>);
        assert!(!watchdog.running());
    }
}
