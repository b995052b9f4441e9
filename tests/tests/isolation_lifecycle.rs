//! Process isolation end to end, the life of the child: hot swap under
//! load, the same `Host` and `Call` as in-process, plugins refused or
//! failing `init`, the user and limits it runs under, the agent's stop, and
//! `config check`. The failures of the crash fixture's commands are in
//! `isolation.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nova_agent_tests::procs::{cmdline, stat};
use nova_agent_tests::{hammer, nova, plugin, running_as_root, test_plugin, Sandbox};

mod isolation_common;
use isolation_common::*;

#[test]
fn an_isolated_plugin_swaps_under_load_without_a_failed_request() {
    let sandbox = Sandbox::empty();
    sandbox.add_plugin(&plugin("json"));
    sandbox.add_plugin(&plugin("unix-socket"));
    let file = "libswap.so";
    sandbox.install_as(&test_plugin("swap-v2"), file);
    sandbox.write_config("\n[isolation]\nprocess = [\"swap-fixture\"]\ntimeout = 10\n");
    let agent = sandbox.start();
    let version = |build: &str| nova("0", &format!("swap-{build}"));
    assert_eq!(agent.call("version"), version("v2"));
    let first = isolation(&sandbox, "swap-fixture")["pid"].as_i64().unwrap() as i32;
    assert_eq!(cmdline(first), b"nova-agent\0plugin-host\0swap-fixture\0");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| hammer(&agent, &["version", "features"], &stop))
        .collect();
    for swap in 1..=20 {
        let build = if swap % 2 == 1 { "v1" } else { "v2" };
        sandbox.install_as(&test_plugin(&format!("swap-{build}")), file);
        wait_until(&agent, WAIT, "the new build does not answer", || {
            agent.call("version") == version(build)
        });
    }
    stop.store(true, Ordering::Relaxed);

    let allowed = [
        version("v1"),
        version("v2"),
        nova("0", "version,features from swap-v1"),
        nova("0", "version,features from swap-v2"),
    ];
    for client in clients {
        let answers = client.join().expect("a load client failed");
        assert!(answers.len() > 20, "only {} answers", answers.len());
        for answer in &answers {
            assert!(allowed.contains(answer), "unexpected answer {answer}");
        }
    }
    let entry = sandbox.plugin_entry("swap-fixture");
    assert_eq!(entry["generation"], 21, "{entry:#}");
    assert_eq!(entry["requests"]["failed"], 0, "{entry:#}");
    assert_eq!(entry["superseded"]["failed"], 0, "{entry:#}");

    // The retired generations' children were stopped and reaped.
    let mut seen = (Vec::new(), Vec::new());
    wait_until(&agent, WAIT, "old children remain", || {
        seen = plugin_hosts_and_zombies(&agent);
        seen.0.len() == 1 && seen.1.is_empty()
    });
    assert_eq!(
        isolation(&sandbox, "swap-fixture")["pid"],
        seen.0[0],
        "{seen:?}"
    );
    assert!(
        stat(first).is_none(),
        "the first child {first} is still there"
    );
}

/// The answers of the probe fixture and core, with `extra` config.
fn probe_answers(extra: &str) -> Vec<String> {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("probe"));
    let metadata = sandbox.path().join("metadata");
    std::fs::create_dir_all(metadata.join("vm-data/networking")).unwrap();
    std::fs::write(metadata.join("vm-data/hostname"), "guest-1\n").unwrap();
    for mac in ["BC764E000002", "BC764E000001"] {
        std::fs::write(metadata.join("vm-data/networking").join(mac), "{}").unwrap();
    }
    sandbox.write_config(&format!(
        "metadata_dir = \"{}\"\n{extra}",
        metadata.display()
    ));
    let agent = sandbox.start();
    let answers = [
        request("read-metadata", "\"vm-data/hostname\""),
        request("read-metadata", "\"vm-data/nothing\""),
        request("read-metadata", "\"/etc/passwd\""),
        request("read-metadata", "5"),
        request("list-metadata", "\"vm-data/networking\""),
        request("list-metadata", "\"vm-data/nothing\""),
        request("nap", "1"),
        request("features", "\"\""),
        request("version", "\"agent\""),
    ]
    .iter()
    .map(|line| agent.request(line))
    .collect();
    // The plugin's log reached the agent's.
    agent.wait_for_log("nap of 1 ms done");
    if !extra.is_empty() {
        for name in ["probe-fixture", "core"] {
            let status = isolation(&sandbox, name);
            assert!(status["pid"].is_u64(), "{name}: {status:#}");
        }
    }
    answers
}

#[test]
fn an_isolated_plugin_sees_the_same_host_and_call() {
    let in_process = probe_answers("");
    assert_eq!(in_process[0], nova("0", "guest-1"));
    assert_eq!(in_process[4], nova("0", "BC764E000001,BC764E000002"));
    assert!(in_process[7].contains("read-metadata"), "{in_process:#?}");
    let isolated =
        probe_answers("\n[isolation]\nprocess = [\"probe-fixture\", \"core\"]\ntimeout = 10\n");
    assert_eq!(isolated, in_process);
}

