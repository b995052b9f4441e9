//! The `[plugins.network]` table, and `resetnetwork` as the agent calls it:
//! the metadata read through the request's channel, the answer by kind.

use nova_agent_plugin_api::testing::{TestAgent, TestCall, TestHost};
use nova_agent_plugin_api::CommandError;
use serde_json::json;

use super::Settings;
use crate::detect::UNKNOWN_OS;
use crate::parse::NO_INTERFACES;
use crate::testutil::root_with;

fn settings_error(table: serde_json::Value) -> String {
    Settings::parse(table).unwrap_err().message().to_owned()
}

#[test]
fn the_table_is_optional_and_checked() {
    assert_eq!(Settings::parse(json!({})).unwrap(), Settings::default());
    let pinned = Settings::parse(json!({"os": "suse", "backend": "networkd"})).unwrap();
    assert_eq!(pinned.os.as_deref(), Some("suse"));
    assert_eq!(pinned.backend.as_deref(), Some("networkd"));
    assert_eq!(
        settings_error(json!({"os": "plan9"})),
        "[plugins.network] os: \"plan9\" is not one of debian, redhat, suse, arch, gentoo, freebsd"
    );
    assert!(
        settings_error(json!({"backend": "wicked"}))
            .starts_with("[plugins.network] backend: \"wicked\" is not one of ifupdown, "),
        "{}",
        settings_error(json!({"backend": "wicked"}))
    );
    assert!(
        settings_error(json!({"distro": "debian"}))
            .starts_with("[plugins.network] distro: unknown field `distro`"),
        "{}",
        settings_error(json!({"distro": "debian"}))
    );
}

#[test]
fn resetnetwork_reads_the_requests_metadata_and_answers_by_kind() {
    let root = root_with(&[
        ("/etc/os-release", "ID=debian\n"),
        ("/sys/class/net/eth0/type", "1\n"),
        ("/sys/class/net/eth0/address", "bc:76:4e:20:6c:5a\n"),
        ("/sys/class/net/eth0/flags", "0x1003\n"),
    ]);
    let agent = |call: TestCall| {
        TestAgent::new(TestHost::new(root.path().display().to_string()))
            .with_plugin(crate::init, json!({}))
            .unwrap()
            .with_call(call)
    };

    let outcome = agent(TestCall::new()).run("resetnetwork", r#""""#);
    assert_eq!(outcome.result, Err(CommandError::failed(NO_INTERFACES)));

    let eth0 = json!({"label": "public", "mac": "BC:76:4E:20:6C:5A",
                      "ips": [{"ip": "198.51.100.10", "netmask": "255.255.255.0", "enabled": "1"}],
                      "gateway": "198.51.100.1", "dns": ["192.0.2.53"]});
    let call = TestCall::new()
        .with_metadata("vm-data/hostname", "web-1")
        .with_metadata("vm-data/networking/bc764e206c5a", eth0.to_string());
    let outcome = agent(call).run("resetnetwork", r#""""#);
    assert_eq!(outcome.result, Ok(r#""""#.to_owned()));
    let interfaces = std::fs::read_to_string(root.path().join("etc/network/interfaces")).unwrap();
    assert!(interfaces.contains("198.51.100.10"), "{interfaces}");
    let hostname = std::fs::read_to_string(root.path().join("etc/hostname")).unwrap();
    assert_eq!(hostname, "web-1\n");

    std::fs::remove_file(root.path().join("etc/os-release")).unwrap();
    let outcome = agent(TestCall::new()).run("resetnetwork", r#""""#);
    assert_eq!(outcome.result, Err(CommandError::failed(UNKNOWN_OS)));
}
