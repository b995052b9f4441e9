//! The network model: everything `resetnetwork` will write, parsed and
//! validated before any file is touched. Every value is typed (addresses,
//! prefixes, names), so nothing a host sends reaches a shell-sourced or
//! parsed file as a raw string.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The guest's network: its hostname and its interfaces, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub hostname: Hostname,
    pub interfaces: Vec<Interface>,
}

/// One NIC, named as the guest names it (matched by MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The guest's interface name, e.g. `eth0` (a valid Linux/BSD name).
    pub name: String,
    /// Lower-case, colon-separated, e.g. `bc:76:4e:20:6c:5b`.
    pub mac: String,
    /// Nova's network label (`public`, `private`), used in comments only.
    pub label: Option<Label>,
    /// Whether the interface was up when resetnetwork started.
    pub up: bool,
    /// Enabled IPv4 addresses, in the order the host listed them.
    pub ip4s: Vec<Ip4>,
    /// Enabled IPv6 addresses, in the order the host listed them.
    pub ip6s: Vec<Ip6>,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    pub routes: Vec<Route>,
    /// Nameservers, in the host's order, duplicates kept (as the seed).
    pub dns: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip4 {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// 0 to 32, matching `netmask`.
    pub prefixlen: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip6 {
    pub address: Ipv6Addr,
    /// 0 to 128.
    pub prefixlen: u8,
}

/// A static IPv4 route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub network: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// 0 to 32, matching `netmask`.
    pub prefixlen: u8,
    pub gateway: Ipv4Addr,
}

impl Route {
    /// The seed's test in the ifupdown, ifcfg, SUSE, FreeBSD and Arch-legacy
    /// back-ends: the default route through the interface's gateway, which
    /// the gateway line already covers.
    pub fn is_default_via(&self, gateway4: Option<Ipv4Addr>) -> bool {
        self.network.is_unspecified()
            && self.netmask.is_unspecified()
            && Some(self.gateway) == gateway4
    }

    /// The seed's test in the Arch netcfg/netctl and Gentoo back-ends (bug
    /// B-NET-3: it drops every route whose next hop is the default gateway).
    /// Kept where output must match the seed byte for byte.
    pub fn is_skipped_by_seed_arch_gentoo(&self, gateway4: Option<Ipv4Addr>) -> bool {
        self.network.is_unspecified()
            || self.netmask.is_unspecified()
            || Some(self.gateway) == gateway4
    }
}

/// A hostname as sethostname(2) and every config file accept it: 1 to 63
/// bytes of letters, digits, `-` and `.`, not starting or ending with `-` or
/// `.`, no empty label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    pub fn new(name: &str) -> Result<Hostname, String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(Hostname(name.to_owned()))
        } else {
            Err(format!("Invalid hostname {name:?}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network label: printable text without quotes, backslashes, `$` or
/// backticks, at most 255 bytes, so it is safe in a comment line and in a
/// quoted shell or INI value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn new(text: &str) -> Result<Label, String> {
        let valid = text.len() <= 255
            && !text
                .chars()
                .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '$' | '`'));
        if valid {
            Ok(Label(text.to_owned()))
        } else {
            Err(format!("Invalid label {text:?}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix length of a contiguous dotted netmask (the seed's
/// NETMASK_TO_PREFIXLEN table); `None` for a non-contiguous one.
pub fn prefix_of(netmask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(netmask);
    let prefix = bits.leading_ones();
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

/// The dotted netmask of an IPv4 prefix length (0 to 32).
pub fn netmask_of(prefixlen: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefixlen.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

impl Network {
    /// Whether any interface has an IPv6 address.
    pub fn has_ipv6(&self) -> bool {
        self.interfaces.iter().any(|i| !i.ip6s.is_empty())
    }

    /// Every interface's nameservers, in interface order, duplicates kept.
    pub fn all_dns(&self) -> Vec<IpAddr> {
        self.interfaces
            .iter()
            .flat_map(|i| i.dns.iter().copied())
            .collect()
    }

    /// Nameservers without duplicates, first occurrence kept.
    pub fn unique_dns(&self) -> Vec<IpAddr> {
        let mut seen = Vec::new();
        for dns in self.all_dns() {
            if !seen.contains(&dns) {
                seen.push(dns);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_and_prefixes() {
        assert_eq!(prefix_of("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(prefix_of("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(prefix_of("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(prefix_of("255.255.224.0".parse().unwrap()), Some(19));
        assert_eq!(prefix_of("255.0.255.0".parse().unwrap()), None);
        for p in 0..=32 {
            assert_eq!(prefix_of(netmask_of(p)), Some(p));
        }
    }

    #[test]
    fn hostnames_and_labels_are_checked() {
        for good in ["example", "web-1", "a.b.c", "x"] {
            assert!(Hostname::new(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "", "-x", "x-", "a..b", "a b", "x;reboot", "x\ny", "$(id)", &long, ".x",
        ] {
            assert!(Hostname::new(bad).is_err(), "{bad:?}");
        }
        assert!(Label::new("public").is_ok());
        assert!(Label::new("private net 2").is_ok());
        for bad in ["a\nb", "a\"b", "$(x)", "`x`", "a\\b"] {
            assert!(Label::new(bad).is_err(), "{bad:?}");
        }
    }
}
