use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::ErrorKind;
use serde_json::{json, Value};

use super::{inet_ntop6, statistics, Address, Entry, GetInterfaces};

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  167036    2149    0    0    0     0          0         0   167036    2149    0    0    0     0       0          0
  eth0: 267440412   13222    1    2    0     0          0         0   773185    7995    3    4    0     0       0          0
  eth0x: 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9
  tun0: 1 2 3
";

fn entry(name: &str, address: Address) -> Entry {
    Entry {
        name: name.to_owned(),
        address,
    }
}

/// `getifaddrs` order: every link first, then IPv4, then IPv6.
fn entries() -> Vec<Entry> {
    vec![
        entry("lo", Address::Link([0; 6])),
        entry("ifb0", Address::Link([0x9a, 0x9e, 0xa0, 0x25, 0xce, 0x1e])),
        entry("eth0", Address::Link([2, 0xfc, 0, 0, 0, 1])),
        entry("tun0", Address::Link([0; 6])),
        entry("lo", Address::V4(Ipv4Addr::LOCALHOST, 8)),
        entry("eth0", Address::V4(Ipv4Addr::new(192, 0, 2, 2), 24)),
        entry("eth0:1", Address::V4(Ipv4Addr::new(198, 51, 100, 7), 32)),
        entry("tun0", Address::V4(Ipv4Addr::new(10, 8, 0, 1), 16)),
        entry("lo", Address::V6(Ipv6Addr::LOCALHOST, 128)),
        entry(
            "eth0",
            Address::V6("fe80::fc:ff:fe00:1".parse().unwrap(), 64),
        ),
    ]
}

fn command(proc: &Path) -> GetInterfaces {
    GetInterfaces {
        proc: proc.to_str().unwrap().to_owned(),
    }
}

fn proc_with_net_dev() -> tempfile::TempDir {
    let proc = tempfile::tempdir().unwrap();
    fs::create_dir(proc.path().join("net")).unwrap();
    fs::write(proc.path().join("net/dev"), NET_DEV).unwrap();
    proc
}

#[test]
fn each_interface_once_in_order_with_its_addresses_and_counters() {
    let proc = proc_with_net_dev();
    let answer = command(proc.path()).describe(&entries());
    assert_eq!(
        answer,
        json!([
            {
                "name": "lo",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                    {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
                ],
                "statistics": {
                    "rx-bytes": 167036, "rx-packets": 2149, "rx-errs": 0, "rx-dropped": 0,
                    "tx-bytes": 167036, "tx-packets": 2149, "tx-errs": 0, "tx-dropped": 0,
                },
            },
            {"name": "ifb0", "hardware-address": "9a:9e:a0:25:ce:1e"},
            {
                "name": "eth0",
                "hardware-address": "02:fc:00:00:00:01",
                "ip-addresses": [
                    {"ip-address": "192.0.2.2", "ip-address-type": "ipv4", "prefix": 24},
                    {"ip-address": "198.51.100.7", "ip-address-type": "ipv4", "prefix": 32},
                    {"ip-address": "fe80::fc:ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64},
                ],
                "statistics": {
                    "rx-bytes": 267440412_u64, "rx-packets": 13222, "rx-errs": 1, "rx-dropped": 2,
                    "tx-bytes": 773185, "tx-packets": 7995, "tx-errs": 3, "tx-dropped": 4,
                },
            },
            // Its /proc/net/dev line is short: no counters.
            {
                "name": "tun0",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [
                    {"ip-address": "10.8.0.1", "ip-address-type": "ipv4", "prefix": 16},
                ],
            },
        ])
    );
}

#[test]
fn without_a_link_address_a_device_has_zeros_and_a_vanished_one_nothing() {
    let proc = tempfile::tempdir().unwrap();
    // glibc gives a device without a link-layer address (tun, wireguard)
    // no AF_PACKET address; `lo` exists in every network namespace.
    let no_link = [
        entry("lo", Address::Other),
        entry("lo", Address::V4(Ipv4Addr::LOCALHOST, 8)),
        entry("nova-gone0", Address::V4(Ipv4Addr::new(192, 0, 2, 1), 32)),
    ];
    assert_eq!(
        command(proc.path()).describe(&no_link),
        json!([
            {
                "name": "lo",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                ],
            },
            {
                "name": "nova-gone0",
                "ip-addresses": [
                    {"ip-address": "192.0.2.1", "ip-address-type": "ipv4", "prefix": 32},
                ],
            },
        ])
    );
}

#[test]
fn counters_belong_to_the_exact_name_before_the_colon() {
    assert!(statistics(NET_DEV, "eth").is_none());
    assert_eq!(statistics(NET_DEV, "eth0x").unwrap()["tx-dropped"], 9);
    assert!(
        statistics(NET_DEV, "tun0").is_none(),
        "fewer than 16 numbers"
    );
    assert!(statistics(NET_DEV, "face |bytes").is_none());
    let huge = "x0: 99999999999999999999 0 0 0 0 0 0 0 -1 0 0 0 0 0 0 0\n";
    let counters = statistics(huge, "x0").unwrap();
    assert_eq!(counters["rx-bytes"], json!(i64::MAX));
    assert_eq!(counters["tx-bytes"], json!(u64::MAX));
}

#[test]
fn ipv6_text_is_inet_ntops() {
    for (address, text) in [
        ("::1", "::1"),
        ("::", "::"),
        ("fd00::2", "fd00::2"),
        ("::192.0.2.1", "::192.0.2.1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
        ("2001:db8::1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
    ] {
        let ip: Ipv6Addr = address.parse().unwrap();
        assert_eq!(inet_ntop6(ip), text, "{address}");
    }
}

#[test]
fn it_takes_no_arguments() {
    let error = TestCall::new()
        .run(
            &GetInterfaces {
                proc: "/proc".into(),
            },
            r#"{"x":1}"#,
        )
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadArguments);
    assert_eq!(error.message, "Parameter 'x' is unexpected");
}

/// The live answer names every interface of `/sys/class/net` once, with
/// the hardware address sysfs shows for it.
#[test]
fn the_live_interfaces_match_sysfs() {
    let Ok(dir) = fs::read_dir("/sys/class/net") else {
        return;
    };
    let live = TestCall::new()
        .run(
            &GetInterfaces {
                proc: "/proc".into(),
            },
            "{}",
        )
        .unwrap();
    let interfaces = live.as_array().unwrap();
    let names: BTreeSet<String> = interfaces
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), interfaces.len(), "each name once: {live}");
    let expected: BTreeSet<String> = dir
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, expected);
    for interface in interfaces {
        let name = interface["name"].as_str().unwrap();
        let address = fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap();
        let mut octets: Vec<&str> = address
            .trim()
            .split(':')
            .filter(|o| !o.is_empty())
            .collect();
        octets.resize(6, "00");
        assert_eq!(
            interface["hardware-address"],
            Value::from(octets[..6].join(":")),
            "{name}"
        );
    }
}
