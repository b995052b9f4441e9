//! FreeBSD (seed §3.5.6): everything in `/etc/rc.conf`.
//!
//! Writes `/etc/rc.conf` rebuilt as the seed's `_create_rcconf_file` (the
//! old lines kept, stripped, except the network ones; then `dhcpd_enable`,
//! `hostname`, per interface in name order its `# Label`, `ifconfig_<if>`,
//! `ipv6_ifconfig_<if>` and `_alias<k>` lines, `route_lan<i>` and
//! `static_routes="lan0 lan1"`, `ipv6_enable` and `ipv6_network_interfaces`,
//! `defaultrouter`, `ipv6_defaultrouter`) and `/etc/hosts`; DNS goes to
//! resolv.conf through the framework (`Plan::resolv_conf`). Two interfaces
//! with an IPv4 (IPv6) gateway give `Multiple IPv4 (IPv6) default routes
//! specified`. A route to `0.0.0.0/0` through the interface's gateway is
//! left out (`defaultrouter` covers it).
//!
//! Apply sequence, as the seed: write the files; sethostname; `/bin/sh
//! /etc/rc.d/netif restart` (`Couldn't restart IPv4 networking: <code>`);
//! `/bin/sh /etc/rc.d/network_ipv6 restart` when that script exists
//! (`Couldn't restart IPv6 networking: <code>`); `/bin/sh /etc/rc.d/routing
//! restart`, whose status is ignored (it returns 1 on FreeBSD 9).
//!
//! Differences from the seed:
//! - B-NET-13: old `ipv6_network_interfaces` lines are dropped too, so they
//!   no longer pile up; the `ipv6_defaultrouter` zone is the interface whose
//!   `gateway6` it is (the seed wrote `%xn0` whatever the interface).
//! - B-NET-1: the seed's `update_resolvconf` is not reproduced; the
//!   framework writes resolv.conf (or goes through resolvconf).
//! - Exit codes are plain codes, where the seed reported raw waitpid
//!   statuses (exit code × 256, an accident of Python's `os.waitpid`).
//! - A `# Label` comment right before a dropped line is dropped with it; the
//!   seed kept them, so they piled up on every run.
//! - A missing `/etc/rc.conf` counts as empty (the seed failed).

use super::common::{
    add_etc_hosts, run_checked, set_hostname, single_default_gateways, static_routes,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::Network;

const RC_CONF: &str = "/etc/rc.conf";
const SH: &str = "/bin/sh";
const NETWORK_IPV6: &str = "/etc/rc.d/network_ipv6";

/// The `rc.conf` lines this back-end owns: old ones starting so are dropped.
const OWNED_PREFIXES: [&str; 10] = [
    "ifconfig",
    "defaultrouter",
    "ipv6_ifconfig",
    "ipv6_defaultrouter",
    "ipv6_enable",
    "ipv6_network_interfaces",
    "static_routes",
    "route_",
    "dhcpd_",
    "hostname",
];

/// The `freebsd-rcconf` back-end.
pub struct FreebsdRcconf;

impl Backend for FreebsdRcconf {
    fn name(&self) -> &'static str {
        "freebsd-rcconf"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let rc_conf = rc_conf(&system.read(RC_CONF).unwrap_or_default(), network)?;
        let mut plan = Plan {
            resolv_conf: true,
            ..Plan::default()
        };
        plan.write(RC_CONF, rc_conf);
        add_etc_hosts(&mut plan, network, system);
        Ok(plan)
    }

    fn apply(
        &self,
        network: &Network,
        system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String> {
        actions.write(plan)?;
        set_hostname(network, actions)?;
        run_checked(
            actions,
            SH,
            &["/etc/rc.d/netif", "restart"],
            "Couldn't restart IPv4 networking",
        )?;
        if system.exists(NETWORK_IPV6) {
            run_checked(
                actions,
                SH,
                &[NETWORK_IPV6, "restart"],
                "Couldn't restart IPv6 networking",
            )?;
        }
        // Ignored, as the seed: it returns 1 on FreeBSD 9 when all is well.
        actions.run(SH, &["/etc/rc.d/routing", "restart"])?;
        Ok(())
    }
}

/// The seed's `_create_rcconf_file`: `existing` merged with `network`.
fn rc_conf(existing: &str, network: &Network) -> Result<String, String> {
    let (gateway4, gateway6) = single_default_gateways(network)?;
    let old: Vec<&str> = existing.lines().map(str::trim).collect();
    let owned = |line: &str| OWNED_PREFIXES.iter().any(|prefix| line.starts_with(prefix));
    // A `# Label` comment goes with the interface line after it.
    let label_of_owned = |index: usize| {
        old[index].starts_with("# Label ") && old.get(index + 1).is_some_and(|next| owned(next))
    };
    let mut lines: Vec<String> = (0..old.len())
        .filter(|&index| !owned(old[index]) && !label_of_owned(index))
        .map(|index| old[index].to_owned())
        .collect();
    lines.push("dhcpd_enable=\"NO\"".to_owned());
    lines.push(format!("hostname={}", network.hostname));
    let mut ipv6_interfaces = Vec::new();
    let mut routes = Vec::new();
    for interface in &network.interfaces {
        let name = &interface.name;
        if !interface.ip6s.is_empty() {
            ipv6_interfaces.push(name.as_str());
        }
        for index in 0..interface.ip4s.len().max(interface.ip6s.len()) {
            let (stanza, up) = match index {
                0 => {
                    if let Some(label) = &interface.label {
                        lines.push(format!("# Label {label}"));
                    }
                    (name.clone(), " up")
                }
                n => (format!("{name}_alias{}", n - 1), ""),
            };
            if let Some(ip) = interface.ip4s.get(index) {
                let (address, netmask) = (ip.address, ip.netmask);
                lines.push(format!(
                    "ifconfig_{stanza}=\"{address} netmask {netmask}{up}\""
                ));
            }
            if let Some(ip) = interface.ip6s.get(index) {
                let (address, prefixlen) = (ip.address, ip.prefixlen);
                lines.push(format!("ipv6_ifconfig_{stanza}=\"{address}/{prefixlen}\""));
            }
        }
        routes.extend(static_routes(interface).map(|route| {
            format!(
                "-net {} -netmask {} {}",
                route.network, route.netmask, route.gateway
            )
        }));
    }
    if !routes.is_empty() {
        let names: Vec<String> = (0..routes.len()).map(|i| format!("lan{i}")).collect();
        for (name, route) in names.iter().zip(&routes) {
            lines.push(format!("route_{name}=\"{route}\""));
        }
        lines.push(format!("static_routes=\"{}\"", names.join(" ")));
    }
    if !ipv6_interfaces.is_empty() {
        lines.push("ipv6_enable=\"YES\"".to_owned());
        lines.push(format!(
            "ipv6_network_interfaces=\"{}\"",
            ipv6_interfaces.join(",")
        ));
    }
    if let Some(gateway) = gateway4 {
        lines.push(format!("defaultrouter=\"{gateway}\""));
    }
    if let Some((gateway, interface)) = gateway6 {
        lines.push(format!("ipv6_defaultrouter=\"{gateway}%{interface}\""));
    }
    Ok(lines.iter().map(|line| format!("{line}\n")).collect())
}

#[cfg(test)]
#[path = "freebsd_tests.rs"]
mod tests;
