//! netplan, a back-end the seed never had.
//!
//! Writes `/etc/netplan/90-nova-agent.yaml` (mode 0600: netplan warns about
//! configuration others can read), one netplan v2 document with every
//! interface under `ethernets`, matched by MAC and kept at its name with
//! `set-name`, its addresses, its default routes as `routes: [{to: default,
//! via: …}]` (not the deprecated `gateway4`/`gateway6`), its static routes
//! and its nameservers. No `renderer` is set, so the system's choice
//! (networkd or NetworkManager) stands. Also writes `/etc/hostname` and
//! `/etc/hosts`; DNS goes in the YAML (netplan hands it to the renderer), so
//! `/etc/resolv.conf` is not written.
//!
//! Apply: write the files, sethostname, `netplan apply`. A gateway outside
//! every subnet of its interface gets `on-link: true`; a link-local IPv6
//! gateway is on the link by definition and needs nothing.

use std::fmt::{Display, Write as _};
use std::net::IpAddr;

use super::common::{
    add_hostname_and_hosts, addresses_with_prefix, default_gateways, needs_on_link, run_checked,
    set_hostname, static_routes, unique_dns,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

pub struct Netplan;

const CONFIG_PATH: &str = "/etc/netplan/90-nova-agent.yaml";
const NETPLAN: &str = "/usr/sbin/netplan";

impl Backend for Netplan {
    fn name(&self) -> &'static str {
        "netplan"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        plan.write_mode(CONFIG_PATH, netplan_yaml(network), 0o600);
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
            NETPLAN,
            &["apply"],
            "Couldn't apply netplan configuration",
        )
    }
}

/// The whole netplan document.
fn netplan_yaml(network: &Network) -> String {
    let mut out = String::from("# Automatically generated, do not edit\nnetwork:\n  version: 2\n");
    if !network.interfaces.is_empty() {
        out.push_str("  ethernets:\n");
    }
    for interface in &network.interfaces {
        write_ethernet(&mut out, interface);
    }
    out
}

/// One entry of `ethernets`, indented under it.
fn write_ethernet(out: &mut String, interface: &Interface) {
    let name = yaml_name(&interface.name);
    let _ = writeln!(out, "    {name}:");
    if let Some(label) = &interface.label {
        let _ = writeln!(out, "      # Label {label}");
    }
    let _ = writeln!(
        out,
        "      match:\n        macaddress: \"{}\"",
        interface.mac
    );
    let _ = writeln!(out, "      set-name: {name}");

    let addresses: Vec<String> = addresses_with_prefix(interface).collect();
    write_quoted_list(out, "      ", "addresses", &addresses);

    let mut routes: Vec<(String, IpAddr)> = default_gateways(interface)
        .into_iter()
        .map(|gateway| ("default".to_owned(), gateway))
        .collect();
    routes.extend(static_routes(interface).map(|route| {
        let to = format!("\"{}/{}\"", route.network, route.prefixlen);
        (to, IpAddr::V4(route.gateway))
    }));
    if !routes.is_empty() {
        out.push_str("      routes:\n");
    }
    for (to, via) in routes {
        let _ = writeln!(out, "        - to: {to}\n          via: \"{via}\"");
        if needs_on_link(via, interface) {
            out.push_str("          on-link: true\n");
        }
    }

    let dns = unique_dns(interface);
    if !dns.is_empty() {
        out.push_str("      nameservers:\n");
        write_quoted_list(out, "        ", "addresses", &dns);
    }
}

/// `<indent><key>:` followed by one double-quoted item a line; nothing when
/// `items` is empty.
fn write_quoted_list(out: &mut String, indent: &str, key: &str, items: &[impl Display]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for item in items {
        let _ = writeln!(out, "{indent}  - \"{item}\"");
    }
}

/// An interface name as a YAML scalar: plain when it is made of letters,
/// digits, `.`, `_` and `-` and starts with a letter or digit (every usual
/// name), else double-quoted so no character can change the document's
/// structure.
fn yaml_name(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
#[path = "netplan_tests.rs"]
mod tests;
