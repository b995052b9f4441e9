use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_failed_write_stops,
    assert_refused_hostname_stops, assert_rendering_is_deterministic, assert_whole_plan,
    one_interface, realistic, root_with, text, vector_network, Recorder, REALISTIC_HOSTS,
};

const ETH0: &str = "/etc/systemd/network/50-nova-agent-eth0.network";
const ETH1: &str = "/etc/systemd/network/50-nova-agent-eth1.network";

fn render(network: &Network, root: &tempfile::TempDir) -> Plan {
    crate::testutil::render_in(&Networkd, root, network).unwrap()
}

fn plan(network: &Network) -> Plan {
    render(network, &root_with(&[]))
}

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    apply_on(&Networkd, &realistic(), &[], actions)
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

[Match]
MACAddress=bc:76:4e:20:6c:5a
Name=eth0

[Network]
Address=198.51.100.10/24
Address=198.51.100.11/24
Address=2001:db8:0:1::10/64
Address=2001:db8:0:1::11/64
Gateway=198.51.100.1
Gateway=fe80::def
DNS=69.20.0.164
DNS=69.20.0.196
";
    let eth1 = "\
# Automatically generated, do not edit
# Label private

[Match]
MACAddress=bc:76:4e:20:6c:5b
Name=eth1

[Network]
Address=10.208.227.239/19

[Route]
Destination=10.208.0.0/12
Gateway=10.208.224.1

[Route]
Destination=10.176.0.0/12
Gateway=10.208.224.1
";
    assert_whole_plan(
        &plan,
        &[
            (ETH0, eth0, 0o644),
            (ETH1, eth1, 0o644),
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

[Match]
MACAddress=00:11:22:33:44:55
Name=eth0

[Network]
Address=192.0.2.42/24
Gateway=192.0.2.1
DNS=192.0.2.2
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

[Match]
MACAddress=00:11:22:33:44:55
Name=eth0

[Network]
Address=2001:db8::42/96
Gateway=2001:db8::1
DNS=2001:db8::2
"
    );
    assert_eq!(text(&plan, "/etc/hosts"), "2001:db8::42\texample\n");
}

#[test]
fn gateways_outside_every_subnet_are_on_link() {
    let network = one_interface(serde_json::json!({
        "mac": "00:11:22:33:44:55",
        "ip4s": [{"address": "203.0.113.5", "netmask": "255.255.255.255"}],
        "ip6s": [{"address": "2001:db8:1::5", "prefixlen": 64}],
        "gateway4": "203.0.113.1", "gateway6": "2001:db8:2::1",
        "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "192.0.2.1"}]
    }));
    assert_eq!(
        text(&plan(&network), ETH0),
        "\
# Automatically generated, do not edit

[Match]
MACAddress=00:11:22:33:44:55
Name=eth0

[Network]
Address=203.0.113.5/32
Address=2001:db8:1::5/64

[Route]
Gateway=203.0.113.1
GatewayOnLink=yes

[Route]
Gateway=2001:db8:2::1
GatewayOnLink=yes

[Route]
Destination=10.0.0.0/8
Gateway=192.0.2.1
GatewayOnLink=yes
"
    );
}

#[test]
fn on_link_is_decided_per_subnet_and_never_for_link_local() {
    let interface = &realistic().interfaces[0];
    let on_link = |gateway: &str| needs_on_link(gateway.parse().unwrap(), interface);
    assert!(!on_link("198.51.100.254"));
    assert!(on_link("198.51.101.1"));
    assert!(!on_link("fe80::def"));
    assert!(!on_link("febf::1"));
    assert!(on_link("fec0::1"));
    assert!(!on_link("2001:db8:0:1::1"));
    assert!(on_link("2001:db8:0:2::1"));
}

