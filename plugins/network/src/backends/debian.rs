//! `ifupdown` (Debian, and Ubuntu before netplan), the seed's
//! `commands/debian/network.py`.
//!
//! Writes `/etc/network/interfaces` (the seed's template byte for byte: the
//! interfaces sorted by name, the i-th IPv4 paired with the i-th IPv6 in a
//! stanza `<if>` or `<if>:<i>`, routes after the interface's last stanza),
//! `/etc/hostname` and `/etc/hosts`. DNS goes both into `dns-nameservers`
//! (the template) and to `/etc/resolv.conf` through the framework
//! (`Plan::resolv_conf`).
//!
//! Apply sequence, as the seed: sethostname; `/sbin/ifdown` every interface
//! of the old interfaces file (failures ignored); write the files;
//! `/etc/init.d/networking restart`, then `/usr/sbin/service networking
//! restart` if that failed (a failure is forgiven under upstart, Launchpad bug
//! 1301015); `/sbin/ifup` every interface of the file now in place (failures
//! ignored); then a failed write, else a failed restart, is the answer.
//!
//! Differences from the seed:
//! - B-NET-1/B-NET-2: the seed's `update_resolvconf` (which renamed the real
//!   `/etc/resolv.conf` away and built resolvconf's base from the *old*
//!   interfaces file) is not reproduced; the framework writes resolv.conf.
//! - Upstart is detected from files (`/etc/init.d/networking` mentions
//!   `init_is_upstart` and `/sbin/initctl` exists) instead of running
//!   `/sbin/init --version`.
//! - Where `/etc/init.d/networking` is missing and `/bin/systemctl` exists
//!   (systemd-only Debian), `systemctl restart networking` is run; the seed
//!   failed with `[Errno 2]`.
//! - Every name on an `auto`/`allow-hotplug` line is brought down, not only
//!   the first, in name order rather than Python set order.
//! - An interface without any enabled address gets no stanza, and its routes
//!   are left out too: the seed appended them to the previous interface's
//!   stanza (or to `lo`'s).

use std::collections::BTreeSet;

use super::common::{add_hostname_and_hosts, set_hostname, stanzas, static_routes};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::Network;

pub const INTERFACES_FILE: &str = "/etc/network/interfaces";
const INIT_SCRIPT: &str = "/etc/init.d/networking";
const SERVICE: &str = "/usr/sbin/service";
const SYSTEMCTL: &str = "/bin/systemctl";
const INITCTL: &str = "/sbin/initctl";
const IFDOWN: &str = "/sbin/ifdown";
const IFUP: &str = "/sbin/ifup";

const HEADER: &str = "\
# Used by ifup(8) and ifdown(8). See the interfaces(5) manpage or
# /usr/share/doc/ifupdown/examples for more information.
# The loopback network interface
auto lo
iface lo inet loopback
";

/// The `ifupdown` back-end.
pub struct Ifupdown;

impl Backend for Ifupdown {
    fn name(&self) -> &'static str {
        "ifupdown"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan {
            resolv_conf: true,
            ..Plan::default()
        };
        plan.write(INTERFACES_FILE, interfaces_file(network));
        add_hostname_and_hosts(&mut plan, network, system);
        Ok(plan)
    }

    fn apply(
        &self,
        network: &Network,
        system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String> {
        set_hostname(network, actions)?;

        // A restart does not take down interfaces that left the file, so
        // everything the old file knew goes down first.
        let old_file = system.read(INTERFACES_FILE).unwrap_or_default();
        run_on_each(actions, IFDOWN, &configured_interfaces(&old_file));

        let written = actions.write(plan);
        let status = restart_networking(system, actions)?;

        // A restart does not always bring everything up either.
        let file_in_place = match (&written, plan.content(INTERFACES_FILE)) {
            (Ok(()), Some(new_file)) => String::from_utf8_lossy(new_file).into_owned(),
            _ => system.read(INTERFACES_FILE).unwrap_or(old_file),
        };
        run_on_each(actions, IFUP, &configured_interfaces(&file_in_place));

        written?;
        if status != 0 {
            return Err(format!("Couldn't restart network: {status}"));
        }
        Ok(())
    }
}

