use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_failed_write_stops,
    assert_refused_hostname_stops, assert_rendering_is_deterministic, assert_whole_plan,
    one_interface, realistic, root_with, text, vector_network, Recorder, REALISTIC_HOSTS,
};

const ETH0: &str = "/etc/NetworkManager/system-connections/nova-agent-eth0.nmconnection";
const ETH1: &str = "/etc/NetworkManager/system-connections/nova-agent-eth1.nmconnection";

fn render(network: &Network, root: &tempfile::TempDir) -> Plan {
    crate::testutil::render_in(&NetworkManager, root, network).unwrap()
}

fn plan(network: &Network) -> Plan {
    render(network, &root_with(&[]))
}

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    apply_on(&NetworkManager, &realistic(), &[], actions)
}

/// The log line of writing the realistic payload's files.
fn planned() -> String {
    format!("write {ETH0} {ETH1} /etc/hostname /etc/hosts")
}

#[test]
fn realistic_payload_renders_whole_files() {
    let plan = plan(&realistic());
    let eth0 = "\
# Automatically generated, do not edit
# Label public

[connection]
id=nova-agent-eth0
uuid=6e6f7661-2d61-8000-8000-bc764e206c5a
type=ethernet
interface-name=eth0
autoconnect=true

[ethernet]
mac-address=bc:76:4e:20:6c:5a

[ipv4]
method=manual
address1=198.51.100.10/24
address2=198.51.100.11/24
gateway=198.51.100.1
dns=69.20.0.164;69.20.0.196;

[ipv6]
method=manual
address1=2001:db8:0:1::10/64
address2=2001:db8:0:1::11/64
gateway=fe80::def
";
    let eth1 = "\
# Automatically generated, do not edit
# Label private

[connection]
id=nova-agent-eth1
uuid=6e6f7661-2d61-8000-8000-bc764e206c5b
type=ethernet
interface-name=eth1
autoconnect=true

[ethernet]
mac-address=bc:76:4e:20:6c:5b

[ipv4]
method=manual
address1=10.208.227.239/19
route1=10.208.0.0/12,10.208.224.1
route2=10.176.0.0/12,10.208.224.1

[ipv6]
method=ignore
";
    assert_whole_plan(
        &plan,
        &[
            (ETH0, eth0, 0o600),
            (ETH1, eth1, 0o600),
            ("/etc/hostname", "web-1\n", 0o644),
            ("/etc/hosts", REALISTIC_HOSTS, 0o644),
        ],
        &[],
        false,
    );
}

#[test]
fn ipv4_only_interface() {
    let plan = plan(&vector_network("interfaces-debian-ipv4"));
    assert_eq!(
        text(&plan, ETH0),
        "\
# Automatically generated, do not edit
# Label public

[connection]
id=nova-agent-eth0
uuid=6e6f7661-2d61-8000-8000-001122334455
type=ethernet
interface-name=eth0
autoconnect=true

[ethernet]
mac-address=00:11:22:33:44:55

[ipv4]
method=manual
address1=192.0.2.42/24
gateway=192.0.2.1
dns=192.0.2.2;

[ipv6]
method=ignore
"
    );
    assert_eq!(text(&plan, "/etc/hostname"), "example\n");
    assert_eq!(text(&plan, "/etc/hosts"), "192.0.2.42\texample\n");
}

#[test]
fn ipv6_only_interface() {
    let plan = plan(&vector_network("interfaces-debian-ipv6"));
    assert_eq!(
        text(&plan, ETH0),
        "\
# Automatically generated, do not edit
# Label public

[connection]
id=nova-agent-eth0
uuid=6e6f7661-2d61-8000-8000-001122334455
type=ethernet
interface-name=eth0
autoconnect=true

[ethernet]
mac-address=00:11:22:33:44:55

[ipv4]
method=disabled

[ipv6]
method=manual
address1=2001:db8::42/96
gateway=2001:db8::1
dns=2001:db8::2;
"
    );
}

#[test]
fn nameservers_go_to_their_family_once_and_the_default_via_route_is_left_out() {
    let network = one_interface(serde_json::json!({
        "ip4s": [{"address": "192.0.2.42", "netmask": "255.255.255.0"}],
        "ip6s": [{"address": "2001:db8::42", "prefixlen": 64}],
        "gateway4": "192.0.2.1",
        "dns": ["2001:db8::2", "192.0.2.2", "192.0.2.3", "192.0.2.2"],
        "routes": [
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
            {"network": "198.51.100.0", "netmask": "255.255.255.0", "gateway": "192.0.2.1"},
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.254"}
        ]
    }));
    let plan = plan(&network);
    let families = text(&plan, ETH0).split_once("[ipv4]\n").unwrap().1;
    assert_eq!(
        families,
        "\
method=manual
address1=192.0.2.42/24
gateway=192.0.2.1
dns=192.0.2.2;192.0.2.3;
route1=198.51.100.0/24,192.0.2.1
route2=0.0.0.0/0,192.0.2.254

[ipv6]
method=manual
address1=2001:db8::42/64
dns=2001:db8::2;
"
    );
}

