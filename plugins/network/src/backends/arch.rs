//! Arch Linux in the seed's three modes (seed §3.5.4; the mode is chosen
//! elsewhere). Exit codes are reported as the seed did (plain codes).
//!
//! - `arch-netctl` (systemd): writes `/etc/netctl/<if>` (DNS in `DNS=`; no
//!   `/etc/hosts`, no resolv.conf). Runs `hostnamectl set-hostname <h>`
//!   (status ignored), sethostname, `netctl stop <if>` for each interface
//!   that was up (soft), writes, then `netctl restart <if>` + `netctl
//!   reenable <if>` with one retry (`Failed to start <if1>, <if2>`). Without
//!   `/usr/bin/netctl` it only writes the files (as the seed).
//! - `arch-netcfg`: writes `/etc/network.d/<if>` (extra addresses through
//!   `POST_UP`/`PRE_DOWN`, DNS in `DNS=`), `/etc/rc.conf` (`NETWORKS=`,
//!   `INTERFACES`/`ROUTES` commented out, `!network @net-profiles`,
//!   `HOSTNAME=`) and `/etc/hosts`. Runs sethostname; `netcfg -d <if>` for
//!   each interface that was up when the current config is netcfg (`DAEMONS`
//!   lacks `network`), else `/etc/rc.d/network stop` (`Couldn't stop
//!   network: <code>`); writes; `netcfg -u <if>` with one retry.
//! - `arch-rcconf` (the seed's legacy mode): writes `/etc/rc.conf` (stanzas,
//!   `INTERFACES=`, routes, `gateway=`/`gateway6=`, `ROUTES=`, `NETWORKS`
//!   commented out, `network` back in `DAEMONS`, `HOSTNAME=`), `/etc/hosts`
//!   and resolv.conf; `Multiple IPv4 (IPv6) default routes specified` when
//!   two interfaces have a gateway. Runs sethostname, `/etc/rc.d/network
//!   stop` (`Couldn't stop network: <code>`), writes, `/etc/rc.d/network
//!   start` (`Couldn't start network: <code>`).
//!
//! Routes are skipped as the seed did: `Route::is_skipped_by_seed_arch_gentoo`
//! in profiles (B-NET-3 kept), `Route::is_default_via` in rc.conf.
//!
//! Seed bugs fixed:
//! - B-NET-10: netctl's `Address=` lists every IPv4 address as
//!   `'<a>/<prefixlen>'`, `Address6=` every IPv6 one, `Routes=` uses prefix
//!   lengths; a profile without IPv4 says `IP=no` (netctl requires `IP=`);
//!   `netctl stop <if>`, not `ethernet-<if>`; an interface is started only
//!   when both `restart` and `reenable` succeed.
//! - B-NET-10, profile removal (netctl and netcfg alike): only profiles
//!   nova-agent wrote for interfaces no longer present are moved aside: a
//!   regular file named after the interface whose first lines are
//!   nova-agent's (`# Label …` lines, then `Connection=ethernet` /
//!   `CONNECTION="ethernet"`, then `Interface=<its name>` /
//!   `INTERFACE=<its name>`). Other profiles are left alone.
//! - B-NET-11: the variables named by `INTERFACES`/`ROUTES` (netcfg) and
//!   `NETWORKS` (legacy) are commented out, not overwritten with a commented
//!   copy of the list line.
//!
//! The `/etc/rc.conf` editor is in `arch_rcconf`.

use super::arch_rcconf::{daemons, legacy_rc_conf, netcfg_rc_conf, rc_conf_with_hostname};
use super::common::{
    add_etc_hosts, routes_kept_by_seed_arch_gentoo, run_checked, set_hostname, stale_files,
};
use crate::backend::{Actions, Backend, Plan, System};
use crate::model::{Interface, Network};

const RC_CONF: &str = "/etc/rc.conf";
const NETCTL_PROFILES: Profiles = Profiles {
    dir: "/etc/netctl",
    connection_line: "Connection=ethernet",
    interface_key: "Interface",
};
const NETCFG_PROFILES: Profiles = Profiles {
    dir: "/etc/network.d",
    connection_line: "CONNECTION=\"ethernet\"",
    interface_key: "INTERFACE",
};
const NETCTL: &str = "/usr/bin/netctl";
const NETCFG: &str = "/usr/bin/netcfg";
const HOSTNAMECTL: &str = "/usr/bin/hostnamectl";
const RC_NETWORK: &str = "/etc/rc.d/network";

/// netctl profiles (systemd Arch).
pub struct ArchNetctl;
/// netcfg profiles and `/etc/rc.conf`.
pub struct ArchNetcfg;
/// Everything in `/etc/rc.conf` (the seed's legacy mode).
pub struct ArchRcconf;

