//! The back-ends, one module each: the seed's six distro families
//! (byte-compatible with its templates) and three it never had.

use crate::backend::Backend;

pub mod arch;
mod arch_rcconf;
mod common;
pub mod debian;
pub mod freebsd;
pub mod gentoo;
pub mod netplan;
pub mod networkd;
pub mod networkmanager;
pub mod redhat;
pub mod suse;

/// Every back-end name `[plugins.network] backend` takes.
pub const NAMES: [&str; 12] = [
    "ifupdown",
    "redhat-ifcfg",
    "suse-ifcfg",
    "arch-netctl",
    "arch-netcfg",
    "arch-rcconf",
    "gentoo-netifrc",
    "gentoo-legacy",
    "freebsd-rcconf",
    "netplan",
    "networkd",
    "networkmanager",
];

/// The back-end called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Backend>> {
    Some(match name {
        "ifupdown" => Box::new(debian::Ifupdown),
        "redhat-ifcfg" => Box::new(redhat::RedhatIfcfg),
        "suse-ifcfg" => Box::new(suse::SuseIfcfg),
        "arch-netctl" => Box::new(arch::ArchNetctl),
        "arch-netcfg" => Box::new(arch::ArchNetcfg),
        "arch-rcconf" => Box::new(arch::ArchRcconf),
        "gentoo-netifrc" => Box::new(gentoo::GentooNetifrc),
        "gentoo-legacy" => Box::new(gentoo::GentooLegacy),
        "freebsd-rcconf" => Box::new(freebsd::FreebsdRcconf),
        "netplan" => Box::new(netplan::Netplan),
        "networkd" => Box::new(networkd::Networkd),
        "networkmanager" => Box::new(networkmanager::NetworkManager),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_its_back_end() {
        for name in NAMES {
            assert_eq!(by_name(name).map(|b| b.name()), Some(name));
        }
        assert!(by_name("wicked").is_none());
    }
}
