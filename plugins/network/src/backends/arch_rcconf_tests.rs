//! Tests of the Arch back-ends' `/etc/rc.conf` editor (`arch_rcconf`).

use serde_json::json;

use super::*;
use crate::backend::Plan;
use crate::backends::arch::ArchRcconf;
use crate::testutil::{network_from, realistic, render, rstrip_lines, vector};

/// The whole `arch-rcconf` rendering over an `/etc/rc.conf` of `existing`.
fn render_legacy(existing: &str, network: &Network) -> Result<Plan, String> {
    render(&ArchRcconf, &[("/etc/rc.conf", existing)], network)
}

// --- The seed's vectors ----------------------------------------------------

fn check_legacy_vector(id: &str) {
    let v = vector(id);
    let existing = v["input"]["existing_files"]["/etc/rc.conf"]
        .as_str()
        .unwrap();
    let network = network_from(&v["input"]);
    let rc_conf = legacy_rc_conf(existing, &network).unwrap();
    assert_eq!(
        rstrip_lines(&rc_conf),
        v["expected"]["/etc/rc.conf"].as_str().unwrap()
    );
    assert_eq!(rc_conf, v["full_output"]["/etc/rc.conf"].as_str().unwrap());
    // The whole back-end adds the hostname to the same file.
    let plan = render_legacy(existing, &network).unwrap();
    let with_hostname = rc_conf + "HOSTNAME=\"example\"\n";
    assert_eq!(plan.content("/etc/rc.conf"), Some(with_hostname.as_bytes()));
}

#[test]
fn seed_vector_legacy_ipv4() {
    check_legacy_vector("interfaces-arch-legacy-ipv4");
}

#[test]
fn seed_vector_legacy_ipv6() {
    check_legacy_vector("interfaces-arch-legacy-ipv6");
}

#[test]
fn seed_vector_netcfg_ipv4_rc_conf() {
    let v = vector("interfaces-arch-netcfg-ipv4");
    let existing = v["input"]["existing_files"]["/etc/rc.conf"]
        .as_str()
        .unwrap();
    let expected = v["expected"]["/etc/rc.conf"].as_str().unwrap();
    assert_eq!(rstrip_lines(&netcfg_rc_conf(existing, &["eth0"])), expected);
}

#[test]
fn seed_vectors_hostname() {
    for id in ["hostname-arch-add-entry", "hostname-arch-update-entry"] {
        let v = vector(id);
        let existing = v["input"]["existing_file"].as_str().unwrap();
        let expected = v["expected"]["/etc/rc.conf"].as_str().unwrap();
        assert_eq!(
            rc_conf_with_hostname(existing, &Hostname::new("example").unwrap()),
            expected,
            "{id}"
        );
    }
}

// --- Details ---------------------------------------------------------------

#[test]
fn referenced_variables_are_commented_out_not_overwritten() {
    // B-NET-11: the seed wrote `#INTERFACES=(…)` over each referenced line.
    let existing = "eth0=\"eth0 192.0.2.250 netmask 255.255.255.0\"\n\
eth1=\"eth1 10.0.0.5 netmask 255.0.0.0\"\nINTERFACES=(eth0 !eth1)\n\
gateway=\"default gw 192.0.2.254\"\nROUTES=(!gateway)\n";
    assert_eq!(
        netcfg_rc_conf(existing, &["eth0"]),
        "#eth0=\"eth0 192.0.2.250 netmask 255.255.255.0\"\n#eth1=\"eth1 10.0.0.5 netmask 255.0.0.0\"\n\
#INTERFACES=(eth0 !eth1)\n#gateway=\"default gw 192.0.2.254\"\n#ROUTES=(!gateway)\nNETWORKS=(eth0)\n"
    );
    let network = network_from(&json!({"interfaces": {"eth0": {
        "ip4s": [{"address": "192.0.2.10", "netmask": "255.255.255.0"}]}}}));
    assert_eq!(
        legacy_rc_conf("web=\"x\"\nNETWORKS=(web)\n", &network).unwrap(),
        "#web=\"x\"\n#NETWORKS=(web)\neth0=\"eth0 192.0.2.10 netmask 255.255.255.0\"\nINTERFACES=(eth0)\nROUTES=()\n"
    );
}

#[test]
fn two_gateways_of_a_family_are_refused_in_rc_conf() {
    let mut network = realistic();
    network.interfaces[1].gateway4 = Some("10.208.224.1".parse().unwrap());
    let refused = Err("Multiple IPv4 default routes specified".to_owned());
    assert_eq!(render_legacy("", &network), refused);
    let mut network = realistic();
    network.interfaces[1].gateway6 = Some("fe80::1".parse().unwrap());
    let refused = Err("Multiple IPv6 default routes specified".to_owned());
    assert_eq!(render_legacy("", &network), refused);
}