impl Backend for ArchNetctl {
    fn name(&self) -> &'static str {
        "arch-netctl"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            let path = format!("{}/{}", NETCTL_PROFILES.dir, interface.name);
            plan.write(path, netctl_profile(interface));
        }
        plan.remove = NETCTL_PROFILES.stale(system, &plan);
        Ok(plan)
    }

    fn apply(
        &self,
        network: &Network,
        system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String> {
        actions.run(HOSTNAMECTL, &["set-hostname", network.hostname.as_str()])?;
        set_hostname(network, actions)?;
        let installed = system.exists(NETCTL);
        if installed {
            for interface in network.interfaces.iter().filter(|i| i.up) {
                // A failure to stop is soft, as in the seed.
                actions.run(NETCTL, &["stop", &interface.name])?;
            }
        }
        actions.write(plan)?;
        if !installed {
            tracing::warn!("{NETCTL} is missing: the profiles are written, nothing is started");
            return Ok(());
        }
        start_each_with_retry(network, actions, |actions, name| {
            let restarted = actions.run(NETCTL, &["restart", name])?;
            let reenabled = actions.run(NETCTL, &["reenable", name])?;
            Ok(restarted == 0 && reenabled == 0)
        })
    }
}

impl Backend for ArchNetcfg {
    fn name(&self) -> &'static str {
        "arch-netcfg"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for interface in &network.interfaces {
            let path = format!("{}/{}", NETCFG_PROFILES.dir, interface.name);
            plan.write(path, netcfg_profile(interface));
        }
        let names: Vec<&str> = network.interfaces.iter().map(|i| i.name.as_str()).collect();
        let rc_conf = netcfg_rc_conf(&system.read(RC_CONF).unwrap_or_default(), &names);
        plan.write(RC_CONF, rc_conf_with_hostname(&rc_conf, &network.hostname));
        add_etc_hosts(&mut plan, network, system);
        plan.remove = NETCFG_PROFILES.stale(system, &plan);
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
        let current = system.read(RC_CONF).unwrap_or_default();
        let current_is_netcfg = !daemons(&current).iter().any(|d| d == "network");
        if current_is_netcfg {
            for interface in network.interfaces.iter().filter(|i| i.up) {
                // A failure to bring one down is soft, as in the seed.
                actions.run(NETCFG, &["-d", &interface.name])?;
            }
        } else {
            stop_rc_network(actions)?;
        }
        actions.write(plan)?;
        start_each_with_retry(network, actions, |actions, name| {
            Ok(actions.run(NETCFG, &["-u", name])? == 0)
        })
    }
}

impl Backend for ArchRcconf {
    fn name(&self) -> &'static str {
        "arch-rcconf"
    }

    fn render(&self, network: &Network, system: &System) -> Result<Plan, String> {
        let rc_conf = legacy_rc_conf(&system.read(RC_CONF).unwrap_or_default(), network)?;
        let mut plan = Plan {
            resolv_conf: true,
            ..Plan::default()
        };
        plan.write(RC_CONF, rc_conf_with_hostname(&rc_conf, &network.hostname));
        add_etc_hosts(&mut plan, network, system);
        Ok(plan)
    }

    fn apply(
        &self,
        network: &Network,
        _system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String> {
        set_hostname(network, actions)?;
        stop_rc_network(actions)?;
        actions.write(plan)?;
        run_checked(actions, RC_NETWORK, &["start"], "Couldn't start network")
    }
}

fn stop_rc_network(actions: &mut dyn Actions) -> Result<(), String> {
    run_checked(actions, RC_NETWORK, &["stop"], "Couldn't stop network")
}

