use serde_json::json;

use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_failed_write_stops,
    assert_refused_hostname_stops, assert_whole_plan, check_etc_hosts_vectors,
    check_interfaces_vector, network_from, realistic, root_with, text, vector, Recorder,
    REALISTIC_HOSTS,
};

fn render_in(root: &tempfile::TempDir, network: &Network) -> Plan {
    crate::testutil::render_in(&RedhatIfcfg, root, network).unwrap()
}

const PLANNED: &str = "write /etc/sysconfig/network-scripts/ifcfg-eth0 \
/etc/sysconfig/network-scripts/ifcfg-eth0:1 /etc/sysconfig/network-scripts/ifcfg-eth1 \
/etc/sysconfig/network-scripts/route-eth1 /etc/sysconfig/network /etc/hosts";

fn apply_with(actions: &mut dyn Actions) -> Result<(), String> {
    apply_on(&RedhatIfcfg, &realistic(), &[], actions)
}

#[test]
fn name_is_redhat_ifcfg() {
    assert_eq!(RedhatIfcfg.name(), "redhat-ifcfg");
}

#[test]
fn seed_vectors_interfaces() {
    for id in ["interfaces-redhat-ipv4", "interfaces-redhat-ipv6"] {
        let plan = check_interfaces_vector(
            &RedhatIfcfg,
            id,
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "ifcfg-eth0",
        );
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
    check_etc_hosts_vectors(&RedhatIfcfg);
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
    assert_whole_plan(
        &plan,
        &[
            (&format!("{scripts}/ifcfg-eth0"), eth0, 0o644),
            (&format!("{scripts}/ifcfg-eth0:1"), eth0_1, 0o644),
            (&format!("{scripts}/ifcfg-eth1"), eth1, 0o644),
            (&format!("{scripts}/route-eth1"), route_eth1, 0o644),
            (NETWORK_FILE, network, 0o644),
            ("/etc/hosts", REALISTIC_HOSTS, 0o644),
        ],
        &[
            &format!("{scripts}/ifcfg-eth0:2"),
            &format!("{scripts}/ifcfg-eth2"),
            &format!("{scripts}/route-eth0:1"),
            &format!("{scripts}/route-eth2"),
        ],
        false,
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
    let log = apply_expecting(Recorder::default(), Ok(()), apply_with);
    assert_eq!(
        log,
        [
            PLANNED,
            "sethostname web-1",
            "run /etc/init.d/network restart"
        ]
    );
}

#[test]
fn apply_failing_restart() {
    apply_failing(
        "/etc/init.d/network",
        1,
        "Couldn't restart network: 1",
        apply_with,
    );
}

#[test]
fn apply_missing_init_script() {
    apply_without("/etc/init.d/network", apply_with);
}

#[test]
fn apply_failed_write_stops_first() {
    assert_failed_write_stops(apply_with, "Read-only file system", &[PLANNED]);
}

#[test]
fn apply_failed_sethostname() {
    assert_refused_hostname_stops(apply_with, &[PLANNED, "sethostname web-1"]);
}
