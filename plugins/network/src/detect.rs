//! Which distro family the root holds and which back-end configures its
//! network, decided from files only (never by running a command).
//!
//! Distro family: `[plugins.network] os`, else
//! `nova_agent_support::distro::detect` (os-release, then the legacy release
//! files), else "Couldn't figure out my OS", as the original.
//!
//! Back-end, first match wins (`[plugins.network] backend` overrides):
//! - debian: `netplan` when `/usr/sbin/netplan` exists (Ubuntu 18.04+);
//!   `ifupdown` when `/sbin/ifup` or `/usr/sbin/ifup` exists; `networkd`
//!   when systemd-networkd is installed; `networkmanager` when NetworkManager
//!   is; else `ifupdown`.
//! - redhat: `redhat-ifcfg` when the initscripts are there
//!   (`/etc/sysconfig/network-scripts/ifup-eth` or `/etc/init.d/network`);
//!   `networkmanager` when NetworkManager is (RHEL 9+, Fedora); else
//!   `redhat-ifcfg`.
//! - suse: `suse-ifcfg` (wicked and the legacy scripts read it) unless only
//!   NetworkManager is installed.
//! - arch: `arch-netctl` when `/usr/bin/netctl` exists, `arch-netcfg` when
//!   `/usr/bin/netcfg` does, `networkd` when `/sbin/init` is systemd and
//!   systemd-networkd is installed, else `arch-rcconf` (the original's
//!   legacy mode).
//! - gentoo: `gentoo-netifrc` when `/sbin/rc` or `/sbin/openrc` is a regular
//!   file (OpenRC), else `gentoo-legacy`.
//! - freebsd: `freebsd-rcconf`.

use crate::backend::System;
pub use nova_agent_support::distro::{Os, UNKNOWN_OS};

/// The distro family of the root, from its files.
pub fn os(system: &System) -> Option<Os> {
    nova_agent_support::distro::detect(system.root())
}

/// The back-end for `os` on this root.
pub fn backend(os: Os, system: &System) -> &'static str {
    let any = |paths: &[&str]| paths.iter().any(|p| system.exists(p));
    let networkd = || {
        any(&[
            "/lib/systemd/systemd-networkd",
            "/usr/lib/systemd/systemd-networkd",
        ])
    };
    let network_manager = || any(&["/usr/sbin/NetworkManager", "/usr/bin/NetworkManager"]);
    match os {
        Os::Debian => {
            if any(&["/usr/sbin/netplan"]) {
                "netplan"
            } else if any(&["/sbin/ifup", "/usr/sbin/ifup"]) {
                "ifupdown"
            } else if networkd() {
                "networkd"
            } else if network_manager() {
                "networkmanager"
            } else {
                "ifupdown"
            }
        }
        Os::Redhat => {
            if any(&[
                "/etc/sysconfig/network-scripts/ifup-eth",
                "/etc/init.d/network",
            ]) {
                "redhat-ifcfg"
            } else if network_manager() {
                "networkmanager"
            } else {
                "redhat-ifcfg"
            }
        }
        Os::Suse => {
            let wicked = any(&["/usr/sbin/wicked", "/sbin/wicked", "/etc/init.d/network"]);
            if !wicked && network_manager() {
                "networkmanager"
            } else {
                "suse-ifcfg"
            }
        }
        Os::Arch => {
            if any(&["/usr/bin/netctl"]) {
                "arch-netctl"
            } else if any(&["/usr/bin/netcfg"]) {
                "arch-netcfg"
            } else if init_is_systemd(system) && networkd() {
                "networkd"
            } else {
                "arch-rcconf"
            }
        }
        Os::Gentoo => {
            if system.is_file("/sbin/rc") || system.is_file("/sbin/openrc") {
                "gentoo-netifrc"
            } else {
                "gentoo-legacy"
            }
        }
        Os::Freebsd => "freebsd-rcconf",
    }
}

/// `/sbin/init` is (a link to) systemd.
fn init_is_systemd(system: &System) -> bool {
    system
        .read_link("/sbin/init")
        .is_some_and(|target| target.file_name().is_some_and(|n| n == "systemd"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::root_with;

    fn detect(files: &[(&str, &str)]) -> (Option<Os>, Option<&'static str>) {
        let root = root_with(files);
        let system = System::new(root.path());
        let os = os(&system);
        (os, os.map(|os| backend(os, &system)))
    }

    #[test]
    fn backends_follow_the_tools_present() {
        let debian = ("/etc/os-release", "ID=debian\n");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[debian, ("/usr/sbin/netplan", "")], "netplan"),
            (&[debian, ("/sbin/ifup", "")], "ifupdown"),
            (&[debian, ("/lib/systemd/systemd-networkd", "")], "networkd"),
            (&[debian], "ifupdown"),
            (
                &[
                    ("/etc/os-release", "ID=rhel\nVERSION_ID=9.3\n"),
                    ("/usr/sbin/NetworkManager", ""),
                ],
                "networkmanager",
            ),
            (
                &[
                    ("/etc/redhat-release", ""),
                    ("/etc/init.d/network", ""),
                    ("/usr/sbin/NetworkManager", ""),
                ],
                "redhat-ifcfg",
            ),
            (
                &[("/etc/os-release", "ID=sles\n"), ("/usr/sbin/wicked", "")],
                "suse-ifcfg",
            ),
            (
                &[("/etc/arch-release", ""), ("/usr/bin/netctl", "")],
                "arch-netctl",
            ),
            (
                &[("/etc/arch-release", ""), ("/usr/bin/netcfg", "")],
                "arch-netcfg",
            ),
            (&[("/etc/arch-release", "")], "arch-rcconf"),
            (
                &[("/etc/gentoo-release", ""), ("/sbin/openrc", "")],
                "gentoo-netifrc",
            ),
            (&[("/etc/gentoo-release", "")], "gentoo-legacy"),
            (&[("/bin/freebsd-version", "")], "freebsd-rcconf"),
        ];
        for (files, expected) in cases {
            assert_eq!(detect(files).1, Some(*expected), "{files:?}");
        }
    }
}
