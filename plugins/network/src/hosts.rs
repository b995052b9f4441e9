//! `/etc/hosts` and `/etc/resolv.conf` content, by the seed's rules
//! (`_get_etc_hosts`, `get_resolv_conf`), shared by the back-ends.

use std::net::IpAddr;

use crate::model::Network;

/// `/etc/hosts` updated for the hostname: each interface's first IPv4 and
/// first IPv6 address maps to the hostname. A line for one of those
/// addresses with one name other than the hostname, or with two names of
/// which one has a dot, is commented out (`# <line>\t# Removed by
/// nova-agent`) and replaced; other lines are kept (stripped). Addresses no
/// line mentioned are appended, in interface order. A missing file is empty.
pub fn etc_hosts(existing: &str, network: &Network) -> String {
    let hostname = network.hostname.as_str();
    let mut ips: Vec<IpAddr> = Vec::new();
    for interface in &network.interfaces {
        let first4 = interface.ip4s.first().map(|ip| IpAddr::V4(ip.address));
        let first6 = interface.ip6s.first().map(|ip| IpAddr::V6(ip.address));
        for ip in first4.into_iter().chain(first6) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    let mut out = String::new();
    for line in existing.lines() {
        let line = line.trim();
        let (config, comment) = match line.split_once('#') {
            Some((config, rest)) => (config.trim(), format!("\t#{rest}")),
            None => (line, String::new()),
        };
        let parts: Vec<&str> = config.split_whitespace().collect();
        let listed = parts
            .first()
            .and_then(|first| first.parse::<IpAddr>().ok())
            .and_then(|ip| ips.iter().position(|known| *known == ip));
        let Some(index) = listed else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let ip = parts[0];
        let names = &parts[1..];
        let dotted = names.iter().filter(|n| n.contains('.')).count();
        if names.len() == 1 && names[0] != hostname {
            out.push_str(&format!(
                "# {line}\t# Removed by nova-agent\n{ip}\t{hostname}{comment}\n"
            ));
        } else if names.len() == 2 && dotted == 1 {
            let renamed: Vec<&str> = names
                .iter()
                .map(|n| if n.contains('.') { *n } else { hostname })
                .collect();
            out.push_str(&format!(
                "# {line}\t# Removed by nova-agent\n{ip}\t{}{comment}\n",
                renamed.join(" ")
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
        ips.remove(index);
    }
    for ip in ips {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// `/etc/resolv.conf` with every interface's nameservers in order,
/// duplicates kept; `None` when there are none (the file is left alone).
pub fn resolv_conf(network: &Network) -> Option<String> {
    let servers = network.all_dns();
    if servers.is_empty() {
        return None;
    }
    let mut out = String::from("# Automatically generated, do not edit\n");
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    Some(out)
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
