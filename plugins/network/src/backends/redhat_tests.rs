use serde_json::json;

use super::*;
use crate::backend::FileChange;
use crate::testutil::{network_from, realistic, root_with, rstrip_lines, vector, Recorder};

fn render_in(root: &tempfile::TempDir, network: &Network) -> Plan {
    RedhatIfcfg
        .render(network, &System::new(root.path()))
        .unwrap()
}

fn text<'a>(plan: &'a Plan, path: &str) -> &'a str {
    std::str::from_utf8(
        plan.content(path)
            .unwrap_or_else(|| panic!("{path} not planned")),
    )
    .unwrap()
}

const PLANNED: &str = "write /etc/sysconfig/network-scripts/ifcfg-eth0 \
/etc/sysconfig/network-scripts/ifcfg-eth0:1 /etc/sysconfig/network-scripts/ifcfg-eth1 \
/etc/sysconfig/network-scripts/route-eth1 /etc/sysconfig/network /etc/hosts";

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    let root = root_with(&[]);
    let network = realistic();
    let system = System::new(root.path());
    let plan = RedhatIfcfg.render(&network, &system).unwrap();
    RedhatIfcfg.apply(&network, &system, &plan, actions)
}

#[test]
fn name_is_redhat_ifcfg() {
    assert_eq!(RedhatIfcfg.name(), "redhat-ifcfg");
}

#[test]
fn seed_vectors_interfaces() {
    for id in ["interfaces-redhat-ipv4", "interfaces-redhat-ipv6"] {
        let v = vector(id);
        assert_eq!(v["match"], "rstrip_lines");
        let plan = render_in(&root_with(&[]), &network_from(&v["input"]));
        let file = text(&plan, "/etc/sysconfig/network-scripts/ifcfg-eth0");
        assert_eq!(rstrip_lines(file), v["expected"]["ifcfg-eth0"], "{id}");
        assert_eq!(file, v["full_output"]["ifcfg-eth0"], "{id}");
        assert!(plan
            .content("/etc/sysconfig/network-scripts/route-eth0")
            .is_none());
    }
}

#[test]
fn seed_vectors_hostname() {
    for id in ["hostname-redhat-add-entry", "hostname-redhat-update-entry"] {
        let v = vector(id);
        assert_eq!(v["match"], "exact");
        let existing = v["input"]["existing_file"].as_str().unwrap();
        let expected = &v["expected"]["/etc/sysconfig/network"];
        // The seed's get_hostname_file alone ...
        assert_eq!(
            set_variable(existing, "HOSTNAME", "example"),
            *expected,
            "{id}"
        );
        // ... and the whole render, where NETWORKING_IPV6 stays yes with IPv6.
        let network = network_from(&json!({
            "hostname": "example",
            "interfaces": {"eth0": {"ip6s": [{"address": "2001:db8::42", "prefixlen": 96}]}}
        }));
        let plan = render_in(&root_with(&[(NETWORK_FILE, existing)]), &network);
        assert_eq!(text(&plan, NETWORK_FILE), *expected, "{id}");
    }
}

#[test]
fn seed_vectors_etc_hosts() {
    for id in [
        "etchosts-empty",
        "etchosts-add",
        "etchosts-update-one-hostname",
        "etchosts-update-two-hostnames",
        "etchosts-update-two-entries",
        "etchosts-update-comment",
    ] {
        let v = vector(id);
        let root = root_with(&[("/etc/hosts", v["input"]["etc_hosts"].as_str().unwrap())]);
        let plan = render_in(&root, &network_from(&v["input"]));
        assert_eq!(
            text(&plan, "/etc/hosts"),
            v["expected"]["/etc/hosts"],
            "{id}"
        );
    }
}

