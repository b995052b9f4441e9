//! systemd-networkd, a back-end the seed never had.
//!
//! Writes one `/etc/systemd/network/50-nova-agent-<if>.network` per
//! interface (systemd.network(5): `[Match]` on both the MAC and the name, so
//! a VLAN or bridge sharing the MAC is not matched; `[Network]` with every
//! address, the gateways and the nameservers; a `[Route]` per static route),
//! moves aside the `50-nova-agent-*.network` of interfaces no longer in the
//! model, and writes `/etc/hostname` and `/etc/hosts`. DNS goes in the
//! `.network` files (networkd hands it to systemd-resolved), so
//! `/etc/resolv.conf` is not written.
//!
//! Apply: write the files, sethostname, `networkctl reload`, then
//! `networkctl reconfigure <if>` for every interface. A gateway outside
//! every subnet of its interface gets `GatewayOnLink=yes` (networkd would
//! otherwise wait for it to become reachable); a link-local IPv6 gateway is
//! on-link by definition and needs nothing.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::{
    add_hostname_and_hosts, addresses_with_prefix, default_gateways, needs_on_link, run_checked,
    set_hostname, stale_files, start_each, static_routes, unique_dns,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

pub struct Networkd;

const NETWORK_DIR: &str = "/etc/systemd/network";
const FILE_PREFIX: &str = "50-nova-agent-";
const FILE_SUFFIX: &str = ".network";
const NETWORKCTL: &str = "/usr/bin/networkctl";

impl Backend for Networkd {
    fn name(&self) -> &'static str {
        "networkd"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            let file_name = format!("{FILE_PREFIX}{}{FILE_SUFFIX}", interface.name);
            plan.write(
                format!("{NETWORK_DIR}/{file_name}"),
                network_file(interface),
            );
        }
        plan.remove = stale_files(system, NETWORK_DIR, &plan, |name| {
            name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX)
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
        run_checked(actions, NETWORKCTL, &["reload"], "Couldn't restart network")?;
        start_each(
            network,
            actions,
            NETWORKCTL,
            &["reconfigure"],
            |interface| interface.name.clone(),
        )
    }
}

/// The `.network` file of one interface.
fn network_file(interface: &Interface) -> String {
    let mut out = String::from("# Automatically generated, do not edit\n");
    if let Some(label) = &interface.label {
        let _ = writeln!(out, "# Label {label}");
    }
    let _ = write!(
        out,
        "\n[Match]\nMACAddress={}\nName={}\n\n[Network]\n",
        interface.mac, interface.name
    );
    for address in addresses_with_prefix(interface) {
        let _ = writeln!(out, "Address={address}");
    }
    let gateways = default_gateways(interface);
    for gateway in gateways.iter().filter(|g| !needs_on_link(**g, interface)) {
        let _ = writeln!(out, "Gateway={gateway}");
    }
    for dns in unique_dns(interface) {
        let _ = writeln!(out, "DNS={dns}");
    }
    for gateway in gateways.iter().filter(|g| needs_on_link(**g, interface)) {
        let _ = write!(out, "\n[Route]\nGateway={gateway}\nGatewayOnLink=yes\n");
    }
    for route in static_routes(interface) {
        let _ = write!(
            out,
            "\n[Route]\nDestination={}/{}\nGateway={}\n",
            route.network, route.prefixlen, route.gateway
        );
        if needs_on_link(IpAddr::V4(route.gateway), interface) {
            out.push_str("GatewayOnLink=yes\n");
        }
    }
    out
}

#[cfg(test)]
#[path = "networkd_tests.rs"]
mod tests;