#[test]
fn interface_without_addresses_has_both_families_off() {
    let network = one_interface(serde_json::json!({
        "ip4s": [], "ip6s": [], "gateway4": "192.0.2.1", "dns": ["192.0.2.2"]
    }));
    let plan = plan(&network);
    let families = text(&plan, ETH0).split_once("[ipv4]\n").unwrap().1;
    assert_eq!(families, "method=disabled\n\n[ipv6]\nmethod=ignore\n");
}

#[test]
fn uuid_is_stable_per_mac_and_distinct_across_macs() {
    assert_eq!(
        connection_uuid("bc:76:4e:20:6c:5a").unwrap(),
        "6e6f7661-2d61-8000-8000-bc764e206c5a"
    );
    assert_eq!(
        connection_uuid("bc:76:4e:20:6c:5a"),
        connection_uuid("bc:76:4e:20:6c:5a")
    );
    assert_ne!(
        connection_uuid("bc:76:4e:20:6c:5a"),
        connection_uuid("bc:76:4e:20:6c:5b")
    );
    let uuid = connection_uuid("ff:ff:ff:ff:ff:ff").unwrap();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert!(uuid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
    // Version 8, variant 10.
    assert_eq!(&uuid[14..15], "8");
    assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
}

#[test]
fn a_mac_that_is_not_six_octets_is_refused() {
    for bad in [
        "",
        "bc:76:4e:20:6c",
        "bc:76:4e:20:6c:5a:01",
        "bc:76:4e:20:6c:+5",
        "bc:76:4e:20:6c:zz",
    ] {
        assert_eq!(
            connection_uuid(bad),
            Err(format!("Invalid MAC address {bad:?}"))
        );
    }
    let network = one_interface(serde_json::json!({"mac": "bc:76:4e:20:6c", "ip4s": []}));
    assert_eq!(
        crate::testutil::render(&NetworkManager, &[], &network),
        Err("Invalid MAC address \"bc:76:4e:20:6c\"".to_owned())
    );
}

#[test]
fn stale_connections_of_removed_interfaces_are_moved_aside() {
    let root = root_with(&[
        (ETH0, "old"),
        (
            "/etc/NetworkManager/system-connections/nova-agent-eth2.nmconnection",
            "stale",
        ),
        (
            "/etc/NetworkManager/system-connections/nova-agent-eth2.nmconnection.1700000000.bak~",
            "backup",
        ),
        (
            "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
            "user's",
        ),
    ]);
    let plan = render(&realistic(), &root);
    assert_eq!(
        plan.remove,
        vec!["/etc/NetworkManager/system-connections/nova-agent-eth2.nmconnection"]
    );
    assert!(!plan.resolv_conf);
}

#[test]
fn rendering_is_deterministic() {
    assert_rendering_is_deterministic(&NetworkManager);
}

#[test]
fn apply_reloads_then_brings_up_each_connection() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_with);
    assert_eq!(
        log,
        vec![
            planned(),
            "sethostname web-1".to_owned(),
            "run /usr/bin/nmcli connection reload".to_owned(),
            "run /usr/bin/nmcli connection up id nova-agent-eth0".to_owned(),
            "run /usr/bin/nmcli connection up id nova-agent-eth1".to_owned(),
        ]
    );
}

#[test]
fn failing_reload_stops_before_bringing_up() {
    let log = apply_failing(
        "/usr/bin/nmcli connection reload",
        8,
        "Couldn't restart network: 8",
        apply_with,
    );
    assert_eq!(log.last().unwrap(), "run /usr/bin/nmcli connection reload");
}

#[test]
fn one_failing_connection_reports_its_code_after_trying_all() {
    let up_eth1 = "/usr/bin/nmcli connection up id nova-agent-eth1";
    let log = apply_failing(up_eth1, 4, "Couldn't restart network: 4", apply_with);
    assert_eq!(log.last().unwrap(), &format!("run {up_eth1}"));
}

#[test]
fn several_failing_connections_name_the_interfaces() {
    let mut recorder = Recorder::default();
    for name in ["eth0", "eth1"] {
        let line = format!("/usr/bin/nmcli connection up id nova-agent-{name}");
        recorder.exit_codes.insert(line, 4);
    }
    apply_expecting(recorder, Err("Failed to start eth0, eth1"), apply_with);
}

#[test]
fn missing_nmcli_is_reported() {
    let log = apply_without("/usr/bin/nmcli", apply_with);
    assert_eq!(log.last().unwrap(), "run /usr/bin/nmcli connection reload");
}

#[test]
fn failing_sethostname_stops_before_reloading() {
    assert_refused_hostname_stops(apply_with, &[&planned(), "sethostname web-1"]);
}

#[test]
fn failing_write_stops_the_sequence() {
    assert_failed_write_stops(apply_with, "disk full", &[&planned()]);
}