#[test]
fn realistic_payload_whole_files() {
    let scripts = "/etc/sysconfig/network-scripts";
    let root = root_with(&[
        (&format!("{scripts}/ifcfg-lo") as &str, "DEVICE=lo\n"),
        (&format!("{scripts}/ifcfg-eth0"), "DEVICE=eth0\n"),
        (&format!("{scripts}/ifcfg-eth0:2"), "DEVICE=eth0:2\n"),
        (&format!("{scripts}/ifcfg-eth0.1700000000.bak~"), "old\n"),
        (&format!("{scripts}/ifcfg-eth1.100"), "VLAN=yes\n"),
        (&format!("{scripts}/ifcfg-eth2"), "DEVICE=eth2\n"),
        (&format!("{scripts}/ifup-eth"), "#!/bin/sh\n"),
        (&format!("{scripts}/route-eth0:1"), "ADDRESS0=10.0.0.0\n"),
        (&format!("{scripts}/route-eth1"), "ADDRESS0=10.0.0.0\n"),
        (&format!("{scripts}/route-eth2"), "ADDRESS0=10.0.0.0\n"),
        (&format!("{scripts}/route-lo"), "ADDRESS0=127.0.0.0\n"),
        (NETWORK_FILE, "NETWORKING=yes\nHOSTNAME=old\n"),
    ]);
    let plan = render_in(&root, &realistic());
    let eth0 = "\
# Automatically generated, do not edit

# Label public
DEVICE=eth0
BOOTPROTO=static
HWADDR=bc:76:4e:20:6c:5a
IPADDR=198.51.100.10
NETMASK=255.255.255.0
DEFROUTE=yes
GATEWAY=198.51.100.1
IPV6INIT=yes
IPV6_AUTOCONF=no
IPV6ADDR=2001:db8:0:1::10/64
IPV6_DEFAULTGW=fe80::def%eth0
DNS1=69.20.0.164
DNS2=69.20.0.196
ONBOOT=yes
NM_CONTROLLED=no
";
    let eth0_1 = "\
# Automatically generated, do not edit

# Label public
DEVICE=eth0:1
BOOTPROTO=static
HWADDR=bc:76:4e:20:6c:5a
IPADDR=198.51.100.11
NETMASK=255.255.255.0
IPV6INIT=yes
IPV6_AUTOCONF=no
IPV6ADDR=2001:db8:0:1::11/64
ONBOOT=yes
NM_CONTROLLED=no
";
    let eth1 = "\
# Automatically generated, do not edit

# Label private
DEVICE=eth1
BOOTPROTO=static
HWADDR=bc:76:4e:20:6c:5b
IPADDR=10.208.227.239
NETMASK=255.255.224.0
ONBOOT=yes
NM_CONTROLLED=no
";
    let route_eth1 = "\
ADDRESS0=10.208.0.0
NETMASK0=255.240.0.0
GATEWAY0=10.208.224.1
ADDRESS1=10.176.0.0
NETMASK1=255.240.0.0
GATEWAY1=10.208.224.1
";
    let network = "NETWORKING=yes\nHOSTNAME=web-1\nNETWORKING_IPV6=yes\n";
    let hosts = "198.51.100.10\tweb-1\n2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n";
    let file = |path: &str, content: &str| FileChange {
        path: path.to_owned(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    };
    assert_eq!(
        plan,
        Plan {
            files: vec![
                file(&format!("{scripts}/ifcfg-eth0"), eth0),
                file(&format!("{scripts}/ifcfg-eth0:1"), eth0_1),
                file(&format!("{scripts}/ifcfg-eth1"), eth1),
                file(&format!("{scripts}/route-eth1"), route_eth1),
                file(NETWORK_FILE, network),
                file("/etc/hosts", hosts),
            ],
            remove: vec![
                format!("{scripts}/ifcfg-eth0:2"),
                format!("{scripts}/ifcfg-eth2"),
                format!("{scripts}/route-eth0:1"),
                format!("{scripts}/route-eth2"),
            ],
            resolv_conf: false,
        }
    );
}

#[test]
fn route_file_named_after_interface_and_numbered_without_gaps() {
    let network = network_from(&json!({
        "interfaces": {"eth0": {
            "ip4s": [{"address": "192.0.2.10"}, {"address": "192.0.2.11"}],
            "gateway4": "192.0.2.1",
            "routes": [{"network": "10.1.0.0", "netmask": "255.255.0.0", "gateway": "192.0.2.2"},
                       {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                       {"network": "10.2.0.0", "netmask": "255.255.0.0", "gateway": "192.0.2.3"}]
        }}
    }));
    let plan = render_in(&root_with(&[]), &network);
    assert_eq!(
        text(&plan, "/etc/sysconfig/network-scripts/route-eth0"),
        "ADDRESS0=10.1.0.0\nNETMASK0=255.255.0.0\nGATEWAY0=192.0.2.2\n\
ADDRESS1=10.2.0.0\nNETMASK1=255.255.0.0\nGATEWAY1=192.0.2.3\n"
    );
    assert!(plan
        .content("/etc/sysconfig/network-scripts/route-eth0:1")
        .is_none());
    // The gateway is on the first stanza only, and there is no label.
    assert_eq!(
        text(&plan, "/etc/sysconfig/network-scripts/ifcfg-eth0:1"),
        "# Automatically generated, do not edit\n\nDEVICE=eth0:1\nBOOTPROTO=static\n\
HWADDR=00:11:22:33:44:55\nIPADDR=192.0.2.11\nNETMASK=255.255.255.0\nONBOOT=yes\nNM_CONTROLLED=no\n"
    );

    let only_default = network_from(&json!({
        "interfaces": {"eth0": {
            "ip4s": [{"address": "192.0.2.10"}], "gateway4": "192.0.2.1",
            "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}]
        }}
    }));
    assert_eq!(route_file(&only_default.interfaces[0]), None);
}

#[test]
fn sysconfig_network_without_a_file() {
    let network = network_from(&json!({"hostname": "h", "interfaces": {}}));
    assert_eq!(
        sysconfig_network("", &network),
        "NETWORKING_IPV6=no\nHOSTNAME=h\n"
    );
    assert_eq!(
        sysconfig_network(
            "  NETWORKING_IPV6 = yes \n\n# c\nHOSTNAME=a\nHOSTNAME=b\n",
            &network
        ),
        "NETWORKING_IPV6=no\n\n# c\nHOSTNAME=h\nHOSTNAME=h\n"
    );
}

#[test]
fn apply_sequence_normal_run() {
    let mut recorder = Recorder::default();
    assert_eq!(apply_with(&mut recorder), Ok(()));
    assert_eq!(
        recorder.log,
        [
            PLANNED,
            "sethostname web-1",
            "run /etc/init.d/network restart"
        ]
    );
}

#[test]
fn apply_failing_restart() {
    let mut recorder = Recorder::default();
    recorder.exit_codes.insert("/etc/init.d/network".into(), 1);
    assert_eq!(
        apply_with(&mut recorder),
        Err("Couldn't restart network: 1".to_owned())
    );
}

#[test]
fn apply_missing_init_script() {
    let mut recorder = Recorder::default();
    recorder.missing.push("/etc/init.d/network".into());
    assert_eq!(
        apply_with(&mut recorder),
        Err("cannot run /etc/init.d/network: No such file or directory".to_owned())
    );
}

#[test]
fn apply_failed_write_stops_first() {
    let mut recorder = Recorder {
        write_error: Some("Read-only file system".to_owned()),
        ..Recorder::default()
    };
    assert_eq!(
        apply_with(&mut recorder),
        Err("Read-only file system".to_owned())
    );
    assert_eq!(recorder.log, [PLANNED]);
}

#[test]
fn apply_failed_sethostname() {
    let mut recorder = Recorder {
        hostname_error: Some("Operation not permitted".to_owned()),
        ..Recorder::default()
    };
    assert_eq!(
        apply_with(&mut recorder),
        Err("Couldn't set hostname: Operation not permitted".to_owned())
    );
    assert_eq!(recorder.log, [PLANNED, "sethostname web-1"]);
}
