//! The Arch back-ends' editor of `/etc/rc.conf`, as the seed edited it:
//! the file read as stripped lines with the line of each `NAME=`, lists
//! such as `INTERFACES=(…)` replaced or commented out together with the
//! variables they name (B-NET-11 fixed), `DAEMONS=(…)` edited, `HOSTNAME=`
//! set. Used by `arch-netcfg` and `arch-rcconf` (see `arch`).

use std::collections::HashMap;

use super::common::{set_variable, single_default_gateways, stanzas};
use crate::model::{Hostname, Network};

/// `/etc/rc.conf` as the seed reads it: stripped lines (`None` once
/// deleted) and the line of each `NAME=` (the last one wins).
struct RcConf {
    lines: Vec<Option<String>>,
    variables: HashMap<String, usize>,
}

impl RcConf {
    fn parse(text: &str) -> RcConf {
        let mut rc = RcConf {
            lines: Vec::new(),
            variables: HashMap::new(),
        };
        for line in text.lines().map(str::trim) {
            if let Some((name, _)) = line.split_once('=') {
                rc.variables.insert(name.trim().to_owned(), rc.lines.len());
            }
            rc.lines.push(Some(line.to_owned()));
        }
        rc
    }

    /// The line of `variable`, or a new empty line at the end.
    fn line_or_append(&mut self, variable: &str) -> usize {
        self.variables.get(variable).copied().unwrap_or_else(|| {
            self.lines.push(Some(String::new()));
            self.lines.len() - 1
        })
    }

    /// The words of the value on line `lineno` (`(a b)` or `a b`), with
    /// leading `!` removed when `strip_bang`.
    fn values(&self, lineno: usize, strip_bang: bool) -> Vec<String> {
        let Some((_, value)) = self.lines[lineno]
            .as_deref()
            .and_then(|l| l.split_once('='))
        else {
            return Vec::new();
        };
        let value = value.trim();
        let value = value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or(value);
        value
            .split_whitespace()
            .map(|word| {
                if strip_bang {
                    word.trim_start_matches('!')
                } else {
                    word
                }
            })
            .map(str::to_owned)
            .collect()
    }

    fn daemons(&self) -> Vec<String> {
        self.variables
            .get("DAEMONS")
            .map(|&lineno| self.values(lineno, false))
            .unwrap_or_default()
    }

    /// Deletes the variables `list` names and puts `entries` (`name="value"`)
    /// and `list=(names)` in its place.
    fn replace_list(&mut self, list: &str, entries: &[(String, String)]) {
        if let Some(&lineno) = self.variables.get(list) {
            for name in self.values(lineno, true) {
                if let Some(&referenced) = self.variables.get(&name) {
                    self.lines[referenced] = None;
                }
            }
        }
        let lineno = self.line_or_append(list);
        let mut block: Vec<String> = entries
            .iter()
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        block.push(format!("{list}=({})", names.join(" ")));
        self.lines[lineno] = Some(block.join("\n"));
    }

    /// Comments out `list` and the variables it names (B-NET-11 fixed).
    fn comment_out(&mut self, list: &str) {
        let Some(&lineno) = self.variables.get(list) else {
            return;
        };
        let mut targets: Vec<usize> = self
            .values(lineno, true)
            .iter()
            .filter_map(|name| self.variables.get(name).copied())
            .collect();
        targets.push(lineno);
        targets.sort_unstable();
        targets.dedup();
        for target in targets {
            if let Some(line) = &mut self.lines[target] {
                line.insert(0, '#');
            }
        }
    }

    /// Rewrites `DAEMONS=(…)` with `change` when it returns true.
    fn edit_daemons(&mut self, change: impl FnOnce(&mut Vec<String>) -> bool) {
        let Some(&lineno) = self.variables.get("DAEMONS") else {
            return;
        };
        let mut daemons = self.values(lineno, false);
        if change(&mut daemons) {
            self.lines[lineno] = Some(format!("DAEMONS=({})", daemons.join(" ")));
        }
    }

    fn render(&self) -> String {
        self.lines
            .iter()
            .flatten()
            .map(|line| format!("{line}\n"))
            .collect()
    }
}

/// The seed's `_update_rc_conf_legacy`: `/etc/rc.conf` (without the
/// hostname) for the legacy network scripts.
pub(super) fn legacy_rc_conf(existing: &str, network: &Network) -> Result<String, String> {
    let (gateway4, gateway6) = single_default_gateways(network)?;
    let mut variables = Vec::new();
    let mut routes = Vec::new();
    for interface in &network.interfaces {
        for stanza in stanzas(interface) {
            let mut words = vec![stanza.name.clone()];
            if let Some(ip) = stanza.ip4 {
                words.push(format!("{} netmask {}", ip.address, ip.netmask));
            }
            if let Some(ip) = stanza.ip6 {
                words.push(format!("add {}/{}", ip.address, ip.prefixlen));
            }
            variables.push((stanza.name.replace(':', "_"), words.join(" ")));
        }
        for (index, route) in interface.routes.iter().enumerate() {
            if !route.is_default_via(interface.gateway4) {
                let value = format!(
                    "-net {} netmask {} gw {}",
                    route.network, route.netmask, route.gateway
                );
                routes.push((format!("{}_route{index}", interface.name), value));
            }
        }
    }
    if let Some(gateway) = gateway4 {
        routes.push(("gateway".to_owned(), format!("default gw {gateway}")));
    }
    if let Some((gateway, _)) = gateway6 {
        routes.push(("gateway6".to_owned(), format!("default gw {gateway}")));
    }
    let mut rc = RcConf::parse(existing);
    rc.replace_list("INTERFACES", &variables);
    rc.replace_list("ROUTES", &routes);
    rc.comment_out("NETWORKS");
    rc.edit_daemons(|daemons| {
        let Some(position) = daemons.iter().position(|d| d == "!network") else {
            return false;
        };
        daemons[position] = "network".to_owned();
        if let Some(profiles) = daemons.iter().position(|d| d == "@net-profiles") {
            daemons.remove(profiles);
        }
        true
    });
    Ok(rc.render())
}

/// The seed's `_update_rc_conf_netcfg`: `/etc/rc.conf` (without the
/// hostname) handing the network to netcfg profiles `names`.
pub(super) fn netcfg_rc_conf(existing: &str, names: &[&str]) -> String {
    let mut rc = RcConf::parse(existing);
    let lineno = rc.line_or_append("NETWORKS");
    rc.lines[lineno] = Some(format!("NETWORKS=({})", names.join(" ")));
    rc.comment_out("INTERFACES");
    rc.comment_out("ROUTES");
    rc.edit_daemons(|daemons| {
        let Some(position) = daemons.iter().position(|d| d == "network") else {
            return false;
        };
        daemons[position] = "!network".to_owned();
        if !daemons.iter().any(|d| d == "@net-profiles") {
            daemons.insert(position + 1, "@net-profiles".to_owned());
        }
        true
    });
    rc.render()
}

/// The seed's `get_hostname_file`: every `HOSTNAME=` line replaced, or one
/// appended; lines stripped.
pub(super) fn rc_conf_with_hostname(existing: &str, hostname: &Hostname) -> String {
    set_variable(existing, "HOSTNAME", &format!("\"{hostname}\""))
}

/// The words of `DAEMONS=(…)`; empty when there is none.
pub(super) fn daemons(existing: &str) -> Vec<String> {
    RcConf::parse(existing).daemons()
}

#[cfg(test)]
#[path = "arch_rcconf_tests.rs"]
mod tests;
