use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn nics() -> BTreeMap<String, Nic> {
    [
        ("bc:76:4e:20:6c:5a", "eth0", true),
        ("bc:76:4e:20:6c:5b", "eth1", false),
    ]
    .into_iter()
    .map(|(mac, name, up)| {
        (
            mac.to_owned(),
            Nic {
                name: name.to_owned(),
                up,
            },
        )
    })
    .collect()
}

fn metadata(entries: &[serde_json::Value]) -> Metadata {
    Metadata {
        hostname: Some("web-1".into()),
        interfaces: entries
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("KEY{i}"), e.to_string()))
            .collect(),
    }
}

fn parse(entries: &[serde_json::Value]) -> Result<Network, String> {
    network(&metadata(entries), &nics(), || {
        Hostname::new("debian").unwrap()
    })
}

fn error(entry: serde_json::Value) -> String {
    parse(&[entry]).unwrap_err()
}

/// What Nova writes (host-protocol.md §3.2), public and private.
fn public() -> serde_json::Value {
    json!({"label": "public", "mac": "BC:76:4E:20:6C:5A", "broadcast": "198.51.100.255",
           "ips": [{"ip": "198.51.100.10", "netmask": "255.255.255.0", "enabled": "1", "gateway": "198.51.100.1"},
                   {"ip": "198.51.100.11", "netmask": "255.255.255.0", "enabled": "0", "gateway": null}],
           "ip6s": [{"ip": "2001:db8::10", "netmask": 64, "enabled": "1", "gateway": "fe80::def"},
                    {"ip": "2001:db8::11", "netmask": "64", "enabled": 1, "gateway": null}],
           "gateway": "198.51.100.1", "gateway_v6": "fe80::1",
           "dns": ["69.20.0.164", "69.20.0.196"]})
}

fn private() -> serde_json::Value {
    json!({"label": "private", "mac": "bc:76:4e:20:6c:5b", "broadcast": "10.208.255.255",
           "ips": [{"ip": "10.208.227.239", "netmask": "255.255.224.0", "enabled": "1", "gateway": null}],
           "routes": [{"route": "10.208.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"}],
           "gateway": null})
}

#[test]
fn nova_s_payload_becomes_the_model() {
    let net = parse(&[public(), private()]).unwrap();
    assert_eq!(net.hostname.as_str(), "web-1");
    let [eth0, eth1] = &net.interfaces[..] else {
        panic!("{net:?}")
    };
    assert_eq!(
        (eth0.name.as_str(), eth0.mac.as_str(), eth0.up),
        ("eth0", "bc:76:4e:20:6c:5a", true)
    );
    assert_eq!(eth0.label.as_ref().unwrap().as_str(), "public");
    assert_eq!(eth0.ip4s.len(), 1, "the disabled address is dropped");
    assert_eq!(eth0.ip4s[0].prefixlen, 24);
    assert_eq!(eth0.ip6s.len(), 2);
    assert_eq!(eth0.ip6s[1].prefixlen, 64);
    assert_eq!(eth0.gateway4, Some("198.51.100.1".parse().unwrap()));
    // An address's own gateway overrides gateway_v6, as the original did.
    assert_eq!(eth0.gateway6, Some("fe80::def".parse().unwrap()));
    assert_eq!(eth0.dns.len(), 2);
    assert_eq!(
        (eth1.name.as_str(), eth1.up, eth1.gateway4),
        ("eth1", false, None)
    );
    assert_eq!(eth1.routes[0].prefixlen, 12);
}

#[test]
fn gateway6_legacy_key_and_missing_enabled() {
    let entry = json!({"mac": "bc:76:4e:20:6c:5a", "gateway6": "2001:db8::1",
                       "ip6s": [{"address": "2001:db8::2", "netmask": 96, "enabled": true}],
                       "ips": [{"ip": "192.0.2.1", "netmask": "255.255.255.0"}]});
    let net = parse(&[entry]).unwrap();
    let eth0 = &net.interfaces[0];
    assert_eq!(eth0.gateway6, Some("2001:db8::1".parse().unwrap()));
    assert!(
        eth0.ip4s.is_empty(),
        "a missing 'enabled' counts as disabled"
    );
    assert_eq!(eth0.ip6s[0].prefixlen, 96);
}

#[test]
fn all_addresses_disabled_configures_none() {
    let entry = json!({"mac": "bc:76:4e:20:6c:5a", "ips": [{"ip": "192.0.2.1", "netmask": "255.255.255.0", "enabled": "0"}]});
    let net = parse(&[entry]).unwrap();
    assert!(net.interfaces[0].ip4s.is_empty());
}

#[test]
fn stale_entries_are_skipped_while_one_matches() {
    let stale = json!({"mac": "de:ad:be:ef:00:01", "ips": [{"ip": "192.0.2.9", "netmask": "255.255.255.0", "enabled": "1"}]});
    let net = parse(&[stale.clone(), private()]).unwrap();
    assert_eq!(net.interfaces.len(), 1);
    assert_eq!(
        parse(&[stale]).unwrap_err(),
        "Unknown interface MAC de:ad:be:ef:00:01"
    );
}

