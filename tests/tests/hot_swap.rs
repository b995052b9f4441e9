//! Hot swap end to end: plugin files replaced, broken, deleted and reloaded
//! under a running agent, with requests flowing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nova_agent_tests::{hammer, nova, plugin, test_plugin, Agent, Sandbox};

const WAIT: Duration = Duration::from_secs(30);
const SWAP_FILE: &str = "libswap.so";

fn version_of(build: &str) -> String {
    nova("0", &format!("swap-{build}"))
}

/// Polls `version` on fresh connections until it answers `expected`.
fn wait_for_answer(agent: &Agent, expected: &str) -> Duration {
    let started = Instant::now();
    loop {
        let answer = agent.call("version");
        if answer == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "still {answer}, not {expected}; log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn fifty_swaps_under_continuous_requests_lose_none() {
    let sandbox = Sandbox::with_swap_fixture("v2", "");
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), version_of("v2"));

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| hammer(&agent, &["version", "features"], &stop))
        .collect();
    for swap in 1..=50 {
        let build = if swap % 2 == 1 { "v1" } else { "v2" };
        sandbox.install_as(&test_plugin(&format!("swap-{build}")), SWAP_FILE);
        wait_for_answer(&agent, &version_of(build));
    }
    stop.store(true, Ordering::Relaxed);

    let allowed = [
        version_of("v1"),
        version_of("v2"),
        nova("0", "version,features from swap-v1"),
        nova("0", "version,features from swap-v2"),
    ];
    let mut total = 0;
    for client in clients {
        let answers = client.join().expect("a load client failed");
        assert!(answers.len() > 100, "only {} answers", answers.len());
        for answer in &answers {
            assert!(allowed.contains(answer), "unexpected answer {answer}");
        }
        total += answers.len();
    }
    assert_eq!(agent.call("version"), version_of("v2"));
    assert_eq!(
        agent.log().matches("plugin replaced: swap-fixture").count(),
        50
    );

    let entry = sandbox.plugin_entry("swap-fixture");
    assert_eq!(entry["state"], "loaded");
    assert_eq!(entry["version"], "2.0.0");
    assert_eq!(entry["version_on_disk"], "2.0.0");
    assert_eq!(entry["generation"], 51);
    assert_eq!(entry["error"], serde_json::Value::Null);
    assert_eq!(entry["superseded"]["generations"], 50);
    let mapped = entry["superseded"]["mapped_bytes"].as_u64().unwrap();
    assert!(
        mapped >= 50 * entry["mapped_bytes"].as_u64().unwrap() / 2,
        "{entry:#}"
    );
    let served = entry["requests"]["served"].as_u64().unwrap()
        + entry["superseded"]["served"].as_u64().unwrap();
    assert!(
        served >= total as u64 / 2,
        "{served} served of {total}: {entry:#}"
    );
    assert_eq!(entry["requests"]["failed"], 0);
    assert_eq!(entry["superseded"]["failed"], 0);
    eprintln!("{total} requests answered during 50 swaps");
}

#[test]
fn a_broken_build_keeps_the_old_one_serving_and_says_why() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let agent = sandbox.start();
    // Its first call loads it: from then on a new build is loaded at once.
    assert_eq!(agent.call("version"), version_of("v1"));
    let expect_error = |count: usize, needle: &str, on_disk: serde_json::Value| {
        agent.wait_for_logged("plugin not loaded:", count);
        assert_eq!(agent.call("version"), version_of("v1"));
        let entry = sandbox.plugin_entry("swap-fixture");
        assert_eq!(entry["state"], "loaded", "{entry:#}");
        assert_eq!(entry["version"], "1.0.0", "{entry:#}");
        assert_eq!(entry["generation"], 1, "{entry:#}");
        assert_eq!(entry["version_on_disk"], on_disk, "{entry:#}");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{entry:#}");
        assert!(
            error.ends_with("; generation 1 (version 1.0.0) keeps serving"),
            "{entry:#}"
        );
    };

    sandbox.install_as(&test_plugin("old-api"), SWAP_FILE);
    expect_error(
        1,
        "plugin-api 0.2 expected, plugin built against 0.1",
        serde_json::Value::Null,
    );

    let garbage = sandbox.plugins.join("garbage");
    std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
    sandbox.install_as(&garbage, SWAP_FILE);
    expect_error(2, "cannot load", serde_json::Value::Null);

    sandbox.install_as(&test_plugin("swap-init-error"), SWAP_FILE);
    expect_error(
        3,
        "init failed: the fixture's init refuses to start",
        "3.0.0".into(),
    );

    sandbox.install_as(&test_plugin("swap-v2"), SWAP_FILE);
    wait_for_answer(&agent, &version_of("v2"));
    let entry = sandbox.plugin_entry("swap-fixture");
    assert_eq!(entry["generation"], 2, "{entry:#}");
    assert_eq!(entry["error"], serde_json::Value::Null, "{entry:#}");
    assert_eq!(entry["superseded"]["generations"], 1, "{entry:#}");
    // The builds that failed after opening stay mapped, and are counted.
    assert!(
        entry["superseded"]["mapped_bytes"].as_u64().unwrap()
            > entry["mapped_bytes"].as_u64().unwrap(),
        "{entry:#}"
    );
}

