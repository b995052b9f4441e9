use serde_json::json;

use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_failed_write_stops,
    assert_refused_hostname_stops, assert_whole_plan, check_etc_hosts_vectors,
    check_hostname_vector, check_interfaces_vector, network_from, realistic, root_with, text,
    Recorder, REALISTIC_HOSTS,
};

fn render_in(root: &tempfile::TempDir, network: &Network) -> Plan {
    crate::testutil::render_in(&SuseIfcfg, root, network).unwrap()
}

const PLANNED: &str = "write /etc/sysconfig/network/ifcfg-eth0 \
/etc/sysconfig/network/ifroute-eth0 /etc/sysconfig/network/ifcfg-eth1 \
/etc/sysconfig/network/ifroute-eth1 /etc/sysconfig/network/config /etc/HOSTNAME /etc/hosts";

const INIT_SCRIPT: [(&str, &str); 1] = [("/etc/init.d/network", "#!/bin/sh\n")];

/// Applies the realistic payload on a root holding `files`.
fn apply_in<'a>(
    files: &'a [(&'a str, &'a str)],
) -> impl FnOnce(&mut dyn Actions) -> Result<(), String> + 'a {
    |actions| apply_on(&SuseIfcfg, &realistic(), files, actions)
}

#[test]
fn name_is_suse_ifcfg() {
    assert_eq!(SuseIfcfg.name(), "suse-ifcfg");
}

#[test]
fn seed_vectors_interfaces() {
    for id in ["interfaces-suse-ipv4", "interfaces-suse-ipv6"] {
        let v = crate::testutil::vector(id);
        let plan = check_interfaces_vector(
            &SuseIfcfg,
            id,
            "/etc/sysconfig/network/ifcfg-eth0",
            "ifcfg-eth0",
        );
        let ifroute = text(&plan, "/etc/sysconfig/network/ifroute-eth0");
        assert_eq!(ifroute, v["full_output"]["ifroute-eth0"], "{id}");
    }
}

#[test]
fn seed_vector_hostname() {
    check_hostname_vector(&SuseIfcfg, "hostname-suse", "/etc/HOSTNAME");
}

#[test]
fn seed_vectors_etc_hosts() {
    check_etc_hosts_vectors(&SuseIfcfg);
}

#[test]
fn realistic_payload_whole_files() {
    let dir = "/etc/sysconfig/network";
    let root = root_with(&[
        (
            DNS_CONFIG_FILE,
            "## comment\nNETCONFIG_DNS_POLICY=\"auto\"\nNETCONFIG_DNS_STATIC_SERVERS=\"8.8.8.8\"\n  NETCONFIG_X=1  \n",
        ),
        (&format!("{dir}/ifcfg-eth0") as &str, "BOOTPROTO='dhcp'\n"),
        (&format!("{dir}/ifcfg-eth2"), "BOOTPROTO='dhcp'\n"),
        (&format!("{dir}/ifcfg-lo"), "BOOTPROTO='static'\n"),
        (&format!("{dir}/ifcfg.template"), "\n"),
        (&format!("{dir}/ifroute-eth2"), "default 10.0.0.1 - -\n"),
        (&format!("{dir}/ifroute-lo"), "127.0.0.0/8 - - lo\n"),
        (&format!("{dir}/routes"), "default 10.0.0.1 - -\n"),
        (&format!("{dir}/scripts/functions"), "\n"),
    ]);
    let plan = render_in(&root, &realistic());
    let ifcfg_eth0 = "\
# Automatically generated, do not edit

# Label public
BOOTPROTO='static'
IPADDR='198.51.100.10'
NETMASK='255.255.255.0'
IPADDR_0='198.51.100.11'
NETMASK_0='255.255.255.0'
LABEL_0='0'
IPADDR_1='2001:db8:0:1::10'
PREFIXLEN_1='64'
LABEL_1='1'
IPADDR_2='2001:db8:0:1::11'
PREFIXLEN_2='64'
LABEL_2='2'
STARTMODE='auto'
USERCONTROL='no'
";
    let ifcfg_eth1 = "\
# Automatically generated, do not edit

# Label private
BOOTPROTO='static'
IPADDR='10.208.227.239'
NETMASK='255.255.224.0'
STARTMODE='auto'
USERCONTROL='no'
";
    let ifroute_eth0 = "default 198.51.100.1 - -\ndefault fe80::def - -\n";
    let ifroute_eth1 = "10.208.0.0 10.208.224.1 255.240.0.0 eth1\n\
10.176.0.0 10.208.224.1 255.240.0.0 eth1\n";
    let config = "## comment\nNETCONFIG_DNS_POLICY=\"auto\"\n\
NETCONFIG_DNS_STATIC_SERVERS=\"69.20.0.164 69.20.0.196\"\nNETCONFIG_X=1\n";
    assert_whole_plan(
        &plan,
        &[
            (&format!("{dir}/ifcfg-eth0"), ifcfg_eth0, 0o644),
            (&format!("{dir}/ifroute-eth0"), ifroute_eth0, 0o644),
            (&format!("{dir}/ifcfg-eth1"), ifcfg_eth1, 0o644),
            (&format!("{dir}/ifroute-eth1"), ifroute_eth1, 0o644),
            (DNS_CONFIG_FILE, config, 0o644),
            ("/etc/HOSTNAME", "web-1\n", 0o644),
            ("/etc/hosts", REALISTIC_HOSTS, 0o644),
        ],
        &[
            &format!("{dir}/ifcfg-eth2"),
            &format!("{dir}/ifroute-eth2"),
            &format!("{dir}/routes"),
        ],
        false,
    );
}

