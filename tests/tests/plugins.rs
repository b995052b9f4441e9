//! Plugin loading through the built binary: `plugins list`, bad plugins,
//! the trust check, conflicts, per-plugin config, `config check`.

use std::os::unix::fs::PermissionsExt;

use nova_agent_tests::{nova, running_as_root, test_plugin, Sandbox};
use serde_json::Value;

/// `plugins list --json`, which must exit with `code`: 0 when every file
/// is loaded or disabled, 1 when one is refused or in error.
fn list(sandbox: &Sandbox, code: i32) -> Vec<Value> {
    let out = sandbox.cli(&["plugins", "list", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {list:#?}"))
}

#[test]
fn plugins_list_json_shows_every_builtin_plugin_with_what_it_provides() {
    let sandbox = Sandbox::with_builtins();
    let list = list(&sandbox, 0);
    assert_eq!(list.len(), 3);
    for (name, exchanges, parsers, commands) in [
        ("core", vec![], vec![], vec!["version", "features"]),
        ("json", vec![], vec!["json"], vec![]),
        ("unix-socket", vec!["unix-socket"], vec![], vec![]),
    ] {
        let p = entry(&list, name);
        assert_eq!(p["state"], "loaded", "{p}");
        assert_eq!(p["version"], "2.0.0");
        assert_eq!(p["error"], Value::Null);
        assert_eq!(p["exchanges"], serde_json::json!(exchanges));
        assert_eq!(p["parsers"], serde_json::json!(parsers));
        assert_eq!(p["commands"], serde_json::json!(commands));
        let file = p["file"].as_str().unwrap();
        assert!(
            file.starts_with(sandbox.plugins.to_str().unwrap()),
            "{file}"
        );
    }
}

/// Why the old-api fixture (built against plugin-api 0.1) is refused.
const OLD_API_REASON: &str = "plugin-api 0.2 expected, plugin built against 0.1; \
     rebuild it against nova-agent-plugin-api 0.2";

/// A directory holding the built-ins and every misbehaving fixture.
fn sandbox_with_bad_plugins() -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    std::fs::write(sandbox.plugins.join("libnot-a-plugin.so"), b"just text\n").unwrap();
    for fixture in ["old-api", "skewed-abi", "unresolved", "panic"] {
        sandbox.add_plugin(&test_plugin(fixture));
    }
    sandbox
}

#[test]
fn bad_plugins_are_reported_with_a_one_line_reason_and_skipped() {
    let sandbox = sandbox_with_bad_plugins();
    let list = list(&sandbox, 1);
    for (name, reason) in [
        ("libnot-a-plugin", "cannot load: "),
        ("libnova_agent_test_plugin_old_api", OLD_API_REASON),
        (
            "libnova_agent_test_plugin_skewed_abi",
            "incompatible plugin ABI: mismatched package in type PluginRoot \
             (expected nova-agent-plugin-api, found nova-agent-test-plugin-skewed-abi)",
        ),
    ] {
        let p = entry(&list, name);
        assert_eq!(p["state"], "error", "{p}");
        let error = p["error"].as_str().unwrap();
        assert!(error.contains(reason), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: {error}");
    }
    assert_eq!(entry(&list, "panic-fixture")["state"], "loaded");
    // Its manifest section says what it provides: listing it loads nothing,
    // so its missing symbol shows at first use (and in `config check`).
    let unresolved = entry(&list, "unresolved-fixture");
    assert_eq!(unresolved["state"], "loaded", "{unresolved}");
    assert_eq!(unresolved["in_memory"], false, "{unresolved}");
    assert_eq!(unresolved["commands"], serde_json::json!(["missing"]));
}

#[test]
fn panicking_command_answers_500_and_agent_keeps_serving() {
    let sandbox = sandbox_with_bad_plugins();
    let agent = sandbox.start();
    let log = agent.log();
    assert!(log.contains(OLD_API_REASON), "{log}");

    let mut client = agent.connect();
    // Installed, it loads at its first call, which finds the missing symbol.
    let missing: serde_json::Value =
        serde_json::from_str(&client.request(r#"{"name": "missing", "value": ""}"#)).unwrap();
    assert_eq!(missing["returncode"], "500", "{missing}");
    let message = missing["message"].as_str().unwrap();
    assert!(
        message.starts_with("plugin 'unresolved-fixture' cannot be loaded: cannot load: ")
            && message.contains("undefined symbol: nova_agent_test_missing_symbol"),
        "{message}"
    );
    agent.wait_for_log("undefined symbol: nova_agent_test_missing_symbol");
    for _ in 0..3 {
        assert_eq!(
            client.request(r#"{"name": "panic", "value": ""}"#),
            nova(
                "500",
                "command 'panic' failed unexpectedly; see the agent's log"
            )
        );
        assert_eq!(client.request(r#"{"name": "version"}"#), nova("0", "2.0.0"));
    }
    assert_eq!(
        client.request(r#"{"name": "calm", "value": 1}"#),
        nova("0", "calm: 1")
    );
    agent.wait_for_log("command \"panic\" panicked: the panic fixture panics on purpose");
}

#[test]
fn group_writable_plugin_is_refused_when_running_as_root() {
    if !running_as_root() {
        eprintln!("skipped: the trust check applies when the agent runs as root");
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let core = sandbox.plugins.join("libnova_agent_plugin_core.so");
    std::fs::set_permissions(&core, std::fs::Permissions::from_mode(0o664)).unwrap();
    let list = list(&sandbox, 1);
    let p = entry(&list, "libnova_agent_plugin_core");
    assert_eq!(p["state"], "refused");
    assert_eq!(
        p["error"],
        "writable by group or others (mode 0664); plugin files must be writable by root only"
    );
    let agent = sandbox.start();
    assert_eq!(
        agent.call("version"),
        nova("404", "No such agent command 'version'")
    );
}

#[test]
fn a_command_conflict_goes_to_the_first_plugin_unless_config_prefers_another() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("vendor"));
    {
        let agent = sandbox.start();
        assert_eq!(agent.call("version"), nova("0", "2.0.0"));
        assert!(agent
            .log()
            .contains("command 'version' is provided by plugins core, vendor-fixture"));
    }
    let list = list(&sandbox, 0);
    assert_eq!(
        entry(&list, "vendor-fixture")["shadowed"],
        serde_json::json!(["command version"])
    );

    sandbox.write_config("[commands]\nprefer = { version = \"vendor-fixture\" }\n");
    let agent = sandbox.start();
    assert_eq!(agent.call("version"), nova("0", "vendor"));
}

#[test]
fn plugins_get_their_table_root_apply_and_channel_metadata() {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&test_plugin("vendor"));
    let metadata = sandbox.path().join("metadata");
    std::fs::create_dir_all(metadata.join("vm-data")).unwrap();
    std::fs::write(metadata.join("vm-data/hostname"), "guest-1\n").unwrap();
    sandbox.write_config(&format!(
        "metadata_dir = \"{}\"\n[plugins.vendor-fixture]\ncolour = \"blue\"\n",
        metadata.display()
    ));
    let agent = sandbox.start();
    assert_eq!(
        agent.call("vendor-info"),
        nova(
            "0",
            &format!(
                "root={} apply=false config={{?colour?:?blue?}} hostname=guest-1",
                sandbox.root.display()
            )
        )
    );
    // The plugin's tracing event reached the agent's log under its target.
    agent.wait_for_log("vendor_fixture: vendor-info called");
}

#[test]
fn a_disabled_plugin_is_listed_but_not_loaded() {
    let sandbox = Sandbox::with_builtins();
    sandbox.write_config("[plugins.core]\nenabled = false\n");
    let list = list(&sandbox, 0);
    assert_eq!(entry(&list, "core")["state"], "disabled");
    let agent = sandbox.start();
    assert_eq!(
        agent.call("version"),
        nova("404", "No such agent command 'version'")
    );
}

#[test]
fn config_check_reports_file_line_column_and_plugin_table_errors() {
    let sandbox = Sandbox::with_builtins();
    let ok = sandbox.cli(&["config", "check"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    std::fs::write(&sandbox.config, "apply = false\nplugins_dir = \"/x\"\n").unwrap();
    let bad = sandbox.cli(&["config", "check"]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:1: unknown field `plugins_dir`",
            sandbox.config.display()
        )),
        "{stderr}"
    );

    sandbox.write_config("pth = \"/x\"\n");
    let bad_table = sandbox.cli(&["config", "check"]);
    assert_eq!(bad_table.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad_table.stdout);
    assert!(
        stdout.contains("[plugins.unix-socket] pth: unknown field `pth`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no plugin provides exchange 'unix-socket'"),
        "{stdout}"
    );
}

/// Without an agent the listing says so, and that these are the files on
/// disk; a refused or broken file makes it exit 1, for scripts.
#[test]
fn offline_plugins_list_says_no_agent_runs_and_exits_1_on_a_broken_file() {
    let sandbox = Sandbox::with_builtins();
    let control = sandbox.path().join("run/control.sock");
    let out = sandbox.cli(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "no agent is running (nothing answers on {}): these are the plugin files on disk \
             as this command read them, without loading them (`installed`: trusted, \
             manifest read; the agent loads it at first use)",
            control.display()
        )
    );
    let json = sandbox.cli(&["plugins", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(stderr.contains("no agent is running"), "{stderr}");
    serde_json::from_slice::<Value>(&json.stdout).expect("only JSON on stdout");

    std::fs::write(sandbox.plugins.join("libnot-a-plugin.so"), b"just text\n").unwrap();
    let out = sandbox.cli(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libnot-a-plugin - [error] "), "{text}");
}

/// The live listing says it is the agent's, and what a generation is.
#[test]
fn the_live_plugins_list_says_what_a_generation_is() {
    let sandbox = Sandbox::with_builtins();
    let _agent = sandbox.start();
    let out = sandbox.cli(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "the running agent's live view; a plugin's generation goes up by one \
             each time a new build of it is swapped in\n"
        ),
        "{text}"
    );
    assert!(text.contains("    generation 1, loaded "), "{text}");
}

/// `call --timeout 0` waits without limit instead of failing with Rust's
/// "cannot set a 0 duration timeout".
#[test]
fn call_timeout_0_waits_without_limit() {
    let sandbox = Sandbox::with_builtins();
    let _agent = sandbox.start();
    let out = sandbox.cli(&["call", "--timeout", "0", "version"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", nova("0", "2.0.0"))
    );
}

/// `config check` counts in the singular when there is one.
#[test]
fn config_check_says_1_channel() {
    let sandbox = Sandbox::with_builtins();
    let out = sandbox.cli(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(": ok (3 plugins loaded, 2 commands, 1 channel)"),
        "{text}"
    );
}
