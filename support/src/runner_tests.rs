//! Tests of the runner: `apply = false`, captured output and exit status,
//! timeouts, missing programs, masked secrets and bounded output.

use std::time::{Duration, Instant};

use crate::child::KEEP;
use crate::runner::{Arg, Finished, Outcome, Runner};
use crate::testing::captured_log;

fn finished(outcome: Outcome) -> Finished {
    match outcome {
        Outcome::Finished(finished) => finished,
        Outcome::Skipped => panic!("skipped"),
    }
}

fn sh(script: &str) -> Vec<Arg> {
    vec!["-c".into(), script.into()]
}

#[test]
fn apply_false_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("x");
    let runner = Runner::new(false);
    assert!(!runner.apply());
    let args = [marker.to_str().unwrap().into()];
    let log = captured_log(|| assert_eq!(runner.run("touch", &args).unwrap(), Outcome::Skipped));
    assert!(!marker.exists());
    assert!(Outcome::Skipped.succeeded());
    let expected = format!("not running (apply = false): touch {}", marker.display());
    assert!(log.contains(&expected), "{log}");
}

#[test]
fn output_and_exit_status_are_captured() {
    let runner = Runner::new(true);
    let log = captured_log(|| {
        let outcome = runner
            .run("sh", &sh("echo out; echo err >&2; exit 3"))
            .unwrap();
        assert!(!outcome.succeeded());
        let finished = finished(outcome);
        assert_eq!(finished.code, Some(3));
        assert_eq!(finished.signal, None);
        assert_eq!(finished.stdout, "out\n");
        assert_eq!(finished.stderr, "err\n");
        assert!(!finished.success());
    });
    assert!(
        log.contains("running: sh -c 'echo out; echo err >&2; exit 3'"),
        "{log}"
    );
    assert!(!log.contains("out\n"), "output must not be logged: {log}");

    let ok = finished(runner.run("/bin/sh", &sh("exit 0")).unwrap());
    assert!(ok.success());
}

#[test]
fn stdin_is_empty_and_a_signal_is_reported() {
    let runner = Runner::new(true);
    let finished = finished(runner.run("sh", &sh("cat; kill -TERM $$")).unwrap());
    assert_eq!(finished.stdout, "");
    assert_eq!(finished.code, None);
    assert_eq!(finished.signal, Some(libc::SIGTERM));
    assert!(!finished.success());
}

#[test]
fn a_program_running_too_long_is_killed() {
    let runner = Runner::new(true).with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = runner.run("sleep", &["5".into()]).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(error.timed_out());
    assert_eq!(
        error.to_string(),
        "sleep 5 did not finish within 200 ms; killed"
    );
}

#[test]
fn a_timeout_kills_what_the_program_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let runner = Runner::new(true).with_timeout(Duration::from_millis(300));
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let started = Instant::now();
    let error = runner.run("sh", &sh(&script)).unwrap_err();
    assert!(error.timed_out());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let sleeper = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", sleeper.trim());
    // Gone, or a zombie waiting for whoever inherited it.
    let dead = || std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !dead() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dead(), "the shell's child survived the timeout");
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let runner = Runner::new(true);
    let error = runner.run("no-such-program-xyz", &[]).unwrap_err();
    assert!(error.not_found());
    assert_eq!(error.program(), "no-such-program-xyz");
    assert_eq!(
        error.to_string(),
        "cannot run no-such-program-xyz: No such file or directory"
    );

    let error = runner.run("bin/sh", &[]).unwrap_err();
    assert!(
        error.to_string().starts_with("cannot run bin/sh: "),
        "{error}"
    );
}

#[test]
fn secrets_never_show() {
    let secret = "hunter2-activation-key";
    let args = [
        "-c".into(),
        "sleep 5".into(),
        "sh".into(),
        Arg::secret(secret),
    ];
    assert!(!format!("{args:?}").contains(secret));
    assert!(format!("{args:?}").contains("<secret>"));

    let runner = Runner::new(true).with_timeout(Duration::from_millis(100));
    let mut error = None;
    let log = captured_log(|| error = Some(runner.run("sh", &args).unwrap_err()));
    let error = error.unwrap();
    for shown in [error.to_string(), format!("{error:?}"), log.clone()] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
    }
    assert_eq!(
        error.to_string(),
        "sh -c 'sleep 5' sh <secret> did not finish within 100 ms; killed"
    );

    let log = captured_log(|| {
        let skipped = Runner::new(false).run("rhnreg_ks", &[Arg::secret(secret)]);
        assert_eq!(skipped.unwrap(), Outcome::Skipped);
    });
    assert!(
        log.contains("not running (apply = false): rhnreg_ks <secret>"),
        "{log}"
    );
    assert!(!log.contains(secret), "{log}");
}

#[test]
fn big_output_does_not_block_and_is_truncated() {
    let runner = Runner::new(true).with_timeout(Duration::from_secs(30));
    let script = "head -c 1048576 /dev/zero | tr '\\0' a; \
                  head -c 1048576 /dev/zero | tr '\\0' b >&2; echo end";
    let finished = finished(runner.run("sh", &sh(script)).unwrap());
    assert!(finished.success());
    assert_eq!(finished.stdout.len(), KEEP);
    assert_eq!(finished.stderr.len(), KEEP);
    assert!(finished.stdout.bytes().all(|b| b == b'a'));
    assert!(finished.stderr.bytes().all(|b| b == b'b'));
}

#[test]
fn a_background_process_holding_the_output_is_not_waited_for() {
    let runner = Runner::new(true);
    let started = Instant::now();
    let finished = finished(runner.run("sh", &sh("sleep 20 & echo $!")).unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(finished.code, Some(0));
    let sleeper: i32 = finished.stdout.trim().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleeper),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn find_looks_on_path_and_at_absolute_paths() {
    let runner = Runner::new(false);
    let sh = runner.find("sh").expect("sh on PATH");
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
    assert_eq!(
        runner.find("/bin/sh").as_deref(),
        Some(std::path::Path::new("/bin/sh"))
    );
    assert_eq!(runner.find("no-such-program-xyz"), None);
    assert_eq!(runner.find("/etc/hostname-not-executable-xyz"), None);
    assert_eq!(runner.find("/etc"), None);
    assert_eq!(runner.find("bin/sh"), None);
    assert_eq!(runner.find(""), None);

    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("data");
    std::fs::write(&plain, "").unwrap();
    assert_eq!(runner.find(plain.to_str().unwrap()), None);
}
