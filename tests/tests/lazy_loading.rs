//! Loading on first use, end to end: a plugin whose manifest section says
//! what it provides is installed (trusted, manifest read) and loaded only
//! when a channel needs it or one of its commands is first called; what
//! happens when its file changes or turns out bad before that call; hot
//! swap of plugins loaded and never loaded; and what stays out of memory.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nova_agent_tests::{artifacts, nova, running_as_root, test_plugin, Agent, Sandbox};
use serde_json::{json, Value};

const SWAP_FILE: &str = "libswap.so";

/// The answer of a command whose plugin could not be loaded.
fn cannot_load(plugin: &str, reason: &str) -> String {
    nova(
        "500",
        &format!("plugin '{plugin}' cannot be loaded: {reason}"),
    )
}

fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {list:#?}"))
}

/// The names of the plugins whose code the running agent holds.
fn in_memory(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .filter(|p| p["in_memory"] == true)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// An installed plugin: trusted, its manifest read, none of its code loaded.
fn assert_installed(p: &Value, version: &str) {
    assert_eq!(p["state"], "loaded", "{p:#}");
    assert_eq!(p["in_memory"], false, "{p:#}");
    assert_eq!(p["error"], Value::Null, "{p:#}");
    assert_eq!(p["generation"], Value::Null, "{p:#}");
    assert_eq!(p["version"], version, "{p:#}");
}

fn assert_serving(p: &Value, version: &str, generation: u64) {
    assert_eq!(p["state"], "loaded", "{p:#}");
    assert_eq!(p["in_memory"], true, "{p:#}");
    assert_eq!(p["error"], Value::Null, "{p:#}");
    assert_eq!(p["generation"], generation, "{p:#}");
    assert_eq!(p["version"], version, "{p:#}");
}

fn sorted(names: &Value) -> Vec<String> {
    let mut names: Vec<String> = names
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {names}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The plugin files the agent has mapped: its staged copies (unnamed files
/// in `<state_dir>/plugins`, or memfds), counted by inode. The installed
/// files themselves are never mapped.
fn mapped_plugin_files(agent: &Agent, sandbox: &Sandbox) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", agent.pid())).unwrap();
    let staging = sandbox
        .path()
        .canonicalize()
        .unwrap()
        .join("state/plugins/");
    let plugins = sandbox.plugins.canonicalize().unwrap();
    let mut inodes = BTreeSet::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(path) = fields.get(5) else {
            continue;
        };
        assert!(
            !path.starts_with(plugins.to_str().unwrap()),
            "an installed file is mapped: {line}"
        );
        if path.starts_with(staging.to_str().unwrap())
            || path.starts_with("/memfd:nova-agent-plugin")
        {
            inodes.insert((fields[3].to_owned(), fields[4].to_owned()));
        }
    }
    inodes.len()
}

/// A second name for `file`, in a directory that is not a plugin directory:
/// changes made through it reach the file without an event in the plugin
/// directory (inotify reports a change to the directory of the name used),
/// so no reload happens before the first use.
fn alias(sandbox: &Sandbox, file: &Path) -> PathBuf {
    let aside = sandbox.path().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let alias = aside.join(file.file_name().unwrap());
    std::fs::hard_link(file, &alias).unwrap();
    alias
}

/// Long enough for the plugin directory watcher to have reported a change
/// (it waits at most 250 ms for quiet), had it seen one.
fn give_the_watcher_time() {
    std::thread::sleep(std::time::Duration::from_millis(400));
}

#[test]
fn a_commands_first_call_loads_its_plugin() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("probe"));
    let agent = sandbox.start();
    let list = sandbox.plugins_json();
    assert_eq!(
        in_memory(&list),
        BTreeSet::from(["json".to_owned(), "unix-socket".to_owned()])
    );
    let probe = entry(&list, "probe-fixture");
    assert_installed(probe, "2.0.0");
    assert_eq!(
        sorted(&probe["commands"]),
        ["list-metadata", "nap", "read-metadata"]
    );
    let text = sandbox.cli(&["plugins", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("probe-fixture 2.0.0 [installed] "), "{text}");
    assert_eq!(mapped_plugin_files(&agent, &sandbox), 2);

    // `features` loads core, and lists every command, loaded or not.
    assert_eq!(
        agent.call("features"),
        nova("0", "features,list-metadata,nap,read-metadata,version")
    );
    let list = sandbox.plugins_json();
    assert_installed(entry(&list, "probe-fixture"), "2.0.0");
    assert_serving(entry(&list, "core"), "2.0.0", 1);
    assert_eq!(mapped_plugin_files(&agent, &sandbox), 3);
    assert!(!agent.log().contains("probe-fixture 2.0.0 (generation"));

    assert_eq!(
        agent.request(r#"{"name": "nap", "value": 1}"#),
        nova("0", "slept 1 ms")
    );
    agent.wait_for_log("plugin loaded at first use in ");
    let list = sandbox.plugins_json();
    let probe = entry(&list, "probe-fixture");
    assert_serving(probe, "2.0.0", 1);
    assert!(probe["mapped_bytes"].as_u64().unwrap() > 0, "{probe:#}");
    assert_eq!(mapped_plugin_files(&agent, &sandbox), 4);
    let log = agent.log();
    let loaded: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin loaded at first use in "))
        .collect();
    assert_eq!(loaded.len(), 2, "{log}");
    assert!(
        loaded[1].contains("probe-fixture 2.0.0 (generation 1"),
        "{log}"
    );
    assert_eq!(
        agent.request(r#"{"name": "read-metadata", "value": "missing"}"#),
        nova("404", "no metadata key missing")
    );
}

#[test]
fn a_file_made_unsafe_after_inspection_is_refused_at_first_use() {
    if !running_as_root() {
        eprintln!("skipped: the trust check applies to root only");
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let probe = sandbox.add_plugin(&test_plugin("probe"));
    let alias = alias(&sandbox, &probe);
    let agent = sandbox.start();
    assert_installed(&sandbox.plugin_entry("probe-fixture"), "2.0.0");

    std::fs::set_permissions(&alias, std::fs::Permissions::from_mode(0o664)).unwrap();
    give_the_watcher_time();
    // Unseen by the agent so far: no reload ran.
    assert_installed(&sandbox.plugin_entry("probe-fixture"), "2.0.0");

    let answer = agent.request(r#"{"name": "nap", "value": 1}"#);
    assert_eq!(
        answer,
        cannot_load(
            "probe-fixture",
            "writable by group or others (mode 0664); plugin files must be writable by root only"
        ),
        "{}",
        agent.log()
    );
    let p = sandbox.plugin_entry("probe-fixture");
    assert_eq!(p["in_memory"], false, "{p:#}");
    let error = p["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("writable by group or others"), "{p:#}");
    assert_eq!(
        sorted(&p["commands"]),
        ["list-metadata", "nap", "read-metadata"]
    );
    assert_eq!(agent.request(r#"{"name": "nap", "value": 1}"#), answer);
}

#[test]
fn a_file_replaced_after_inspection_is_loaded_as_it_is_at_first_use() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let alias = alias(&sandbox, &sandbox.plugins.join(SWAP_FILE));
    let agent = sandbox.start();
    assert_installed(&sandbox.plugin_entry("swap-fixture"), "1.0.0");

    // The same file, new content: v2's.
    std::fs::write(&alias, std::fs::read(test_plugin("swap-v2")).unwrap()).unwrap();
    give_the_watcher_time();
    assert_eq!(
        agent
            .log()
            .matches("plugin installed, loads at first use")
            .count(),
        1,
        "{}",
        agent.log()
    );

    assert_eq!(agent.call("version"), nova("0", "swap-v2"));
    assert_serving(&sandbox.plugin_entry("swap-fixture"), "2.0.0", 1);
    assert!(
        agent.log().contains("plugin loaded at first use in "),
        "{}",
        agent.log()
    );
}

#[test]
fn a_plugin_whose_init_fails_at_first_use_answers_500_until_a_reload_retries() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let ready = sandbox.path().join("ready");
    sandbox.write_config(&format!(
        "[plugins.swap-fixture]\nready_file = \"{}\"\n",
        ready.display()
    ));
    let agent = sandbox.start();
    assert_installed(&sandbox.plugin_entry("swap-fixture"), "1.0.0");

    let reason = format!("init failed: waiting for {}", ready.display());
    let expected = cannot_load("swap-fixture", &reason);
    assert_eq!(agent.call("version"), expected, "{}", agent.log());
    let p = sandbox.plugin_entry("swap-fixture");
    assert_eq!(p["state"], "error", "{p:#}");
    assert_eq!(p["in_memory"], false, "{p:#}");
    assert_eq!(p["error"], reason, "{p:#}");
    assert_eq!(sorted(&p["commands"]), ["features", "version"]);

    // The init is not run again for each request, even once it would pass.
    std::fs::write(&ready, b"").unwrap();
    assert_eq!(agent.call("features"), expected);
    assert_eq!(agent.call("version"), expected);
    assert_eq!(agent.log().matches("plugin not loaded:").count(), 1);

    let out = sandbox.cli(&["plugins", "reload"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(agent.call("version"), nova("0", "swap-v1"));
    assert_serving(&sandbox.plugin_entry("swap-fixture"), "1.0.0", 1);
}

#[test]
fn a_manifest_that_lies_about_the_abi_is_refused_at_first_use_and_stays_listed() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("lying-abi"));
    let agent = sandbox.start();
    let p = sandbox.plugin_entry("lying-fixture");
    assert_installed(&p, "2.0.0");
    assert_eq!(p["commands"], json!(["lie"]));

    let reason = "plugin-api 0.2 expected, plugin built against 0.1; \
                  rebuild it against nova-agent-plugin-api 0.2";
    let expected = cannot_load("lying-fixture", reason);
    assert_eq!(agent.call("lie"), expected, "{}", agent.log());
    let p = sandbox.plugin_entry("lying-fixture");
    assert_eq!(p["state"], "error", "{p:#}");
    assert_eq!(p["in_memory"], false, "{p:#}");
    assert_eq!(p["error"], reason, "{p:#}");
    assert_eq!(p["commands"], json!(["lie"]));
    let out = sandbox.cli(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Answered from the record: no second load.
    assert_eq!(agent.call("lie"), expected);
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));
    assert_eq!(agent.log().matches("plugin not loaded:").count(), 1);

    // A reload tries again (and fails again).
    let out = sandbox.cli(&["plugins", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(reason),
        "{out:?}"
    );
    assert_eq!(agent.log().matches("plugin not loaded:").count(), 2);
    assert_eq!(agent.call("lie"), expected);
}

#[test]
fn a_loaded_plugin_swaps_at_once() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "swap-v1"));
    assert_serving(&sandbox.plugin_entry("swap-fixture"), "1.0.0", 1);

    sandbox.install_as(&test_plugin("swap-v2"), SWAP_FILE);
    agent.wait_for_log("plugin replaced: swap-fixture 1.0.0");
    assert_serving(&sandbox.plugin_entry("swap-fixture"), "2.0.0", 2);
    assert_eq!(agent.call("version"), nova("0", "swap-v2"));
    assert!(!agent
        .log()
        .contains("plugin installed, loads at first use: swap-fixture 2.0.0"));
}

#[test]
fn a_plugin_never_loaded_swaps_to_installed_and_its_first_call_runs_the_new_build() {
    let sandbox = Sandbox::with_swap_fixture("v1", "");
    let agent = sandbox.start();
    assert_installed(&sandbox.plugin_entry("swap-fixture"), "1.0.0");

    sandbox.install_as(&test_plugin("swap-v2"), SWAP_FILE);
    agent.wait_for_log("plugin installed, loads at first use: swap-fixture 2.0.0");
    assert_installed(&sandbox.plugin_entry("swap-fixture"), "2.0.0");
    let log = agent.log();
    assert!(!log.contains("plugin loaded at first use"), "{log}");
    assert!(!log.contains("plugin replaced"), "{log}");

    assert_eq!(agent.call("version"), nova("0", "swap-v2"));
    assert_serving(&sandbox.plugin_entry("swap-fixture"), "2.0.0", 1);
}

#[test]
fn with_every_builtin_plugin_installed_only_what_serves_is_in_memory() {
    let sandbox = Sandbox::with_builtins();
    let mut installed = BTreeSet::new();
    for dir_entry in std::fs::read_dir(artifacts()).unwrap() {
        let path = dir_entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(crate_name) = name
            .strip_prefix("libnova_agent_plugin_")
            .and_then(|n| n.strip_suffix(".so"))
        {
            sandbox.add_plugin(&path);
            installed.insert(crate_name.replace('_', "-"));
        }
    }
    assert!(installed.len() > 10, "{installed:?}");
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "2.0.0"));

    let list = sandbox.plugins_json();
    let names: BTreeSet<String> = list
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, installed);
    assert_eq!(
        in_memory(&list),
        BTreeSet::from([
            "core".to_owned(),
            "json".to_owned(),
            "unix-socket".to_owned()
        ])
    );
    for p in list.iter().filter(|p| p["in_memory"] == false) {
        assert_installed(p, "2.0.0");
    }
    assert_eq!(mapped_plugin_files(&agent, &sandbox), 3);
}
