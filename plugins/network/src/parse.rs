//! From what the host wrote (`vm-data/networking/*`, `vm-data/hostname`)
//! and the NICs present to the network model, with the original agent's
//! normalization rules and error messages; every value is then checked to be
//! an address, prefix, hostname or label, never a raw string.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::model::{prefix_of, Hostname, Interface, Ip4, Ip6, Label, Network, Route};
use crate::nics::Nic;

/// The host's metadata, as read through the request's channel.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    /// `vm-data/hostname`, if present.
    pub hostname: Option<String>,
    /// `(key, JSON text)` for each child of `vm-data/networking`.
    pub interfaces: Vec<(String, String)>,
}

pub const NO_INTERFACES: &str = "No interfaces found in vm-data/networking";

/// The model; `Err` is the answer's message. `current_hostname` is asked
/// only when the host sent none.
pub fn network(
    metadata: &Metadata,
    nics: &BTreeMap<String, Nic>,
    current_hostname: impl FnOnce() -> Hostname,
) -> Result<Network, String> {
    let hostname = match &metadata.hostname {
        Some(name) => Hostname::new(name.trim())?,
        None => current_hostname(),
    };
    if metadata.interfaces.is_empty() {
        return Err(NO_INTERFACES.to_owned());
    }
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (key, text) in &metadata.interfaces {
        let entry: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(format!("vm-data/networking/{key} is not a JSON object")),
            Err(e) => return Err(format!("vm-data/networking/{key} is not valid JSON: {e}")),
        };
        let mac = mac_of(&entry)?;
        let Some(nic) = nics.get(&mac) else {
            unknown.push(mac);
            continue;
        };
        let interface = interface(&entry, &mac, nic)?;
        if by_name.insert(nic.name.clone(), interface).is_some() {
            tracing::warn!(
                "two vm-data/networking entries for {}; the later one is used",
                nic.name
            );
        }
    }
    if by_name.is_empty() {
        return Err(format!("Unknown interface MAC {}", unknown[0]));
    }
    for mac in unknown {
        // Nova never removes the entry of a detached interface.
        tracing::warn!("no NIC has MAC {mac}; its vm-data/networking entry is skipped");
    }
    Ok(Network {
        hostname,
        interfaces: by_name.into_values().collect(),
    })
}

/// The `mac` (or `MAC`) field, checked and lower-cased.
fn mac_of(entry: &Map<String, Value>) -> Result<String, String> {
    let mac = match entry.get("mac").or_else(|| entry.get("MAC")) {
        Some(Value::String(mac)) => mac.to_ascii_lowercase(),
        Some(other) => return Err(format!("Invalid MAC {other}")),
        None => return Err("No MAC found in config".to_owned()),
    };
    let octets: Vec<&str> = mac.split(':').collect();
    let valid = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        Ok(mac)
    } else {
        Err(format!("Invalid MAC {mac:?}"))
    }
}