#[test]
fn a_deleted_plugin_finishes_its_request_then_is_gone() {
    let sandbox = Sandbox::with_builtins();
    let probe = sandbox.add_plugin(&test_plugin("probe"));
    let agent = sandbox.start();
    let mut napping = agent.connect();
    napping.send(b"{\"name\": \"nap\", \"value\": 600}\n");
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&probe).unwrap();
    agent.wait_for_log("plugin removed: probe-fixture");
    assert_eq!(
        agent.request(r#"{"name": "nap", "value": 1}"#),
        nova("404", "No such agent command 'nap'")
    );
    assert_eq!(napping.read_line(), nova("0", "slept 600 ms"));
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    assert!(sandbox
        .plugins_json()
        .iter()
        .all(|p| p["name"] != "probe-fixture"));
    agent.wait_for_log("shutting down generation 1");
}

#[test]
fn sighup_and_plugins_reload_retry_what_a_directory_change_does_not() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let ready = sandbox.path().join("ready");
    sandbox.write_config(&format!(
        "[plugins.swap-fixture]\nready_file = \"{}\"\n",
        ready.display()
    ));
    let mut agent = sandbox.start();
    // Installed, it loads at its first call, whose init fails.
    let failing = nova(
        "500",
        &format!(
            "plugin 'swap-fixture' cannot be loaded: init failed: waiting for {}",
            ready.display()
        ),
    );
    assert_eq!(agent.call("version"), failing);
    let entry = sandbox.plugin_entry("swap-fixture");
    assert_eq!(entry["state"], "error", "{entry:#}");
    assert!(
        entry["error"].as_str().unwrap().contains("waiting for"),
        "{entry:#}"
    );

    // Nothing in the plugin directory changed: no reload on its own.
    std::fs::write(&ready, b"").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.call("version"), failing);
    unsafe { libc::kill(agent.pid(), libc::SIGHUP) };
    wait_for_answer(&agent, &version_of("v1"));

    // A new build that cannot start yet: v1 keeps serving.
    std::fs::remove_file(&ready).unwrap();
    sandbox.install_as(&test_plugin("swap-v2"), SWAP_FILE);
    agent.wait_for_logged("plugin not loaded:", 2);
    assert_eq!(agent.call("version"), version_of("v1"));
    std::fs::write(&ready, b"").unwrap();
    let out = sandbox.cli(&["plugins", "reload"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        report.contains("replaced: swap-fixture 1.0.0 -> 2.0.0 (generation 2, "),
        "{report}"
    );
    assert!(report.contains("reloaded in "), "{report}");
    assert_eq!(agent.call("version"), version_of("v2"));

    // Nothing changed: a reload reports it and succeeds.
    let out = sandbox.cli(&["plugins", "reload", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unchanged"], 3, "{report:#}");
    assert_eq!(report["replaced"], serde_json::json!([]), "{report:#}");

    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let out = sandbox.cli(&["plugins", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no agent is running"), "{stderr}");
    assert!(!sandbox.path().join("run/control.sock").exists());
}

#[test]
fn a_failed_reload_exits_1_and_the_live_list_shows_channels() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), version_of("v1"));
    sandbox.install_as(&test_plugin("swap-init-error"), SWAP_FILE);
    agent.wait_for_logged("plugin not loaded:", 1);
    let out = sandbox.cli(&["plugins", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("failed: "), "{report}");
    assert!(report.contains("init failed"), "{report}");
    let out = sandbox.cli(&["plugins", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("channel unix-socket+json: serving (unix-socket generation 1)"),
        "{text}"
    );
    assert!(text.contains("    on disk: 3.0.0"), "{text}");
    assert!(text.contains("    generation 1, loaded "), "{text}");
    assert_eq!(agent.call("version"), version_of("v1"));

    // A file that does not even open is retried when asked, too.
    let garbage = sandbox.path().join("garbage.so");
    std::fs::write(&garbage, b"not a library").unwrap();
    sandbox.install_as(&garbage, SWAP_FILE);
    agent.wait_for_logged("plugin not loaded:", 2);
    let out = sandbox.cli(&["plugins", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("cannot load"), "{report}");
    agent.wait_for_logged("plugin not loaded:", 3);
    assert_eq!(agent.call("version"), version_of("v1"));
}

#[test]
fn the_unix_socket_exchange_swaps_and_its_request_in_flight_is_answered() {
    let sandbox = Arc::new(Sandbox::with_builtins());
    sandbox.add_plugin(&test_plugin("probe"));
    let agent = sandbox.start();
    let mut napping = agent.connect();
    napping.send(b"{\"name\": \"nap\", \"value\": 500}\n");
    // `nova-agent call` in a loop: it waits out the channel's restart.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = {
        let (sandbox, stop) = (Arc::clone(&sandbox), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut count = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = sandbox.cli(&["call", "version"]);
                count += 1;
                if !out.status.success() {
                    failures.push(out);
                }
            }
            (count, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let file = "libnova_agent_plugin_unix_socket.so";
    sandbox.install_as(&plugin("unix-socket"), file);
    agent.wait_for_log("channel restarted on its new exchange");
    assert_eq!(napping.read_line(), nova("0", "slept 500 ms"));
    assert!(napping.at_eof());
    for swap in 2..=3 {
        sandbox.install_as(&plugin("unix-socket"), file);
        agent.wait_for_logged("channel restarted on its new exchange", swap);
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (count, failures) = calls.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {count} calls failed: {failures:?}",
        failures.len()
    );
    assert!(count > 3, "{count}");
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    let entry = sandbox.plugin_entry("unix-socket");
    assert_eq!(entry["generation"], 4, "{entry:#}");
    assert!(agent.log().contains("shutting down generation 1"));
}

/// A `nova-agent` on PATH that runs the real one with the sandbox's config,
/// as the package scripts call it (they name no config).
fn agent_on_path(sandbox: &Sandbox) -> String {
    let bin = sandbox.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("nova-agent");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} \"$@\" --config {}\n",
            nova_agent_tests::agent_bin().display(),
            sandbox.config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn packaging(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(path)
}

#[test]
fn the_package_triggers_ask_the_running_agent_to_reload_and_are_quiet_without_one() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let path = agent_on_path(&sandbox);
    let triggers = std::fs::read_to_string(packaging("debian/nova-agent.triggers")).unwrap();
    assert!(triggers.contains("\ninterest-noawait /usr/lib/nova-agent/plugins\n"));
    let spec = std::fs::read_to_string(packaging("rpm/plugin-triggers.spec")).unwrap();
    let rpm_bodies: Vec<&str> = spec
        .split("%filetrigger")
        .skip(1)
        .map(|block| block.lines().nth(1).unwrap())
        .collect();
    assert_eq!(rpm_bodies.len(), 2, "{spec}");

    let postinst = || {
        std::process::Command::new("sh")
            .arg(packaging("debian/nova-agent.postinst"))
            .args(["triggered", "/usr/lib/nova-agent/plugins"])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let rpm = |body: &str| {
        std::process::Command::new("sh")
            .args(["-c", body])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    // No agent: nothing to do, nothing printed, success.
    for out in [postinst(), rpm(rpm_bodies[0]), rpm(rpm_bodies[1])] {
        assert!(out.status.success(), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
    }

    let agent = sandbox.start();
    let out = postinst();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 unchanged"),
        "{out:?}"
    );
    for body in &rpm_bodies {
        assert!(rpm(body).status.success());
    }
    agent.wait_for_logged("control request Reload", 3);

    // A plugin that does not load: reported, and the package operation
    // still succeeds.
    std::fs::write(sandbox.plugins.join("libbroken.so"), b"not a library").unwrap();
    let out = postinst();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a plugin did not load"), "{stderr}");
}

#[test]
fn without_root_plugins_list_falls_back_to_the_files() {
    use std::os::unix::process::CommandExt;
    if !nova_agent_tests::running_as_root() {
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let _agent = sandbox.start();
    let out = std::process::Command::new(nova_agent_tests::agent_bin())
        .args(["plugins", "list", "--json", "--config"])
        .arg(&sandbox.config)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("live view needs root"), "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list.iter().find(|p| p["name"] == "swap-fixture").unwrap();
    assert_eq!(entry["state"], "loaded");
    assert!(entry.get("generation").is_none(), "{entry:#}");
}