#[test]
fn only_the_default_route_via_the_gateway_is_left_out() {
    let network = one_interface(serde_json::json!({
        "ip4s": [{"address": "192.0.2.42", "netmask": "255.255.255.0"}],
        "gateway4": "192.0.2.1",
        "dns": ["192.0.2.2", "192.0.2.3", "192.0.2.2"],
        "routes": [
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
            {"network": "198.51.100.0", "netmask": "255.255.255.0", "gateway": "192.0.2.1"},
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.254"}
        ]
    }));
    assert_eq!(
        text(&plan(&network), ETH0),
        "\
# Automatically generated, do not edit

[Match]
MACAddress=00:11:22:33:44:55
Name=eth0

[Network]
Address=192.0.2.42/24
Gateway=192.0.2.1
DNS=192.0.2.2
DNS=192.0.2.3

[Route]
Destination=198.51.100.0/24
Gateway=192.0.2.1

[Route]
Destination=0.0.0.0/0
Gateway=192.0.2.254
"
    );
}

#[test]
fn interface_without_addresses_is_matched_only() {
    let network = one_interface(serde_json::json!({"ip4s": [], "ip6s": []}));
    assert_eq!(
        text(&plan(&network), ETH0),
        "# Automatically generated, do not edit\n\n[Match]\nMACAddress=00:11:22:33:44:55\nName=eth0\n\n[Network]\n"
    );
}

#[test]
fn stale_files_of_removed_interfaces_are_moved_aside() {
    let root = root_with(&[
        (ETH0, "old"),
        ("/etc/systemd/network/50-nova-agent-eth2.network", "stale"),
        (
            "/etc/systemd/network/50-nova-agent-eth2.network.1700000000.bak~",
            "backup",
        ),
        (
            "/etc/systemd/network/50-nova-agent-eth3.link",
            "not ours to judge",
        ),
        ("/etc/systemd/network/10-other.network", "someone else's"),
    ]);
    let plan = render(&realistic(), &root);
    assert_eq!(
        plan.remove,
        vec!["/etc/systemd/network/50-nova-agent-eth2.network"]
    );
    assert!(!plan.resolv_conf);
}

#[test]
fn rendering_is_deterministic() {
    assert_rendering_is_deterministic(&Networkd);
}

#[test]
fn existing_hosts_lines_are_kept() {
    let root = root_with(&[("/etc/hosts", "127.0.0.1\tlocalhost\n198.51.100.10\told\n")]);
    let plan = render(&realistic(), &root);
    assert_eq!(
        text(&plan, "/etc/hosts"),
        "127.0.0.1\tlocalhost\n# 198.51.100.10\told\t# Removed by nova-agent\n198.51.100.10\tweb-1\n\
         2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n"
    );
}

#[test]
fn apply_reloads_then_reconfigures_each_interface() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_with);
    assert_eq!(
        log,
        vec![
            planned(),
            "sethostname web-1".to_owned(),
            "run /usr/bin/networkctl reload".to_owned(),
            "run /usr/bin/networkctl reconfigure eth0".to_owned(),
            "run /usr/bin/networkctl reconfigure eth1".to_owned(),
        ]
    );
}

#[test]
fn failing_reload_stops_before_reconfiguring() {
    let log = apply_failing(
        "/usr/bin/networkctl reload",
        1,
        "Couldn't restart network: 1",
        apply_with,
    );
    assert_eq!(log.last().unwrap(), "run /usr/bin/networkctl reload");
}

#[test]
fn one_failing_reconfigure_reports_its_code_after_trying_all() {
    let log = apply_failing(
        "/usr/bin/networkctl reconfigure eth0",
        3,
        "Couldn't restart network: 3",
        apply_with,
    );
    assert_eq!(
        log.last().unwrap(),
        "run /usr/bin/networkctl reconfigure eth1"
    );
}

#[test]
fn several_failing_reconfigures_name_the_interfaces() {
    let recorder = Recorder::exiting(&[
        ("/usr/bin/networkctl reconfigure eth0", 1),
        ("/usr/bin/networkctl reconfigure eth1", 1),
    ]);
    apply_expecting(recorder, Err("Failed to start eth0, eth1"), apply_with);
}

#[test]
fn missing_networkctl_is_reported() {
    let log = apply_without("/usr/bin/networkctl", apply_with);
    assert_eq!(log.last().unwrap(), "run /usr/bin/networkctl reload");
}

#[test]
fn failing_sethostname_stops_before_restarting() {
    assert_refused_hostname_stops(apply_with, &[&planned(), "sethostname web-1"]);
}

#[test]
fn failing_write_stops_the_sequence() {
    assert_failed_write_stops(apply_with, "disk full", &[&planned()]);
}
