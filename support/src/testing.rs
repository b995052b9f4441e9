//! Helpers for the plugins' tests (feature `testing`; a plugin enables it in
//! its dev-dependencies, so no plugin build carries them).

use std::io;

use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use std::sync::{Arc, Mutex};

/// Runs `body` with every `tracing` event of this thread, down to trace
/// level, written as plain text (no colours) into the returned string: for
/// tests that check what a command logs, and that no secret is logged at any
/// level.
///
/// The capture is the thread's default subscriber, so it wins over the log
/// bridge a `TestAgent` installs for the whole test binary.
pub fn captured_log(body: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    let bytes = crate::sync::lock(&buffer.0).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The settings of every property test: `cases` cases from a fixed seed, so
/// that a run is the same run every time (CI), unless `PROPTEST_CASES` or
/// `PROPTEST_RNG_SEED` ask for a longer or another one.
pub fn proptest_config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(15);
    }
    config
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_level_is_captured_as_plain_text() {
        let log = super::captured_log(|| {
            tracing::trace!("a trace line");
            tracing::warn!(key = 7, "a warning");
        });
        assert!(log.contains("a trace line"), "{log}");
        assert!(log.contains("a warning key=7"), "{log}");
        assert!(!log.contains('\u{1b}'), "no colour codes: {log:?}");
    }
}