fn interface(entry: &Map<String, Value>, mac: &str, nic: &Nic) -> Result<Interface, String> {
    let ips = list(entry, "ips")?;
    let ip6s = list(entry, "ip6s")?;
    if ips.is_empty() && ip6s.is_empty() {
        return Err("No IPs found for interface".to_owned());
    }
    let label = match entry.get("label") {
        Some(Value::String(label)) => Some(Label::new(label)?),
        Some(Value::Null) | None => None,
        Some(other) => return Err(format!("Invalid label {other}")),
    };
    let mut gateway6 = match (entry.get("gateway_v6"), entry.get("gateway6")) {
        (Some(v), _) if !v.is_null() => Some(ipv6(v, "IPv6 gateway")?),
        (_, Some(v)) if !v.is_null() => Some(ipv6(v, "IPv6 gateway")?),
        _ => None,
    };
    let mut ip4s = Vec::new();
    for ip in &ips {
        let ip = object(ip, "IPv4 address")?;
        if !enabled(ip)? {
            continue;
        }
        let address = ip.get("ip").ok_or("Missing 'ip' key for IPv4 address")?;
        let netmask = ip
            .get("netmask")
            .ok_or("Missing 'netmask' key for IPv4 address")?;
        let (netmask, prefixlen) = ipv4_netmask(netmask, "IPv4 netmask")?;
        ip4s.push(Ip4 {
            address: ipv4(address, "IPv4 address")?,
            netmask,
            prefixlen,
        });
    }
    let mut ip6s_out = Vec::new();
    for ip in &ip6s {
        let ip = object(ip, "IPv6 address")?;
        if !enabled(ip)? {
            continue;
        }
        let address = ip
            .get("address")
            .or_else(|| ip.get("ip"))
            .ok_or("Missing 'ip' or 'address' key for IPv6 address")?;
        let netmask = ip
            .get("netmask")
            .ok_or("Missing 'netmask' key for IPv6 address")?;
        if let Some(gateway) = ip.get("gateway").filter(|g| !g.is_null()) {
            gateway6 = Some(ipv6(gateway, "IPv6 gateway")?);
        }
        ip6s_out.push(Ip6 {
            address: ipv6(address, "IPv6 address")?,
            prefixlen: prefix(netmask, 128, "IPv6 prefix length")?,
        });
    }
    let gateway4 = match entry.get("gateway") {
        Some(v) if !v.is_null() => Some(ipv4(v, "IPv4 gateway")?),
        _ => None,
    };
    let mut routes = Vec::new();
    for route in list(entry, "routes")? {
        let route = object(&route, "route")?;
        let network = route.get("route").ok_or("Missing 'route' key for route")?;
        let netmask = route
            .get("netmask")
            .ok_or("Missing 'netmask' key for route")?;
        let gateway = route
            .get("gateway")
            .ok_or("Missing 'gateway' key for route")?;
        let (netmask, prefixlen) = ipv4_netmask(netmask, "route netmask")?;
        routes.push(Route {
            network: ipv4(network, "route network")?,
            netmask,
            prefixlen,
            gateway: ipv4(gateway, "route gateway")?,
        });
    }
    let dns = list(entry, "dns")?
        .iter()
        .map(|server| address(server, "nameserver"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Interface {
        name: nic.name.clone(),
        mac: mac.to_owned(),
        label,
        up: nic.up,
        ip4s,
        ip6s: ip6s_out,
        gateway4,
        gateway6,
        routes,
        dns,
    })
}

/// A list field; missing or null is empty.
fn list(entry: &Map<String, Value>, key: &str) -> Result<Vec<Value>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(other) => Err(format!(
            "Invalid value {other} for '{key}' key: a list was expected"
        )),
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("Invalid {what} {value}: an object was expected"))
}

/// `int(ip.get('enabled', 0))`, as the original: "1"/"0", integers and
/// booleans; a missing key counts as disabled.
fn enabled(ip: &Map<String, Value>) -> Result<bool, String> {
    let value = match ip.get("enabled") {
        None => return Ok(false),
        Some(value) => value,
    };
    let number = match value {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    number
        .map(|n| n != 0)
        .ok_or_else(|| format!("Invalid value {} for 'enabled' key", python_repr(value)))
}

/// How Python 2 showed the value in the original's message (`u'yes'`).
fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let escaped: String = s
                .chars()
                .map(|c| match c {
                    '\'' => "\\'".to_owned(),
                    '\\' => "\\\\".to_owned(),
                    c if c.is_control() || !c.is_ascii() => c.escape_unicode().to_string(),
                    c => c.to_string(),
                })
                .collect();
            format!("u'{escaped}'")
        }
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .map(str::trim)
        .ok_or_else(|| format!("Invalid {what} {value}"))
}

fn ipv4(value: &Value, what: &str) -> Result<Ipv4Addr, String> {
    let text = text(value, what)?;
    text.parse().map_err(|_| format!("Invalid {what} {text:?}"))
}

fn ipv6(value: &Value, what: &str) -> Result<Ipv6Addr, String> {
    let text = text(value, what)?;
    text.parse().map_err(|_| format!("Invalid {what} {text:?}"))
}

fn address(value: &Value, what: &str) -> Result<IpAddr, String> {
    let text = text(value, what)?;
    text.parse().map_err(|_| format!("Invalid {what} {text:?}"))
}

/// A dotted, contiguous netmask (or a prefix length, which Nova never sends
/// for IPv4 but costs nothing to accept).
fn ipv4_netmask(value: &Value, what: &str) -> Result<(Ipv4Addr, u8), String> {
    if let Ok(prefixlen) = prefix(value, 32, what) {
        return Ok((crate::model::netmask_of(prefixlen), prefixlen));
    }
    let netmask = ipv4(value, what)?;
    let prefixlen = prefix_of(netmask).ok_or_else(|| format!("Invalid {what} {netmask}"))?;
    Ok((netmask, prefixlen))
}

/// A prefix length as an integer or a decimal string, 0 to `max`.
fn prefix(value: &Value, max: u8, what: &str) -> Result<u8, String> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .filter(|n| *n <= u64::from(max))
        .map(|n| n as u8)
        .ok_or_else(|| format!("Invalid {what} {value}"))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
