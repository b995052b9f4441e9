//! Helpers shared between back-ends: the hostname and `/etc/hosts` files of
//! a plan, the seed's `KEY=value` edit of a shell-style file, the seed's
//! pairing of addresses into stanzas, the selections of routes, addresses,
//! gateways and nameservers the renderers write, and the steps of an apply
//! sequence (sethostname, a checked run, starting every interface) with the
//! seed's messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::backend::{Actions, Plan, System};
use crate::hosts;
use crate::model::{Interface, Ip4, Ip6, Network, Route};

// ---- Files ----

/// Adds `/etc/hostname` and `/etc/hosts` (by the seed's rules) to the plan.
pub(crate) fn add_hostname_and_hosts(plan: &mut Plan, network: &Network, system: &System) {
    plan.write("/etc/hostname", format!("{}\n", network.hostname));
    add_etc_hosts(plan, network, system);
}

/// Adds `/etc/hosts`, the existing one updated by the seed's rules.
pub(crate) fn add_etc_hosts(plan: &mut Plan, network: &Network, system: &System) {
    let existing = system.read("/etc/hosts").unwrap_or_default();
    plan.write("/etc/hosts", hosts::etc_hosts(&existing, network));
}

/// The seed's `KEY=value` update of a shell-style file: every line stripped
/// and re-emitted, each line whose key is `key` replaced by `key=value`, the
/// assignment appended when no line had it.
pub(crate) fn set_variable(existing: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut found = false;
    for line in existing.lines() {
        let line = line.trim();
        if line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            out.push_str(&format!("{key}={value}\n"));
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// The files in `dir` that `plan` does not write and that `managed` claims
/// (by name) as nova-agent's, as guest paths, sorted: the files of
/// interfaces no longer in the model, which the plan moves aside.
pub(crate) fn stale_files(
    system: &System,
    dir: &str,
    plan: &Plan,
    managed: impl Fn(&str) -> bool,
) -> Vec<String> {
    system
        .list(dir)
        .into_iter()
        .filter(|name| plan.content(&format!("{dir}/{name}")).is_none())
        .filter(|name| managed(name))
        .map(|name| format!("{dir}/{name}"))
        .collect()
}

// ---- What the renderers write ----

/// One stanza of an interface (`<if>` for the first, `<if>:<i>` after): its
/// i-th IPv4 and i-th IPv6 address, paired by position as the seed pairs
/// them (B-NET-14).
pub(crate) struct Stanza<'a> {
    pub name: String,
    pub ip4: Option<&'a Ip4>,
    pub ip6: Option<&'a Ip6>,
}

pub(crate) fn stanzas(interface: &Interface) -> Vec<Stanza<'_>> {
    let count = interface.ip4s.len().max(interface.ip6s.len());
    (0..count)
        .map(|i| Stanza {
            name: if i == 0 {
                interface.name.clone()
            } else {
                format!("{}:{i}", interface.name)
            },
            ip4: interface.ip4s.get(i),
            ip6: interface.ip6s.get(i),
        })
        .collect()
}

/// The IPv4 default gateway, and the IPv6 one with its interface's name.
pub(crate) type SingleGateways<'a> = (Option<Ipv4Addr>, Option<(Ipv6Addr, &'a str)>);

/// The default gateways of a file that holds one per family (an rc.conf);
/// `Multiple IPv4 (IPv6) default routes specified` when two interfaces have
/// one of the same family.
pub(crate) fn single_default_gateways(network: &Network) -> Result<SingleGateways<'_>, String> {
    let gateway4s: Vec<Ipv4Addr> = network
        .interfaces
        .iter()
        .filter_map(|i| i.gateway4)
        .collect();
    let gateway6s: Vec<(Ipv6Addr, &str)> = network
        .interfaces
        .iter()
        .filter_map(|i| i.gateway6.map(|gateway| (gateway, i.name.as_str())))
        .collect();
    if gateway4s.len() > 1 {
        return Err("Multiple IPv4 default routes specified".to_owned());
    }
    if gateway6s.len() > 1 {
        return Err("Multiple IPv6 default routes specified".to_owned());
    }
    Ok((gateway4s.first().copied(), gateway6s.first().copied()))
}

/// Every address as `<address>/<prefixlen>`, IPv4 first.
pub(crate) fn addresses_with_prefix(interface: &Interface) -> impl Iterator<Item = String> + '_ {
    let v4 = interface
        .ip4s
        .iter()
        .map(|ip| format!("{}/{}", ip.address, ip.prefixlen));
    let v6 = interface
        .ip6s
        .iter()
        .map(|ip| format!("{}/{}", ip.address, ip.prefixlen));
    v4.chain(v6)
}

