use super::*;
use crate::backend::FileChange;
use crate::testutil::{network_from, realistic, root_with, vector, Recorder};

fn render(network: &Network, root: &tempfile::TempDir) -> Plan {
    Netplan.render(network, &System::new(root.path())).unwrap()
}

fn yaml(plan: &Plan) -> &str {
    std::str::from_utf8(plan.content(CONFIG_PATH).unwrap()).unwrap()
}

fn one_interface(interface: serde_json::Value) -> Network {
    network_from(&serde_json::json!({ "interfaces": { "eth0": interface } }))
}

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    let root = root_with(&[]);
    let network = realistic();
    let plan = render(&network, &root);
    Netplan.apply(&network, &System::new(root.path()), &plan, actions)
}

#[test]
fn realistic_payload_renders_whole_files() {
    let root = root_with(&[]);
    let plan = render(&realistic(), &root);
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
    let hosts = "198.51.100.10\tweb-1\n2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n";
    let file = |path: &str, content: &str, mode: u32| FileChange {
        path: path.to_owned(),
        content: content.as_bytes().to_vec(),
        mode,
    };
    assert_eq!(
        plan,
        Plan {
            files: vec![
                file("/etc/netplan/90-nova-agent.yaml", config, 0o600),
                file("/etc/hostname", "web-1\n", 0o644),
                file("/etc/hosts", hosts, 0o644),
            ],
            remove: vec![],
            resolv_conf: false,
        }
    );
}

#[test]
fn ipv4_only_interface() {
    let root = root_with(&[]);
    let plan = render(
        &network_from(&vector("interfaces-debian-ipv4")["input"]),
        &root,
    );
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
    let root = root_with(&[]);
    let plan = render(
        &network_from(&vector("interfaces-debian-ipv6")["input"]),
        &root,
    );
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
    let root = root_with(&[]);
    assert_eq!(
        yaml(&render(&network, &root)),
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
    let root = root_with(&[]);
    let config = render(&network, &root);
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
    let root = root_with(&[]);
    let bare = one_interface(serde_json::json!({"ip4s": [], "ip6s": []}));
    assert_eq!(
        yaml(&render(&bare, &root)),
        "# Automatically generated, do not edit\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      \
         match:\n        macaddress: \"00:11:22:33:44:55\"\n      set-name: eth0\n"
    );
    let none = network_from(&serde_json::json!({}));
    assert_eq!(
        yaml(&render(&none, &root)),
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
    let root = root_with(&[("/etc/hosts", "127.0.0.1\tlocalhost\n")]);
    let first = render(&realistic(), &root);
    assert_eq!(first, render(&realistic(), &root));
    let written: Vec<(&str, &str)> = first
        .files
        .iter()
        .map(|f| (f.path.as_str(), std::str::from_utf8(&f.content).unwrap()))
        .collect();
    let root = root_with(&written);
    assert_eq!(render(&realistic(), &root), first);
}

#[test]
fn apply_writes_sets_the_hostname_and_applies() {
    let mut recorder = Recorder::default();
    apply_with(&mut recorder).unwrap();
    assert_eq!(
        recorder.log,
        [
            "write /etc/netplan/90-nova-agent.yaml /etc/hostname /etc/hosts",
            "sethostname web-1",
            "run /usr/sbin/netplan apply",
        ]
    );
}

#[test]
fn failing_netplan_apply_reports_its_code() {
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/usr/sbin/netplan".to_owned(), 78);
    assert_eq!(
        apply_with(&mut recorder),
        Err("Couldn't apply netplan configuration: 78".to_owned())
    );
}

#[test]
fn missing_netplan_is_reported() {
    let mut recorder = Recorder::default();
    recorder.missing.push("/usr/sbin/netplan".to_owned());
    assert_eq!(
        apply_with(&mut recorder),
        Err("cannot run /usr/sbin/netplan: No such file or directory".to_owned())
    );
}

#[test]
fn failing_sethostname_stops_before_applying() {
    let mut recorder = Recorder {
        hostname_error: Some("Operation not permitted".to_owned()),
        ..Recorder::default()
    };
    assert_eq!(
        apply_with(&mut recorder),
        Err("Couldn't set hostname: Operation not permitted".to_owned())
    );
    assert_eq!(
        recorder.log,
        [
            "write /etc/netplan/90-nova-agent.yaml /etc/hostname /etc/hosts",
            "sethostname web-1"
        ]
    );
}

#[test]
fn failing_write_stops_the_sequence() {
    let mut recorder = Recorder {
        write_error: Some("disk full".to_owned()),
        ..Recorder::default()
    };
    assert_eq!(apply_with(&mut recorder), Err("disk full".to_owned()));
    assert_eq!(
        recorder.log,
        ["write /etc/netplan/90-nova-agent.yaml /etc/hostname /etc/hosts"]
    );
}
