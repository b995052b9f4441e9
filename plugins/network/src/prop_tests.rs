//! Property tests (the fuzz targets of the network model parser): arbitrary
//! JSON values, and objects shaped like Nova's `vm-data/networking` entries
//! with any field any value, parse to `Ok` or `Err` and never panic; an `Ok`
//! model renders through every back-end, `/etc/hosts` and `resolv.conf`
//! without panicking. A fixed number of cases from a fixed seed;
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override either for a longer run.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::backend::System;
use crate::backends::{by_name, NAMES};
use crate::hosts::{etc_hosts, resolv_conf};
use crate::model::{Hostname, Network};
use crate::nics::Nic;
use crate::parse::{network, Metadata};

const MACS: [&str; 3] = [
    "bc:76:4e:20:6c:5a",
    "bc:76:4e:20:6c:5b",
    "02:00:00:00:00:01",
];

fn nics() -> BTreeMap<String, Nic> {
    MACS.iter()
        .zip(["eth0", "eth1", "ens3"])
        .map(|(mac, name)| {
            let nic = Nic {
                name: name.to_owned(),
                up: name != "eth1",
            };
            (mac.to_string(), nic)
        })
        .collect()
}

/// Any JSON value.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A value a field might hold: an address, mask, prefix or flag, right or
/// nearly right, or anything at all.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => ipv4(),
        1 => ipv6(),
        1 => (0u32..=32).prop_map(|p| json!(Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0)).to_string())),
        1 => (0u64..200).prop_map(Value::from),
        1 => (0u64..200).prop_map(|p| json!(format!(" {p} "))),
        1 => prop::sample::select(vec!["1", "0", " 1", "yes", "", "fe80::1", "10.0.0.1 ", "255.0.255.0"])
            .prop_map(Value::from),
        1 => prop::sample::select(MACS.to_vec()).prop_map(|m| json!(m.to_uppercase())),
        1 => prop::sample::select(vec![json!(1.5), json!(-1), json!(1e300), json!(true), json!(null)]),
        1 => any_json(),
    ]
}

fn ipv4() -> BoxedStrategy<Value> {
    any::<[u8; 4]>()
        .prop_map(|o| json!(Ipv4Addr::from(o).to_string()))
        .boxed()
}

fn ipv6() -> BoxedStrategy<Value> {
    any::<[u16; 8]>()
        .prop_map(|s| json!(Ipv6Addr::from(s).to_string()))
        .boxed()
}

fn netmask() -> BoxedStrategy<Value> {
    (0u32..=32)
        .prop_map(|p| json!(Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0)).to_string()))
        .boxed()
}

fn enabled() -> BoxedStrategy<Value> {
    prop::sample::select(vec![json!("1"), json!(1), json!(true), json!(" 1 ")]).boxed()
}

/// Mostly `good`, sometimes any field value.
fn mostly(good: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![20 => good, 1 => field_value()].boxed()
}

/// An object with each of `fields` mostly present, its value mostly right.
fn object_of(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let members: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| {
            proptest::option::weighted(0.95, mostly(value)).prop_map(move |v| (key, v))
        })
        .collect();
    members
        .prop_map(|members| {
            let map: Map<String, Value> = members
                .into_iter()
                .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                .collect();
            Value::Object(map)
        })
        .boxed()
}

/// Mostly a list of `item`, sometimes any field value.
fn list_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    mostly(
        prop::collection::vec(item, 0..3)
            .prop_map(Value::Array)
            .boxed(),
    )
}

/// An entry shaped like Nova's, every field possibly missing or wrong.
fn entry() -> impl Strategy<Value = Value> {
    let ip4 = object_of(vec![
        ("ip", ipv4()),
        ("netmask", netmask()),
        ("enabled", enabled()),
        ("gateway", ipv4()),
    ]);
    let ip6 = object_of(vec![
        ("ip", ipv6()),
        ("netmask", (0u64..=128).prop_map(Value::from).boxed()),
        ("enabled", enabled()),
        ("gateway", ipv6()),
    ]);
    let route = object_of(vec![
        ("route", ipv4()),
        ("netmask", netmask()),
        ("gateway", ipv4()),
    ]);
    let dns = prop_oneof![ipv4(), ipv6()].boxed();
    let mac = prop::sample::select(MACS.to_vec())
        .prop_map(Value::from)
        .boxed();
    let upper_mac = prop::sample::select(MACS.to_vec())
        .prop_map(|mac| json!(mac.to_uppercase()))
        .boxed();
    (
        object_of(vec![
            ("mac", mac),
            ("MAC", upper_mac),
            ("label", "[a-z0-9 ]{0,8}".prop_map(Value::from).boxed()),
            ("gateway", ipv4()),
            ("gateway_v6", ipv6()),
            ("gateway6", ipv6()),
        ]),
        list_of(ip4),
        list_of(ip6),
        list_of(route),
        list_of(dns),
    )
        .prop_map(|(mut entry, ips, ip6s, routes, dns)| {
            let map = entry.as_object_mut().expect("an object");
            map.insert("ips".to_owned(), ips);
            map.insert("ip6s".to_owned(), ip6s);
            map.insert("routes".to_owned(), routes);
            map.insert("dns".to_owned(), dns);
            entry
        })
}

fn parse(hostname: Option<String>, entries: &[String]) -> Result<Network, String> {
    let metadata = Metadata {
        hostname,
        interfaces: entries
            .iter()
            .enumerate()
            .map(|(i, text)| (format!("KEY{i}"), text.clone()))
            .collect(),
    };
    network(&metadata, &nics(), || Hostname::new("debian").unwrap())
}

/// Every back-end renders `model` (`Ok` or `Err`, never a panic), and so do
/// `/etc/hosts` and `resolv.conf`.
fn render_all(model: &Network) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let system = System::new(root.path());
    for name in NAMES {
        let backend = by_name(name).expect("every name has a back-end");
        if let Err(message) = backend.render(model, &system) {
            prop_assert!(!message.is_empty(), "{name} failed without a message");
        }
    }
    etc_hosts("127.0.0.1 localhost\n", model);
    resolv_conf(model);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_json_text_is_ok_or_err(entries in prop::collection::vec(any_json(), 1..3)) {
        let texts: Vec<String> = entries.iter().map(Value::to_string).collect();
        if let Ok(model) = parse(None, &texts) {
            render_all(&model)?;
        }
    }

    #[test]
    fn arbitrary_text_is_ok_or_err(text in ".{0,64}", hostname in proptest::option::of(".{0,70}")) {
        if let Err(message) = parse(hostname, &[text]) {
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn nova_shaped_entries_parse_and_render_without_panicking(
        entries in prop::collection::vec(entry(), 1..4),
        hostname in proptest::option::of(prop_oneof![4 => "[a-z][a-z0-9]{0,8}", 1 => "[a-z0-9.-]{0,12}"]),
    ) {
        let texts: Vec<String> = entries.iter().map(Value::to_string).collect();
        match parse(hostname, &texts) {
            Ok(model) => {
                prop_assert!(!model.interfaces.is_empty());
                render_all(&model)?;
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }
}