/// The interface's default gateways, IPv4 first.
pub(crate) fn default_gateways(interface: &Interface) -> Vec<IpAddr> {
    let v4 = interface.gateway4.map(IpAddr::V4);
    let v6 = interface.gateway6.map(IpAddr::V6);
    v4.into_iter().chain(v6).collect()
}

/// The static routes to write: all but the default route through the
/// interface's gateway, which the gateway already expresses.
pub(crate) fn static_routes(interface: &Interface) -> impl Iterator<Item = &Route> {
    interface
        .routes
        .iter()
        .filter(|route| !route.is_default_via(interface.gateway4))
}

/// The routes the seed wrote for Arch profiles and Gentoo: every route
/// through the interface's gateway left out (B-NET-3 kept).
pub(crate) fn routes_kept_by_seed_arch_gentoo(
    interface: &Interface,
) -> impl Iterator<Item = &Route> {
    interface
        .routes
        .iter()
        .filter(|route| !route.is_skipped_by_seed_arch_gentoo(interface.gateway4))
}

/// The interface's nameservers without duplicates, first occurrence kept.
pub(crate) fn unique_dns(interface: &Interface) -> Vec<IpAddr> {
    let mut unique = Vec::new();
    for dns in &interface.dns {
        if !unique.contains(dns) {
            unique.push(*dns);
        }
    }
    unique
}

/// Whether a gateway lies outside every subnet of the interface, so the
/// route through it must be marked on-link. A link-local IPv6 gateway is
/// always on the link.
pub(crate) fn needs_on_link(gateway: IpAddr, interface: &Interface) -> bool {
    match gateway {
        IpAddr::V4(gateway) => !interface
            .ip4s
            .iter()
            .any(|ip| same_v4_subnet(ip.address, gateway, ip.prefixlen)),
        IpAddr::V6(gateway) => {
            !is_link_local(gateway)
                && !interface
                    .ip6s
                    .iter()
                    .any(|ip| same_v6_subnet(ip.address, gateway, ip.prefixlen))
        }
    }
}

fn same_v4_subnet(a: Ipv4Addr, b: Ipv4Addr, prefixlen: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefixlen.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn same_v6_subnet(a: Ipv6Addr, b: Ipv6Addr, prefixlen: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefixlen.min(128)))
        .unwrap_or(0);
    u128::from(a) & mask == u128::from(b) & mask
}

/// fe80::/10.
fn is_link_local(address: Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80
}

// ---- Apply steps ----

/// sethostname, with the seed's message on failure.
pub(crate) fn set_hostname(network: &Network, actions: &mut dyn Actions) -> Result<(), String> {
    actions
        .set_hostname(&network.hostname)
        .map_err(|e| format!("Couldn't set hostname: {e}"))
}

/// Runs a program; a non-zero exit is `<failure>: <code>`.
pub(crate) fn run_checked(
    actions: &mut dyn Actions,
    program: &str,
    args: &[&str],
    failure: &str,
) -> Result<(), String> {
    match actions.run(program, args)? {
        0 => Ok(()),
        code => Err(format!("{failure}: {code}")),
    }
}

/// Runs `<program> <args…> <target(interface)>` for every interface, all
/// of them even when one fails. One failure is `Couldn't restart network:
/// <code>`; several are `Failed to start <if1>, <if2>` (interface order,
/// which is sorted). A program that cannot be started stops the sequence
/// with its message.
pub(crate) fn start_each(
    network: &Network,
    actions: &mut dyn Actions,
    program: &str,
    args: &[&str],
    target: impl Fn(&Interface) -> String,
) -> Result<(), String> {
    let mut failures: Vec<(&str, i32)> = Vec::new();
    for interface in &network.interfaces {
        let target = target(interface);
        let full_args: Vec<&str> = args.iter().copied().chain([target.as_str()]).collect();
        let code = actions.run(program, &full_args)?;
        if code != 0 {
            failures.push((&interface.name, code));
        }
    }
    match failures.as_slice() {
        [] => Ok(()),
        [(_, code)] => Err(format!("Couldn't restart network: {code}")),
        several => {
            let names: Vec<&str> = several.iter().map(|(name, _)| *name).collect();
            Err(format!("Failed to start {}", names.join(", ")))
        }
    }
}