#[test]
fn a_plugin_providing_an_exchange_is_refused_isolation() {
    let sandbox = Sandbox::with_builtins();
    sandbox.write_config("\n[isolation]\nprocess = [\"unix-socket\"]\n");
    let out = sandbox.cli(&["plugins", "list", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list.iter().find(|p| p["name"] == "unix-socket").unwrap();
    assert_eq!(entry["state"], "error", "{entry:#}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("only commands can run isolated"),
        "{entry:#}"
    );
}

#[test]
fn the_child_runs_as_the_configured_user_under_its_limits() {
    if !running_as_root() {
        eprintln!("skipped: changing the child's user needs root");
        return;
    }
    let sandbox = crash_sandbox(
        "\n[isolation]\nprocess = [\"crash-fixture\"]\nmemory_mib = 64\n\
         user = \"nobody\"\nno_new_privs = true\n",
    );
    let agent = sandbox.start();
    let pid = served_by(&agent);
    assert_eq!(isolation(&sandbox, "crash-fixture")["pid"], pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("\nUid:\t65534\t65534\t65534\t65534\n"),
        "{status}"
    );
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| -> Vec<String> {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {limits}"));
        line[name.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(limit("Max data size"), ["67108864", "67108864", "bytes"]);
    assert_eq!(limit("Max core file size"), ["0", "0", "bytes"]);
    assert_eq!(agent.call("ok"), nova("0", "fine"));
}

#[test]
fn stopping_the_agent_leaves_no_child_behind() {
    let sandbox = crash_sandbox(ISOLATED);
    let mut agent = sandbox.start();
    let pid = served_by(&agent);
    assert_eq!(stat(pid).unwrap().ppid, agent.pid());
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "log:\n{}", agent.log());
    // Reaped by the agent itself: not even a zombie left for init.
    assert!(
        stat(pid).is_none(),
        "plugin host {pid} outlived the agent; log:\n{}",
        agent.log()
    );
}

#[test]
fn an_isolated_plugin_whose_init_fails_is_not_loaded_and_leaves_no_child() {
    let sandbox = Sandbox::empty();
    sandbox.add_plugin(&plugin("json"));
    sandbox.add_plugin(&plugin("unix-socket"));
    let file = "libswap.so";
    sandbox.install_as(&test_plugin("swap-init-error"), file);
    sandbox.write_config("\n[isolation]\nprocess = [\"swap-fixture\"]\n");
    let agent = sandbox.start();
    // Installed, it loads (its child starts) at its first call.
    assert_eq!(
        agent.call("version"),
        nova(
            "500",
            "plugin 'swap-fixture' cannot be loaded: init failed: the fixture's init refuses to start"
        )
    );
    let entry = sandbox.plugin_entry("swap-fixture");
    assert_eq!(entry["state"], "error", "{entry:#}");
    assert_eq!(
        entry["error"], "init failed: the fixture's init refuses to start",
        "{entry:#}"
    );
    wait_until(&agent, WAIT, "the failed child is still there", || {
        plugin_hosts_and_zombies(&agent) == (vec![], vec![])
    });

    // A good build swapped in serves from its child; a failing one swapped
    // over it leaves that child serving, and its own is gone.
    sandbox.install_as(&test_plugin("swap-v1"), file);
    wait_until(&agent, WAIT, "swap-v1 does not answer", || {
        agent.call("version") == nova("0", "swap-v1")
    });
    let serving = isolation(&sandbox, "swap-fixture")["pid"].clone();
    sandbox.install_as(&test_plugin("swap-init-error"), file);
    wait_until(&agent, WAIT, "the failing build was not tried", || {
        sandbox.plugin_entry("swap-fixture")["error"]
            .as_str()
            .is_some_and(|e| e.contains("init failed"))
    });
    assert_eq!(agent.call("version"), nova("0", "swap-v1"));
    assert_eq!(isolation(&sandbox, "swap-fixture")["pid"], serving);
    wait_until(
        &agent,
        WAIT,
        "the failed build's child is still there",
        || {
            let (hosts, zombies) = plugin_hosts_and_zombies(&agent);
            hosts.len() == 1 && zombies.is_empty()
        },
    );
}

#[test]
fn config_check_runs_isolated_plugins_in_their_child_and_notes_unknown_names() {
    let sandbox = crash_sandbox(
        "\n[isolation]\nprocess = [\"crash-fixture\", \"not-installed\"]\nuser = \"no-such-user\"\n",
    );
    let out = sandbox.cli(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "note: [isolation] process names plugin 'not-installed', which is not installed"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "user 'no-such-user' does not exist; set [isolation] user to an existing user"
        ),
        "{text}"
    );

    sandbox.write_config(ISOLATED);
    let out = sandbox.cli(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(": ok (4 plugins loaded"), "{text}");
}