#[test]
fn dns_config_left_alone_without_nameservers_and_created_with_them() {
    let no_dns =
        network_from(&json!({"interfaces": {"eth0": {"ip4s": [{"address": "192.0.2.5"}]}}}));
    let root = root_with(&[(
        DNS_CONFIG_FILE,
        "NETCONFIG_DNS_STATIC_SERVERS=\"8.8.8.8\"\n",
    )]);
    assert!(render_in(&root, &no_dns).content(DNS_CONFIG_FILE).is_none());
    assert!(render_in(&root_with(&[]), &no_dns)
        .content(DNS_CONFIG_FILE)
        .is_none());

    let dns = network_from(&json!({"interfaces": {
        "eth0": {"ip4s": [{"address": "192.0.2.5"}], "dns": ["192.0.2.53", "2001:db8::53"]},
        "eth1": {"ip4s": [{"address": "10.0.0.5"}], "dns": ["192.0.2.53"]}
    }}));
    assert_eq!(
        text(&render_in(&root_with(&[]), &dns), DNS_CONFIG_FILE),
        "NETCONFIG_DNS_STATIC_SERVERS=\"192.0.2.53 2001:db8::53 192.0.2.53\"\n"
    );
}

#[test]
fn routes_and_files_edge_cases() {
    let network = network_from(&json!({"interfaces": {
        "eth0": {
            "ip6s": [{"address": "2001:db8::5", "prefixlen": 64}, {"address": "2001:db8::6", "prefixlen": 64}],
            "gateway4": "192.0.2.1",
            "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                       {"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "192.0.2.2"}]
        },
        "eth1": {"ip4s": [{"address": "10.0.0.5"}]}
    }}));
    assert_eq!(
        ifcfg_file(&network.interfaces[0]),
        "# Automatically generated, do not edit\n\nBOOTPROTO='static'\nIPADDR='2001:db8::5'\n\
PREFIXLEN='64'\nIPADDR_0='2001:db8::6'\nPREFIXLEN_0='64'\nLABEL_0='0'\nSTARTMODE='auto'\nUSERCONTROL='no'\n"
    );
    assert_eq!(
        ifroute_file(&network.interfaces[0]).unwrap(),
        "10.0.0.0 192.0.2.2 255.0.0.0 eth0\ndefault 192.0.2.1 - -\n"
    );
    assert_eq!(ifroute_file(&network.interfaces[1]), None);
}

#[test]
fn apply_sequence_with_init_script() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_in(&INIT_SCRIPT));
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
fn apply_sequence_with_systemd() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_in(&[]));
    assert_eq!(
        log,
        [
            PLANNED,
            "sethostname web-1",
            "run /usr/bin/systemctl restart network"
        ]
    );
}

#[test]
fn apply_failing_restart() {
    apply_failing(
        "/etc/init.d/network",
        7,
        "Couldn't restart network: 7",
        apply_in(&INIT_SCRIPT),
    );
}

#[test]
fn apply_missing_program() {
    apply_without("/usr/bin/systemctl", apply_in(&[]));
}

#[test]
fn apply_failed_write_stops_first() {
    assert_failed_write_stops(apply_in(&[]), "No space left on device", &[PLANNED]);
}

#[test]
fn apply_failed_sethostname() {
    assert_refused_hostname_stops(apply_in(&[]), &[PLANNED, "sethostname web-1"]);
}