/// `/etc/network/interfaces` for `network`, the seed's template.
pub fn interfaces_file(network: &Network) -> String {
    let mut out = String::from(HEADER);
    for interface in &network.interfaces {
        let stanzas = stanzas(interface);
        let mut gateway4 = interface.gateway4;
        let mut gateway6 = interface.gateway6;
        let mut dns = Some(&interface.dns).filter(|servers| !servers.is_empty());
        for stanza in &stanzas {
            let name = &stanza.name;
            out.push('\n');
            if let Some(label) = interface.label.as_ref().filter(|l| !l.as_str().is_empty()) {
                out.push_str(&format!("# Label {label}\n"));
            }
            out.push_str(&format!("auto {name}\n"));
            if let Some(ip) = stanza.ip4 {
                out.push_str(&format!(
                    "iface {name} inet static\n    address {}\n    netmask {}\n",
                    ip.address, ip.netmask
                ));
                if let Some(gateway) = gateway4.take() {
                    out.push_str(&format!("    gateway {gateway}\n"));
                }
            }
            if let Some(ip) = stanza.ip6 {
                out.push_str(&format!(
                    "iface {name} inet6 static\n    address {}\n    netmask {}\n",
                    ip.address, ip.prefixlen
                ));
                if let Some(gateway) = gateway6.take() {
                    out.push_str(&format!("    gateway {gateway}\n"));
                }
            }
            if let Some(servers) = dns.take() {
                let joined: Vec<String> = servers.iter().map(ToString::to_string).collect();
                out.push_str(&format!("    dns-nameservers {}\n", joined.join(" ")));
            }
        }
        if stanzas.is_empty() {
            continue;
        }
        for route in static_routes(interface) {
            let spec = format!(
                "-net {} netmask {} gw {}",
                route.network, route.netmask, route.gateway
            );
            out.push_str(&format!("    post-up route add {spec} || true\n"));
            out.push_str(&format!("    pre-down route del {spec} || true\n"));
        }
    }
    out
}

/// The interfaces an interfaces file names on its `iface`, `auto` and
/// `allow-hotplug` lines, in name order, loopback (`lo*`) left out. Names
/// starting with `-` are left out too, so none can pass as an option.
pub fn configured_interfaces(file: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in file.lines() {
        let mut words = line.split_whitespace();
        let named: Vec<&str> = match words.next() {
            Some("iface") => words.next().into_iter().collect(),
            Some("auto" | "allow-hotplug") => words.collect(),
            _ => continue,
        };
        names.extend(
            named
                .into_iter()
                .filter(|name| !name.starts_with("lo") && !name.starts_with('-'))
                .map(str::to_owned),
        );
    }
    names
}

/// Runs `program <interface>` for each interface; the seed ignored every
/// failure of ifdown and ifup (they fail on interfaces they do not manage).
fn run_on_each(actions: &mut dyn Actions, program: &str, interfaces: &BTreeSet<String>) {
    for interface in interfaces {
        let _ = actions.run(program, &[interface]);
    }
}

/// The restart's exit status (0 on success); `Err` when the program could not
/// be started.
fn restart_networking(system: &System, actions: &mut dyn Actions) -> Result<i32, String> {
    if !system.exists(INIT_SCRIPT) && system.exists(SYSTEMCTL) {
        return actions.run(SYSTEMCTL, &["restart", "networking"]);
    }
    let mut status = actions.run(INIT_SCRIPT, &["restart"])?;
    if status != 0 {
        status = actions.run(SERVICE, &["networking", "restart"])?;
    }
    // Under upstart (Ubuntu 14.04) both commands refuse to restart
    // networking and the interfaces are handled by ifup alone (LP 1301015).
    if status != 0 && is_upstart(system) {
        status = 0;
    }
    Ok(status)
}

fn is_upstart(system: &System) -> bool {
    system
        .read(INIT_SCRIPT)
        .is_some_and(|script| script.contains("init_is_upstart"))
        && system.exists(INITCTL)
}

#[cfg(test)]
#[path = "debian_tests.rs"]
mod tests;
