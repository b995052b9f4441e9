//! The seed's /etc/hosts rules beyond its vectors (which the back-ends'
//! tests run), and resolv.conf.

use super::*;
use crate::testutil::{network_from, realistic, vector, ETC_HOSTS_VECTORS, REALISTIC_HOSTS};

fn one(address4: &str, address6: Option<&str>) -> Network {
    let ip6s = address6.map_or(
        serde_json::json!([]),
        |a| serde_json::json!([{"address": a, "prefixlen": 64}]),
    );
    network_from(&serde_json::json!({
        "hostname": "example",
        "interfaces": {"eth0": {"ip4s": [{"address": address4, "netmask": "255.255.255.0"}], "ip6s": ip6s}}
    }))
}

#[test]
fn the_seed_s_vectors() {
    for id in ETC_HOSTS_VECTORS {
        let case = vector(id);
        let network = network_from(&case["input"]);
        let existing = case["input"]["etc_hosts"].as_str().unwrap();
        assert_eq!(
            etc_hosts(existing, &network),
            case["expected"]["/etc/hosts"].as_str().unwrap(),
            "{id}"
        );
    }
}

#[test]
fn ipv6_lines_loopback_and_lines_left_alone() {
    let network = one("192.0.2.1", Some("2001:db8::1"));
    let existing = "127.0.0.1\tlocalhost\n127.0.1.1\told\n::1\tlocalhost ip6-localhost\n\
                    # a comment\n\n2001:db8::1\told\n192.0.2.1\told.example.com other.example.com\n";
    assert_eq!(
        etc_hosts(existing, &network),
        "127.0.0.1\tlocalhost\n127.0.1.1\told\n::1\tlocalhost ip6-localhost\n# a comment\n\n\
         # 2001:db8::1\told\t# Removed by nova-agent\n2001:db8::1\texample\n\
         192.0.2.1\told.example.com other.example.com\n"
    );
}

#[test]
fn a_line_already_right_is_kept_and_not_repeated() {
    let network = one("192.0.2.1", None);
    assert_eq!(
        etc_hosts("192.0.2.1\texample\n", &network),
        "192.0.2.1\texample\n"
    );
    assert_eq!(
        etc_hosts("  192.0.2.1   example  \n", &network),
        "192.0.2.1   example\n"
    );
}

#[test]
fn every_interface_s_first_addresses_are_added_in_order() {
    assert_eq!(etc_hosts("", &realistic()), REALISTIC_HOSTS);
}

#[test]
fn resolv_conf_lists_every_server_in_order_or_nothing() {
    assert_eq!(
        resolv_conf(&realistic()).unwrap(),
        "# Automatically generated, do not edit\nnameserver 69.20.0.164\nnameserver 69.20.0.196\n"
    );
    assert_eq!(resolv_conf(&one("192.0.2.1", None)), None);
}