#[test]
fn the_original_s_messages() {
    let ip = |extra: serde_json::Value| {
        let mut entry = json!({"mac": "bc:76:4e:20:6c:5a"});
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        entry
    };
    let cases = [
        (json!({"ips": []}), "No MAC found in config"),
        (ip(json!({})), "No IPs found for interface"),
        (
            ip(json!({"ips": [], "ip6s": []})),
            "No IPs found for interface",
        ),
        (
            ip(json!({"ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": "yes"}]})),
            "Invalid value u'yes' for 'enabled' key",
        ),
        (
            ip(json!({"ips": [{"netmask": "255.0.0.0", "enabled": 1}]})),
            "Missing 'ip' key for IPv4 address",
        ),
        (
            ip(json!({"ips": [{"ip": "1.2.3.4", "enabled": 1}]})),
            "Missing 'netmask' key for IPv4 address",
        ),
        (
            ip(json!({"ip6s": [{"netmask": 64, "enabled": 1}]})),
            "Missing 'ip' or 'address' key for IPv6 address",
        ),
        (
            ip(json!({"ip6s": [{"ip": "::1", "enabled": 1}]})),
            "Missing 'netmask' key for IPv6 address",
        ),
        (
            ip(
                json!({"ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}], "routes": [{"netmask": "255.0.0.0", "gateway": "1.1.1.1"}]}),
            ),
            "Missing 'route' key for route",
        ),
        (
            ip(
                json!({"ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}], "routes": [{"route": "10.0.0.0", "gateway": "1.1.1.1"}]}),
            ),
            "Missing 'netmask' key for route",
        ),
        (
            ip(
                json!({"ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}], "routes": [{"route": "10.0.0.0", "netmask": "255.0.0.0"}]}),
            ),
            "Missing 'gateway' key for route",
        ),
    ];
    for (entry, message) in cases {
        assert_eq!(error(entry.clone()), message, "{entry}");
    }
}

#[test]
fn raw_strings_never_pass_as_values() {
    let base = |ips: serde_json::Value| json!({"mac": "bc:76:4e:20:6c:5a", "ips": ips});
    for (entry, needle) in [
        (
            base(json!([{"ip": "1.2.3.4; reboot", "netmask": "255.0.0.0", "enabled": 1}])),
            "Invalid IPv4 address",
        ),
        (
            base(json!([{"ip": "1.2.3.4", "netmask": "255.0.255.0", "enabled": 1}])),
            "Invalid IPv4 netmask 255.0.255.0",
        ),
        (
            json!({"mac": "bc:76:4e:20:6c:5a", "ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}], "gateway": "$(reboot)"}),
            "Invalid IPv4 gateway",
        ),
        (
            json!({"mac": "bc:76:4e:20:6c:5a", "ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}], "dns": ["8.8.8.8\nnameserver 6.6.6.6"]}),
            "Invalid nameserver",
        ),
        (
            json!({"mac": "bc:76:4e:20:6c:5a", "label": "pub\"lic", "ips": [{"ip": "1.2.3.4", "netmask": "255.0.0.0", "enabled": 1}]}),
            "Invalid label",
        ),
        (
            json!({"mac": "bc:76:4e:20:6c:5a", "ip6s": [{"ip": "2001:db8::1", "netmask": 129, "enabled": 1}]}),
            "Invalid IPv6 prefix length 129",
        ),
        (json!({"mac": "bc:76:4e:20:6c", "ips": []}), "Invalid MAC"),
    ] {
        let message = error(entry.clone());
        assert!(message.starts_with(needle), "{entry} -> {message}");
    }
    let bad_host = Metadata {
        hostname: Some("x;reboot".into()),
        interfaces: vec![("a".into(), public().to_string())],
    };
    let message = network(&bad_host, &nics(), || unreachable!()).unwrap_err();
    assert!(message.starts_with("Invalid hostname"), "{message}");
}

#[test]
fn json_problems_and_no_entries() {
    let meta = Metadata {
        hostname: None,
        interfaces: vec![("BC764E206C5A".into(), "{not json".into())],
    };
    let message = network(&meta, &nics(), || Hostname::new("debian").unwrap()).unwrap_err();
    assert!(
        message.starts_with("vm-data/networking/BC764E206C5A is not valid JSON"),
        "{message}"
    );
    let meta = Metadata {
        hostname: None,
        interfaces: vec![("a".into(), "[1]".into())],
    };
    assert_eq!(
        network(&meta, &nics(), || Hostname::new("debian").unwrap()).unwrap_err(),
        "vm-data/networking/a is not a JSON object"
    );
    let empty = Metadata::default();
    assert_eq!(
        network(&empty, &nics(), || Hostname::new("debian").unwrap()).unwrap_err(),
        NO_INTERFACES
    );
}

#[test]
fn the_hostname_falls_back_when_the_host_sent_none() {
    let meta = Metadata {
        hostname: None,
        interfaces: vec![("a".into(), private().to_string())],
    };
    let net = network(&meta, &nics(), || Hostname::new("fallback").unwrap()).unwrap();
    assert_eq!(net.hostname.as_str(), "fallback");
}