/// Brings each interface up with `up` (true on success), trying a failed
/// one a second time; `Failed to start <names>` for those failing twice.
fn start_each_with_retry(
    network: &Network,
    actions: &mut dyn Actions,
    up: impl Fn(&mut dyn Actions, &str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut failed = Vec::new();
    for interface in &network.interfaces {
        // The retry works around interfaces still holding their old
        // addresses after a change of mode (the seed's comment).
        if !up(actions, &interface.name)? && !up(actions, &interface.name)? {
            failed.push(interface.name.as_str());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_unstable();
    Err(format!("Failed to start {}", failed.join(", ")))
}

/// The elements of `items`, formatted by `format` and joined by `separator`.
fn join<T>(
    items: impl IntoIterator<Item = T>,
    format: impl Fn(T) -> String,
    separator: &str,
) -> String {
    items
        .into_iter()
        .map(format)
        .collect::<Vec<_>>()
        .join(separator)
}

fn netctl_profile(interface: &Interface) -> String {
    let (name, ip4s, ip6s) = (&interface.name, &interface.ip4s, &interface.ip6s);
    let (gateway4, gateway6) = (interface.gateway4, interface.gateway6);
    let quoted_cidr = |(address, prefixlen): (String, u8)| format!("'{address}/{prefixlen}'");
    let mut out = label_line(interface);
    out += &format!("Connection=ethernet\nInterface={name}\n");
    if ip4s.is_empty() {
        out += "IP=no\n";
    } else {
        let addresses = join(
            ip4s.iter().map(|ip| (ip.address.to_string(), ip.prefixlen)),
            quoted_cidr,
            " ",
        );
        out += &format!("IP=static\nAddress=({addresses})\n");
        out += &gateway4
            .map(|gateway| format!("Gateway={gateway}\n"))
            .unwrap_or_default();
    }
    if !ip6s.is_empty() {
        let addresses = join(
            ip6s.iter().map(|ip| (ip.address.to_string(), ip.prefixlen)),
            quoted_cidr,
            " ",
        );
        out += &format!("IP6=static\nAddress6=({addresses})\n");
        out += &gateway6
            .map(|gateway| format!("Gateway6={gateway}\n"))
            .unwrap_or_default();
    }
    let kept: Vec<_> = routes_kept_by_seed_arch_gentoo(interface).collect();
    if !kept.is_empty() {
        let routes = join(
            kept,
            |r| format!("'{}/{} via {}'", r.network, r.prefixlen, r.gateway),
            " ",
        );
        out += &format!("Routes=({routes})\n");
    }
    if !interface.dns.is_empty() {
        out += &format!(
            "DNS=({})\n",
            join(&interface.dns, |server| format!("'{server}'"), " ")
        );
    }
    out
}

fn netcfg_profile(interface: &Interface) -> String {
    let (name, ip4s, ip6s) = (&interface.name, &interface.ip4s, &interface.ip6s);
    let (gateway4, gateway6) = (interface.gateway4, interface.gateway6);
    let mut out = label_line(interface);
    out += &format!("CONNECTION=\"ethernet\"\nINTERFACE={name}\n");
    let mut aliases = Vec::new();
    if let Some((first, others)) = ip4s.split_first() {
        out += &format!(
            "IP=\"static\"\nADDR=\"{}\"\nNETMASK=\"{}\"\n",
            first.address, first.netmask
        );
        out += &gateway4
            .map(|gateway| format!("GATEWAY=\"{gateway}\"\n"))
            .unwrap_or_default();
        aliases.extend(
            others
                .iter()
                .map(|ip| format!("{}/{}", ip.address, ip.netmask)),
        );
    }
    if let Some((first, others)) = ip6s.split_first() {
        out += &format!(
            "IP6=\"static\"\nADDR6=\"{}/{}\"\n",
            first.address, first.prefixlen
        );
        out += &gateway6
            .map(|gateway| format!("GATEWAY6=\"{gateway}\"\n"))
            .unwrap_or_default();
        aliases.extend(
            others
                .iter()
                .map(|ip| format!("{}/{}", ip.address, ip.prefixlen)),
        );
    }
    let kept: Vec<_> = routes_kept_by_seed_arch_gentoo(interface).collect();
    if !kept.is_empty() {
        let routes = join(
            kept,
            |r| format!("\"{}/{} via {}\"", r.network, r.netmask, r.gateway),
            " ",
        );
        out += &format!("ROUTES=({routes})\n");
    }
    if !interface.dns.is_empty() {
        out += &format!("DNS=({})\n", join(&interface.dns, ToString::to_string, " "));
    }
    // netcfg takes one address per family; the others are added by hand
    // (the seed's workaround, https://bbs.archlinux.org/viewtopic.php?pid=951573).
    if !aliases.is_empty() {
        let add = join(
            &aliases,
            |alias| format!("ip addr add {alias} dev {name}"),
            "; ",
        );
        let del = join(
            aliases.iter().rev(),
            |alias| format!("ip addr del {alias} dev {name}"),
            "; ",
        );
        out += &format!("POST_UP=\"{add}\"\nPRE_DOWN=\"{del}\"\n");
    }
    out
}

fn label_line(interface: &Interface) -> String {
    interface
        .label
        .as_ref()
        .map(|label| format!("# Label {label}\n"))
        .unwrap_or_default()
}

/// A directory of profiles, and how the profiles nova-agent writes begin.
struct Profiles {
    dir: &'static str,
    connection_line: &'static str,
    interface_key: &'static str,
}

impl Profiles {
    /// The profiles nova-agent wrote that `plan` does not write again: those
    /// of interfaces no longer in the model.
    fn stale(&self, system: &System, plan: &Plan) -> Vec<String> {
        stale_files(system, self.dir, plan, |name| {
            self.written_by_us(system, name)
        })
    }

    /// Whether the profile `name` is a regular file that begins as the
    /// profiles nova-agent writes (after any `# Label` lines).
    fn written_by_us(&self, system: &System, name: &str) -> bool {
        let path = format!("{}/{name}", self.dir);
        if !system.is_file(&path) {
            return false;
        }
        let Some(text) = system.read(&path) else {
            return false;
        };
        let mut lines = text.lines().skip_while(|l| l.starts_with("# Label "));
        lines.next() == Some(self.connection_line)
            && lines.next() == Some(format!("{}={name}", self.interface_key).as_str())
    }
}

#[cfg(test)]
#[path = "arch_tests.rs"]
mod tests;
