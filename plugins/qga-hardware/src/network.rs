//! `guest-network-get-interfaces`: the live interfaces from `getifaddrs`,
//! in its order, each with its hardware address, its IP addresses and, if
//! it has an address, its counters from `/proc/net/dev`.
//!
//! As qemu-ga 7.2 on Linux: every interface gets a hardware address (the
//! first six bytes of the link-layer address, zero-padded, so
//! `00:00:00:00:00:00` for `lo` or a tun device); an interface without an
//! IP address has no `ip-addresses` and no `statistics`; a prefix is the
//! number of bits set in the netmask. Unlike qemu-ga, an alias such as
//! `eth0:1` is folded into `eth0` (its addresses join eth0's, in
//! `getifaddrs` order), which is what libvirt does with qemu-ga's answer
//! anyway.

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};

use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_support::qapi::Args;
use serde_json::{json, Map, Value};

/// The command, reading its counters from `<proc>/net/dev`.
pub(crate) struct GetInterfaces {
    /// Where procfs is mounted: `/proc`, or a crafted tree in tests.
    pub(crate) proc: String,
}

/// One `getifaddrs` entry, reduced to what the answer needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) address: Address,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Address {
    /// `AF_PACKET`: the first six bytes of the link-layer address.
    Link([u8; 6]),
    V4(Ipv4Addr, u32),
    V6(Ipv6Addr, u32),
    Other,
}

impl Command for GetInterfaces {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        Args::parse(call.arguments())?.finish()?;
        Ok(self.describe(&live_entries()?))
    }
}

impl GetInterfaces {
    /// The answer for `entries`, in their order.
    pub(crate) fn describe(&self, entries: &[Entry]) -> Value {
        let links: HashMap<&str, [u8; 6]> = entries
            .iter()
            .filter_map(|e| match e.address {
                Address::Link(mac) => Some((e.name.as_str(), mac)),
                _ => None,
            })
            .collect();
        let stats = fs::read_to_string(format!("{}/net/dev", self.proc)).ok();
        let mut interfaces: Vec<Map<String, Value>> = Vec::new();
        for entry in entries {
            let name = device(&entry.name);
            let position = match interfaces.iter().position(|i| i["name"] == name) {
                Some(position) => position,
                None => {
                    interfaces.push(Self::interface(name, links.get(name)));
                    interfaces.len() - 1
                }
            };
            let address = match entry.address {
                Address::V4(ip, prefix) => json!({
                    "ip-address": ip.to_string(),
                    "ip-address-type": "ipv4",
                    "prefix": prefix,
                }),
                Address::V6(ip, prefix) => json!({
                    "ip-address": inet_ntop6(ip),
                    "ip-address-type": "ipv6",
                    "prefix": prefix,
                }),
                Address::Link(_) | Address::Other => continue,
            };
            let interface = &mut interfaces[position];
            match interface.get_mut("ip-addresses") {
                Some(Value::Array(list)) => list.push(address),
                _ => {
                    interface.insert("ip-addresses".into(), json!([address]));
                }
            }
            if !interface.contains_key("statistics") {
                if let Some(counters) = stats.as_deref().and_then(|s| statistics(s, name)) {
                    interface.insert("statistics".into(), counters);
                }
            }
        }
        Value::Array(interfaces.into_iter().map(Value::Object).collect())
    }

    /// A new interface: its name and, as `SIOCGIFHWADDR` gives it, its
    /// hardware address: the link-layer address `getifaddrs` showed, or
    /// zeros for a device that has none (glibc then gives no address at
    /// all); nothing for a device that is gone.
    fn interface(name: &str, link: Option<&[u8; 6]>) -> Map<String, Value> {
        let mut interface = Map::new();
        interface.insert("name".into(), json!(name));
        let mac = link
            .copied()
            .or_else(|| nix::net::if_::if_nametoindex(name).ok().map(|_| [0; 6]));
        if let Some(mac) = mac {
            let text = mac.map(|b| format!("{b:02x}")).join(":");
            interface.insert("hardware-address".into(), json!(text));
        }
        interface
    }
}

/// The device an entry belongs to: `eth0` for the alias `eth0:1` (a
/// device's own name never holds a colon).
fn device(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// The counters of `name` in the text of `/proc/net/dev`, read as qemu-ga
/// reads them: the line whose text before its first colon is exactly the
/// name, with 16 numbers after it (8 received, then 8 sent).
fn statistics(text: &str, name: &str) -> Option<Value> {
    text.lines().find_map(|line| {
        let (label, counters) = line.trim_start().split_once(':')?;
        if label != name {
            return None;
        }
        let numbers: Vec<u64> = counters
            .split_whitespace()
            .take(16)
            // sscanf's %lld saturates to a long long, which qemu-ga stores
            // in a uint64.
            .map(|n| {
                let n = n.parse::<i128>().ok()?;
                Some(n.clamp(i64::MIN.into(), i64::MAX.into()) as i64 as u64)
            })
            .collect::<Option<_>>()?;
        if numbers.len() != 16 {
            return None;
        }
        Some(json!({
            "rx-bytes": numbers[0],
            "rx-packets": numbers[1],
            "rx-errs": numbers[2],
            "rx-dropped": numbers[3],
            "tx-bytes": numbers[8],
            "tx-packets": numbers[9],
            "tx-errs": numbers[10],
            "tx-dropped": numbers[11],
        }))
    })
}

/// An IPv6 address as glibc's `inet_ntop` writes it: as Rust does, except
/// that an IPv4-compatible address (`::a.b.c.d`) keeps its dotted tail.
fn inet_ntop6(ip: Ipv6Addr) -> String {
    let words = ip.segments();
    if words[..6] == [0; 6] && words[6] != 0 {
        let [.., a, b, c, d] = ip.octets();
        return format!("::{}", Ipv4Addr::new(a, b, c, d));
    }
    ip.to_string()
}

/// The entries of the live `getifaddrs`.
fn live_entries() -> Result<Vec<Entry>, CommandError> {
    let addresses = nix::ifaddrs::getifaddrs()
        .map_err(|e| CommandError::failed(format!("getifaddrs failed: {}", e.desc())))?;
    Ok(addresses.map(entry).collect())
}

fn entry(ifa: nix::ifaddrs::InterfaceAddress) -> Entry {
    let mask = ifa.netmask.as_ref();
    let address = match ifa.address.as_ref() {
        None => Address::Other,
        Some(a) => {
            if let Some(v4) = a.as_sockaddr_in() {
                let mask = mask.and_then(|m| m.as_sockaddr_in());
                Address::V4(v4.ip(), mask.map_or(0, |m| m.ip().to_bits().count_ones()))
            } else if let Some(v6) = a.as_sockaddr_in6() {
                let mask = mask.and_then(|m| m.as_sockaddr_in6());
                Address::V6(v6.ip(), mask.map_or(0, |m| m.ip().to_bits().count_ones()))
            } else if let Some(mac) = a.as_link_addr().and_then(|l| l.addr()) {
                Address::Link(mac)
            } else {
                Address::Other
            }
        }
    };
    Entry {
        name: ifa.interface_name,
        address,
    }
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
