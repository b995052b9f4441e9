//! `redhat-ifcfg` (RHEL, CentOS, Fedora, Oracle Linux with initscripts), the
//! seed's `commands/redhat/network.py`.
//!
//! Writes `/etc/sysconfig/network-scripts/ifcfg-<stanza>` for every stanza
//! (`<if>`, `<if>:<i>`: the i-th IPv4 paired with the i-th IPv6, as
//! ifupdown), `route-<if>` for an interface's static routes,
//! `/etc/sysconfig/network` (`NETWORKING_IPV6`, `HOSTNAME`) and `/etc/hosts`,
//! all by the seed's templates. DNS goes into `DNSn` of the first stanza, so
//! there is no resolv.conf. Stale `ifcfg-*` and `route-*` files are moved
//! aside.
//!
//! Apply sequence, as the seed: write the files; sethostname;
//! `/etc/init.d/network restart`. A non-zero exit gives `Couldn't restart
//! network: <code>` with the plain exit code (the seed printed the raw
//! `os.waitpid` status, exit code × 256, an accident of Python). Without the
//! script (RHEL 8+) the answer is the runner's message, as the seed's OSError.
//!
//! Seed bugs fixed:
//! - B-NET-7: the route file is named after the interface (`route-eth0`),
//!   not its last alias (`route-eth0:1`), and its entries are numbered 0, 1,
//!   2… without the gap a skipped default route left.
//! - B-NET-8: every `route-*` not being written is moved aside (the seed's
//!   loop added the wrong variable and removed none), so routes that left the
//!   payload do not come back at boot.

use super::common::{
    add_etc_hosts, run_checked, set_hostname, set_variable, stale_files, stanzas, static_routes,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

const SCRIPTS_DIR: &str = "/etc/sysconfig/network-scripts";
const NETWORK_FILE: &str = "/etc/sysconfig/network";
const INIT_SCRIPT: &str = "/etc/init.d/network";

/// The `redhat-ifcfg` back-end.
pub struct RedhatIfcfg;

impl Backend for RedhatIfcfg {
    fn name(&self) -> &'static str {
        "redhat-ifcfg"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            for (stanza, content) in ifcfg_files(interface) {
                plan.write(format!("{SCRIPTS_DIR}/ifcfg-{stanza}"), content);
            }
            if let Some(routes) = route_file(interface) {
                plan.write(format!("{SCRIPTS_DIR}/route-{}", interface.name), routes);
            }
        }
        let existing_network = system.read(NETWORK_FILE).unwrap_or_default();
        plan.write(NETWORK_FILE, sysconfig_network(&existing_network, network));
        add_etc_hosts(&mut plan, network, system);
        plan.remove = stale_files(system, SCRIPTS_DIR, &plan, per_interface);
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
            INIT_SCRIPT,
            &["restart"],
            "Couldn't restart network",
        )
    }
}

/// `(stanza name, ifcfg content)` for each stanza of `interface`. The IPv4
/// gateway goes on the first stanza with an IPv4 address, the IPv6 gateway on
/// the first with an IPv6 address, the nameservers on the first stanza.
pub fn ifcfg_files(interface: &Interface) -> Vec<(String, String)> {
    let mut gateway4 = interface.gateway4;
    let mut gateway6 = interface.gateway6;
    let mut dns = Some(&interface.dns).filter(|servers| !servers.is_empty());
    let mut files = Vec::new();
    for stanza in stanzas(interface) {
        let name = stanza.name;
        let mut out = String::from("# Automatically generated, do not edit\n\n");
        if let Some(label) = interface.label.as_ref().filter(|l| !l.as_str().is_empty()) {
            out.push_str(&format!("# Label {label}\n"));
        }
        out.push_str(&format!(
            "DEVICE={name}\nBOOTPROTO=static\nHWADDR={}\n",
            interface.mac.to_lowercase()
        ));
        if let Some(ip) = stanza.ip4 {
            out.push_str(&format!("IPADDR={}\nNETMASK={}\n", ip.address, ip.netmask));
            if let Some(gateway) = gateway4.take() {
                out.push_str(&format!("DEFROUTE=yes\nGATEWAY={gateway}\n"));
            }
        }
        if let Some(ip) = stanza.ip6 {
            out.push_str(&format!(
                "IPV6INIT=yes\nIPV6_AUTOCONF=no\nIPV6ADDR={}/{}\n",
                ip.address, ip.prefixlen
            ));
            if let Some(gateway) = gateway6.take() {
                out.push_str(&format!("IPV6_DEFAULTGW={gateway}%{name}\n"));
            }
        }
        for (index, server) in dns.take().into_iter().flatten().enumerate() {
            out.push_str(&format!("DNS{}={server}\n", index + 1));
        }
        out.push_str("ONBOOT=yes\nNM_CONTROLLED=no\n");
        files.push((name, out));
    }
    files
}

/// `route-<if>`: `ADDRESSn`, `NETMASKn`, `GATEWAYn` for each static route but
/// the default one through the interface's gateway, numbered without gaps;
/// `None` when there is no such route.
pub fn route_file(interface: &Interface) -> Option<String> {
    let mut out = String::new();
    for (index, route) in static_routes(interface).enumerate() {
        out.push_str(&format!(
            "ADDRESS{index}={}\nNETMASK{index}={}\nGATEWAY{index}={}\n",
            route.network, route.netmask, route.gateway
        ));
    }
    (!out.is_empty()).then_some(out)
}

/// `/etc/sysconfig/network` with `NETWORKING_IPV6` (yes when any interface
/// has IPv6) and then `HOSTNAME` set.
pub fn sysconfig_network(existing: &str, network: &Network) -> String {
    let ipv6 = if network.has_ipv6() { "yes" } else { "no" };
    let updated = set_variable(existing, "NETWORKING_IPV6", ipv6);
    set_variable(&updated, "HOSTNAME", network.hostname.as_str())
}

/// Whether `name` in the scripts directory is an interface's `ifcfg-*` or
/// `route-*` file: names without a `.` (backups and VLANs such as
/// `ifcfg-eth0.100` have one), loopback's not.
fn per_interface(name: &str) -> bool {
    (name.starts_with("ifcfg-") || name.starts_with("route-"))
        && !name.contains('.')
        && name != "ifcfg-lo"
        && name != "route-lo"
}

#[cfg(test)]
#[path = "redhat_tests.rs"]
mod tests;
