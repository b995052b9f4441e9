//! The guest's Ethernet NICs, from `<root>/sys/class/net/<if>/`: `type` 1
//! (loopback, 772, and everything else is skipped), `address`, and the up
//! flag of `flags`.

use std::collections::BTreeMap;

use crate::backend::System;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub up: bool,
}

/// MAC (lower-case, colon-separated) → NIC. Where several interfaces share
/// a MAC (a bond, bridge or VLAN and its physical port), the one backed by a
/// device (`<if>/device` exists) wins, then the first by name.
pub fn discover(system: &System) -> BTreeMap<String, Nic> {
    let mut found: BTreeMap<String, (Nic, bool)> = BTreeMap::new();
    for name in system.list("/sys/class/net") {
        if !is_plain_name(&name) {
            tracing::warn!("interface {name:?} has a name nova-agent does not configure");
            continue;
        }
        let dir = format!("/sys/class/net/{name}");
        let read = |file: &str| {
            system
                .read(&format!("{dir}/{file}"))
                .map(|s| s.trim().to_owned())
        };
        if read("type").as_deref() != Some("1") {
            continue;
        }
        let Some(mac) = read("address").map(|m| m.to_ascii_lowercase()) else {
            continue;
        };
        let flags = read("flags")
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let physical = system.exists(&format!("{dir}/device"));
        let nic = Nic {
            name,
            up: flags & 1 != 0,
        };
        match found.get(&mac) {
            Some((_, true)) => {}
            Some((_, false)) if !physical => {}
            _ => {
                found.insert(mac, (nic, physical));
            }
        }
    }
    found
        .into_iter()
        .map(|(mac, (nic, _))| (mac, nic))
        .collect()
}

/// 1 to 15 bytes of `A-Za-z0-9_.-`: safe in every config format (no glob,
/// escape or shell character) and what kernels name NICs.
fn is_plain_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::root_with;

    #[test]
    fn ethernet_nics_by_mac() {
        let root = root_with(&[
            ("/sys/class/net/lo/type", "772\n"),
            ("/sys/class/net/lo/address", "00:00:00:00:00:00\n"),
            ("/sys/class/net/eth0/type", "1\n"),
            ("/sys/class/net/eth0/address", "BC:76:4E:20:6C:5A\n"),
            ("/sys/class/net/eth0/flags", "0x1003\n"),
            ("/sys/class/net/eth1/type", "1\n"),
            ("/sys/class/net/eth1/address", "bc:76:4e:20:6c:5b\n"),
            ("/sys/class/net/eth1/flags", "0x1002\n"),
            ("/sys/class/net/eth1/device/vendor", "x"),
            ("/sys/class/net/br0/type", "1\n"),
            ("/sys/class/net/br0/address", "bc:76:4e:20:6c:5b\n"),
            ("/sys/class/net/tun0/type", "65534\n"),
            ("/sys/class/net/we*ird/type", "1\n"),
            ("/sys/class/net/we*ird/address", "bc:76:4e:20:6c:5c\n"),
            ("/sys/class/net/tun0/address", "\n"),
        ]);
        let nics = discover(&System::new(root.path()));
        assert_eq!(nics.len(), 2);
        assert_eq!(
            nics["bc:76:4e:20:6c:5a"],
            Nic {
                name: "eth0".into(),
                up: true
            }
        );
        assert_eq!(
            nics["bc:76:4e:20:6c:5b"],
            Nic {
                name: "eth1".into(),
                up: false
            }
        );
    }
}
