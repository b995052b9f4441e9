//! `suse-ifcfg` (SUSE Linux Enterprise, openSUSE), the seed's
//! `commands/suse/network.py`.
//!
//! Writes `/etc/sysconfig/network/ifcfg-<if>` (one file per interface, the
//! further addresses as `IPADDR_<n>` aliases), `ifroute-<if>` (static routes
//! and the default gateways), `NETCONFIG_DNS_STATIC_SERVERS` in
//! `/etc/sysconfig/network/config`, `/etc/HOSTNAME` and `/etc/hosts`, all by
//! the seed's templates; netconfig writes resolv.conf from the config, so
//! there is no resolv.conf here. Stale `ifcfg-*`, `ifroute-*` and the global
//! `routes` file are moved aside.
//!
//! Apply sequence, as the seed: write the files; sethostname;
//! `/etc/init.d/network restart`, or where that script is missing (modern
//! SUSE, wicked behind the `network` unit) `/usr/bin/systemctl restart
//! network`. A non-zero exit gives `Couldn't restart network: <code>` with the
//! plain exit code (the seed printed the raw `os.waitpid` status, exit code ×
//! 256, an accident of Python).
//!
//! Seed bugs fixed:
//! - B-NET-8: stale `ifroute-*` files are moved aside (the seed globbed
//!   `route-*`, which matches nothing SUSE uses).
//! - B-NET-9: with no nameserver at all the config file is left alone (the
//!   seed wrote `NETCONFIG_DNS_STATIC_SERVERS=""`, clearing DNS); a missing
//!   config file is created, with only that line, when there are nameservers.

use super::common::{
    add_etc_hosts, run_checked, set_hostname, set_variable, stale_files, static_routes,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

const CONFIG_DIR: &str = "/etc/sysconfig/network";
const DNS_CONFIG_FILE: &str = "/etc/sysconfig/network/config";
const DNS_VARIABLE: &str = "NETCONFIG_DNS_STATIC_SERVERS";
const GLOBAL_ROUTES: &str = "routes";
const HOSTNAME_FILE: &str = "/etc/HOSTNAME";
const INIT_SCRIPT: &str = "/etc/init.d/network";
const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// The `suse-ifcfg` back-end.
pub struct SuseIfcfg;

impl Backend for SuseIfcfg {
    fn name(&self) -> &'static str {
        "suse-ifcfg"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            let name = &interface.name;
            plan.write(format!("{CONFIG_DIR}/ifcfg-{name}"), ifcfg_file(interface));
            if let Some(routes) = ifroute_file(interface) {
                plan.write(format!("{CONFIG_DIR}/ifroute-{name}"), routes);
            }
        }
        let existing_config = system.read(DNS_CONFIG_FILE).unwrap_or_default();
        if let Some(config) = dns_config(&existing_config, network) {
            plan.write(DNS_CONFIG_FILE, config);
        }
        plan.write(HOSTNAME_FILE, format!("{}\n", network.hostname));
        add_etc_hosts(&mut plan, network, system);
        plan.remove = stale_files(system, CONFIG_DIR, &plan, managed);
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
        let (program, args): (&str, &[&str]) = if system.exists(INIT_SCRIPT) {
            (INIT_SCRIPT, &["restart"])
        } else {
            (SYSTEMCTL, &["restart", "network"])
        };
        run_checked(actions, program, args, "Couldn't restart network")
    }
}

/// `ifcfg-<if>`: the first address as `IPADDR` (with `NETMASK` for IPv4,
/// `PREFIXLEN` for IPv6), each further one as `IPADDR_<n>` with its `LABEL_<n>`,
/// n counting from 0, IPv4 addresses before IPv6 ones.
pub fn ifcfg_file(interface: &Interface) -> String {
    let mut out = String::from("# Automatically generated, do not edit\n\n");
    if let Some(label) = interface.label.as_ref().filter(|l| !l.as_str().is_empty()) {
        out.push_str(&format!("# Label {label}\n"));
    }
    out.push_str("BOOTPROTO='static'\n");
    let ip4s = interface
        .ip4s
        .iter()
        .map(|ip| (ip.address.to_string(), "NETMASK", ip.netmask.to_string()));
    let ip6s = interface.ip6s.iter().map(|ip| {
        (
            ip.address.to_string(),
            "PREFIXLEN",
            ip.prefixlen.to_string(),
        )
    });
    for (index, (address, mask_key, mask)) in ip4s.chain(ip6s).enumerate() {
        if index == 0 {
            out.push_str(&format!("IPADDR='{address}'\n{mask_key}='{mask}'\n"));
        } else {
            let n = index - 1;
            out.push_str(&format!(
                "IPADDR_{n}='{address}'\n{mask_key}_{n}='{mask}'\nLABEL_{n}='{n}'\n"
            ));
        }
    }
    out.push_str("STARTMODE='auto'\nUSERCONTROL='no'\n");
    out
}

/// `ifroute-<if>`: `<network> <gateway> <netmask> <if>` for each static route
/// but the default one through the interface's gateway, then the default
/// gateways; `None` when that is empty.
pub fn ifroute_file(interface: &Interface) -> Option<String> {
    let mut out = String::new();
    for route in static_routes(interface) {
        out.push_str(&format!(
            "{} {} {} {}\n",
            route.network, route.gateway, route.netmask, interface.name
        ));
    }
    if let Some(gateway) = interface.gateway4 {
        out.push_str(&format!("default {gateway} - -\n"));
    }
    if let Some(gateway) = interface.gateway6 {
        out.push_str(&format!("default {gateway} - -\n"));
    }
    (!out.is_empty()).then_some(out)
}

/// The netconfig file with `NETCONFIG_DNS_STATIC_SERVERS` set to every
/// interface's nameservers; `None` (leave the file alone) when there is none.
pub fn dns_config(existing: &str, network: &Network) -> Option<String> {
    let servers: Vec<String> = network.all_dns().iter().map(ToString::to_string).collect();
    if servers.is_empty() {
        return None;
    }
    Some(set_variable(
        existing,
        DNS_VARIABLE,
        &format!("\"{}\"", servers.join(" ")),
    ))
}

/// Whether `name` in the config directory is an interface's `ifcfg-*` or
/// `ifroute-*` file (names without a `.`, loopback's not), or the global
/// `routes` file, which the per-interface `ifroute` files replace.
fn managed(name: &str) -> bool {
    let per_interface = (name.starts_with("ifcfg-") || name.starts_with("ifroute-"))
        && !name.contains('.')
        && name != "ifcfg-lo"
        && name != "ifroute-lo";
    per_interface || name == GLOBAL_ROUTES
}

#[cfg(test)]
#[path = "suse_tests.rs"]
mod tests;
