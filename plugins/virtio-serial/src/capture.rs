//! Log capture for the tests: one global subscriber, installed once, that
//! writes each event into a buffer of the thread that emitted it, while that
//! thread captures.
//!
//! Not `nova_agent_support::testing::captured_log`: that one is a scoped
//! subscriber, and tracing caches each call site's interest globally, so a
//! call site first reached by a test thread that was not capturing can stay
//! silent for another test that is (seen here as a missing "opened" line
//! when tests run in parallel). With one global subscriber interested in
//! everything there is nothing to race.

use std::cell::RefCell;
use std::io;
use std::sync::Once;

thread_local! {
    static BUFFER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

struct ThreadBuffer;

impl io::Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        BUFFER.with(|b| {
            if let Some(buffer) = b.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `body` and returns what this thread logged meanwhile, every level,
/// as plain text.
pub(crate) fn captured_log(body: impl FnOnce()) -> String {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| ThreadBuffer)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    BUFFER.with(|b| *b.borrow_mut() = Some(Vec::new()));
    body();
    let bytes = BUFFER.with(|b| b.borrow_mut().take()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
