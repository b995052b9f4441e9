use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_failed_write_stops,
    assert_refused_hostname_stops, assert_rendering_is_deterministic, assert_whole_plan,
    network_from, one_interface, realistic, render, vector_network, Recorder, REALISTIC_HOSTS,
};

const PLANNED: &str = "write /etc/netplan/90-nova-agent.yaml /etc/hostname /etc/hosts";

fn plan(network: &Network) -> Plan {
    render(&Netplan, &[], network).unwrap()
}

fn yaml(plan: &Plan) -> &str {
    std::str::from_utf8(plan.content(CONFIG_PATH).unwrap()).unwrap()
}

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    apply_on(&Netplan, &realistic(), &[], actions)
}

#[test]
fn realistic_payload_renders_whole_files() {
    let plan = plan(&realistic());
    let config = r#"# Automatically generated, do not edit
network:
  version: 2
  ethernets:
    eth0:
      # Label public
      match:
        macaddress: "bc:76:4e:20:6c:5a"
      set-name: eth0
      addresses:
        - "198.51.100.10/24"
        - "198.51.100.11/24"
        - "2001:db8:0:1::10/64"
        - "2001:db8:0:1::11/64"
      routes:
        - to: default
          via: "198.51.100.1"
        - to: default
          via: "fe80::def"
      nameservers:
        addresses:
          - "69.20.0.164"
          - "69.20.0.196"
    eth1:
      # Label private
      match:
        macaddress: "bc:76:4e:20:6c:5b"
      set-name: eth1
      addresses:
        - "10.208.227.239/19"
      routes:
        - to: "10.208.0.0/12"
          via: "10.208.224.1"
        - to: "10.176.0.0/12"
          via: "10.208.224.1"
"#;
    assert_whole_plan(
        &plan,
        &[
            ("/etc/netplan/90-nova-agent.yaml", config, 0o600),
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
        yaml(&plan),
        r#"# Automatically generated, do not edit
network:
  version: 2
  ethernets:
    eth0:
      # Label public
      match:
        macaddress: "00:11:22:33:44:55"
      set-name: eth0
      addresses:
        - "192.0.2.42/24"
      routes:
        - to: default
          via: "192.0.2.1"
      nameservers:
        addresses:
          - "192.0.2.2"
"#
    );
    assert_eq!(plan.content("/etc/hostname"), Some(&b"example\n"[..]));
    assert_eq!(
        plan.content("/etc/hosts"),
        Some(&b"192.0.2.42\texample\n"[..])
    );
}

#[test]
fn ipv6_only_interface() {
    let plan = plan(&vector_network("interfaces-debian-ipv6"));
    assert_eq!(
        yaml(&plan),
        r#"# Automatically generated, do not edit
network:
  version: 2
  ethernets:
    eth0:
      # Label public
      match:
        macaddress: "00:11:22:33:44:55"
      set-name: eth0
      addresses:
        - "2001:db8::42/96"
      routes:
        - to: default
          via: "2001:db8::1"
      nameservers:
        addresses:
          - "2001:db8::2"
"#
    );
}

#[test]
fn gateways_outside_every_subnet_are_on_link() {
    let network = one_interface(serde_json::json!({
        "ip4s": [{"address": "203.0.113.5", "netmask": "255.255.255.255"}],
        "ip6s": [{"address": "2001:db8:1::5", "prefixlen": 64}],
        "gateway4": "203.0.113.1", "gateway6": "2001:db8:2::1",
        "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "192.0.2.1"}]
    }));
    assert_eq!(
        yaml(&plan(&network)),
        r#"# Automatically generated, do not edit
network:
  version: 2
  ethernets:
    eth0:
      match:
        macaddress: "00:11:22:33:44:55"
      set-name: eth0
      addresses:
        - "203.0.113.5/32"
        - "2001:db8:1::5/64"
      routes:
        - to: default
          via: "203.0.113.1"
          on-link: true
        - to: default
          via: "2001:db8:2::1"
          on-link: true
        - to: "10.0.0.0/8"
          via: "192.0.2.1"
          on-link: true
"#
    );
}

#[test]
fn only_the_default_route_via_the_gateway_is_left_out_and_dns_is_unique() {
    let network = one_interface(serde_json::json!({
        "ip4s": [{"address": "192.0.2.42", "netmask": "255.255.255.0"}],
        "gateway4": "192.0.2.1",
        "dns": ["192.0.2.2", "192.0.2.2"],
        "routes": [
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.254"}
        ]
    }));
    let config = plan(&network);
    let routes_and_dns = yaml(&config).split_once("      routes:\n").unwrap().1;
    assert_eq!(
        routes_and_dns,
        r#"        - to: default
          via: "192.0.2.1"
        - to: "0.0.0.0/0"
          via: "192.0.2.254"
      nameservers:
        addresses:
          - "192.0.2.2"
"#
    );
}

#[test]
fn interface_without_addresses_and_no_interfaces() {
    let bare = one_interface(serde_json::json!({"ip4s": [], "ip6s": []}));
    assert_eq!(
        yaml(&plan(&bare)),
        "# Automatically generated, do not edit\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      \
         match:\n        macaddress: \"00:11:22:33:44:55\"\n      set-name: eth0\n"
    );
    let none = network_from(&serde_json::json!({}));
    assert_eq!(
        yaml(&plan(&none)),
        "# Automatically generated, do not edit\nnetwork:\n  version: 2\n"
    );
}

#[test]
fn unusual_interface_names_are_quoted() {
    assert_eq!(yaml_name("eth0"), "eth0");
    assert_eq!(yaml_name("enp0s3.100"), "enp0s3.100");
    assert_eq!(yaml_name("br_lan-1"), "br_lan-1");
    assert_eq!(yaml_name("-x"), "\"-x\"");
    assert_eq!(yaml_name("a#b"), "\"a#b\"");
    assert_eq!(yaml_name("a\"b\\c"), r#""a\"b\\c""#);
}

#[test]
fn rendering_is_deterministic() {
    assert_rendering_is_deterministic(&Netplan);
}

#[test]
fn apply_writes_sets_the_hostname_and_applies() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_with);
    assert_eq!(
        log,
        [PLANNED, "sethostname web-1", "run /usr/sbin/netplan apply"]
    );
}

#[test]
fn failing_netplan_apply_reports_its_code() {
    apply_failing(
        "/usr/sbin/netplan",
        78,
        "Couldn't apply netplan configuration: 78",
        apply_with,
    );
}

#[test]
fn missing_netplan_is_reported() {
    apply_without("/usr/sbin/netplan", apply_with);
}

#[test]
fn failing_sethostname_stops_before_applying() {
    assert_refused_hostname_stops(apply_with, &[PLANNED, "sethostname web-1"]);
}

#[test]
fn failing_write_stops_the_sequence() {
    assert_failed_write_stops(apply_with, "disk full", &[PLANNED]);
}
