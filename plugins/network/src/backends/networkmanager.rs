//! NetworkManager, a back-end the seed never had.
//!
//! Writes one keyfile connection (nm-settings-keyfile(5))
//! `/etc/NetworkManager/system-connections/nova-agent-<if>.nmconnection` per
//! interface, mode 0600 (NetworkManager ignores keyfiles others can read),
//! bound to the interface by name and MAC; moves aside the
//! `nova-agent-*.nmconnection` of interfaces no longer in the model; writes
//! `/etc/hostname` and `/etc/hosts`. DNS goes in the connections
//! (NetworkManager manages resolv.conf), so `/etc/resolv.conf` is not
//! written.
//!
//! Each family is `method=manual` with its addresses, gateway, nameservers
//! (of that family) and routes. An interface without IPv4 addresses has
//! `[ipv4] method=disabled`, one without IPv6 addresses `[ipv6]
//! method=ignore` (IPv6 left to the kernel, as the other back-ends leave
//! it), and that family's gateway and nameservers are then left out:
//! NetworkManager refuses a gateway without an address and nameservers with
//! `method=disabled`. It adds an on-link route to a gateway outside the
//! subnets by itself.
//!
//! The connection's uuid is derived from the MAC (`connection_uuid`),
//! so an unchanged network gives byte-identical files.
//!
//! Apply: write the files, sethostname, `nmcli connection reload`, then
//! `nmcli connection up id nova-agent-<if>` for every interface.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::{
    add_hostname_and_hosts, run_checked, set_hostname, stale_files, start_each, static_routes,
    unique_dns,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

pub struct NetworkManager;

const CONNECTIONS_DIR: &str = "/etc/NetworkManager/system-connections";
const CONNECTION_PREFIX: &str = "nova-agent-";
const FILE_SUFFIX: &str = ".nmconnection";
const NMCLI: &str = "/usr/bin/nmcli";

impl Backend for NetworkManager {
    fn name(&self) -> &'static str {
        "networkmanager"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            let file_name = format!("{}{FILE_SUFFIX}", connection_id(interface));
            let content = keyfile(interface)?;
            plan.write_mode(format!("{CONNECTIONS_DIR}/{file_name}"), content, 0o600);
        }
        plan.remove = stale_files(system, CONNECTIONS_DIR, &plan, |name| {
            name.starts_with(CONNECTION_PREFIX) && name.ends_with(FILE_SUFFIX)
        });
        add_hostname_and_hosts(&mut plan, network, system);
        Ok(plan)
    }

    fn apply(
        &self,
        network: &Network,
        _system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String> {
        actions.write(plan)?;
        set_hostname(network, actions)?;
        run_checked(
            actions,
            NMCLI,
            &["connection", "reload"],
            "Couldn't restart network",
        )?;
        start_each(
            network,
            actions,
            NMCLI,
            &["connection", "up", "id"],
            connection_id,
        )
    }
}

/// The connection's `id`, also its file name without `.nmconnection`.
fn connection_id(interface: &Interface) -> String {
    format!("{CONNECTION_PREFIX}{}", interface.name)
}

/// The keyfile of one interface.
fn keyfile(interface: &Interface) -> Result<String, String> {
    let mut out = String::from("# Automatically generated, do not edit\n");
    if let Some(label) = &interface.label {
        let _ = writeln!(out, "# Label {label}");
    }
    let _ = write!(
        out,
        "\n[connection]\nid={}\nuuid={}\ntype=ethernet\ninterface-name={}\nautoconnect=true\n",
        connection_id(interface),
        connection_uuid(&interface.mac)?,
        interface.name
    );
    let _ = write!(out, "\n[ethernet]\nmac-address={}\n", interface.mac);

    out.push_str("\n[ipv4]\n");
    if interface.ip4s.is_empty() {
        out.push_str("method=disabled\n");
    } else {
        out.push_str("method=manual\n");
        for (n, ip) in interface.ip4s.iter().enumerate() {
            let _ = writeln!(out, "address{}={}/{}", n + 1, ip.address, ip.prefixlen);
        }
        if let Some(gateway) = interface.gateway4 {
            let _ = writeln!(out, "gateway={gateway}");
        }
        write_dns(&mut out, interface, IpAddr::is_ipv4);
        for (n, route) in static_routes(interface).enumerate() {
            let _ = writeln!(
                out,
                "route{}={}/{},{}",
                n + 1,
                route.network,
                route.prefixlen,
                route.gateway
            );
        }
    }

    out.push_str("\n[ipv6]\n");
    if interface.ip6s.is_empty() {
        out.push_str("method=ignore\n");
    } else {
        out.push_str("method=manual\n");
        for (n, ip) in interface.ip6s.iter().enumerate() {
            let _ = writeln!(out, "address{}={}/{}", n + 1, ip.address, ip.prefixlen);
        }
        if let Some(gateway) = interface.gateway6 {
            let _ = writeln!(out, "gateway={gateway}");
        }
        write_dns(&mut out, interface, IpAddr::is_ipv6);
    }
    Ok(out)
}

/// `dns=<a>;<b>;` with the interface's nameservers of one family (a keyfile
/// list ends with `;`); nothing when it has none.
fn write_dns(out: &mut String, interface: &Interface, family: fn(&IpAddr) -> bool) {
    let servers: Vec<IpAddr> = unique_dns(interface).into_iter().filter(family).collect();
    if !servers.is_empty() {
        out.push_str("dns=");
        for server in servers {
            let _ = write!(out, "{server};");
        }
        out.push('\n');
    }
}

/// A stable uuid for the connection of the NIC with this MAC: an RFC 9562
/// version 8 (vendor-defined) UUID, the constant `6e6f7661-2d61-8000-8000`
/// ("nova-a", version 8, variant 10) followed by the MAC's 48 bits, e.g.
/// `6e6f7661-2d61-8000-8000-bc764e206c5a`. Distinct MACs give distinct
/// uuids, with no hashing.
fn connection_uuid(mac: &str) -> Result<String, String> {
    let octets: Option<Vec<u8>> = mac
        .split(':')
        .map(|octet| {
            let hex = octet.len() == 2 && octet.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| u8::from_str_radix(octet, 16).ok()).flatten()
        })
        .collect();
    match octets.as_deref() {
        Some(node @ [_, _, _, _, _, _]) => {
            let node: String = node.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("6e6f7661-2d61-8000-8000-{node}"))
        }
        _ => Err(format!("Invalid MAC address {mac:?}")),
    }
}

#[cfg(test)]
#[path = "networkmanager_tests.rs"]
mod tests;
