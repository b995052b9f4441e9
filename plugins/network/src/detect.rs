//! Which distro family the root holds and which back-end configures its
//! network, decided from files only (never by running a command).
//!
//! Distro family, first match wins:
//! 1. `[plugins.network] os`;
//! 2. `/etc/os-release`: `ID`, then each word of `ID_LIKE` (debian, ubuntu →
//!    debian; rhel, centos, fedora, ol, rocky, almalinux → redhat; opensuse*,
//!    sles, suse → suse; arch → arch; gentoo → gentoo; freebsd → freebsd);
//! 3. the legacy release files the original agent's detection read:
//!    `/etc/debian_version`, `/etc/redhat-release` (also `fedora-`,
//!    `centos-`, `oracle-release`), `/etc/SuSE-release`, `/etc/arch-release`,
//!    `/etc/gentoo-release`, and `/bin/freebsd-version` for FreeBSD;
//! 4. otherwise "Couldn't figure out my OS", as the original.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Debian,
    Redhat,
    Suse,
    Arch,
    Gentoo,
    Freebsd,
}

impl Os {
    pub const NAMES: [&'static str; 6] = ["debian", "redhat", "suse", "arch", "gentoo", "freebsd"];

    pub fn from_name(name: &str) -> Option<Os> {
        Some(match name {
            "debian" => Os::Debian,
            "redhat" => Os::Redhat,
            "suse" => Os::Suse,
            "arch" => Os::Arch,
            "gentoo" => Os::Gentoo,
            "freebsd" => Os::Freebsd,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Os::NAMES[self as usize]
    }
}

pub const UNKNOWN_OS: &str = "Couldn't figure out my OS";

/// The distro family of the root, from its files.
pub fn os(system: &System) -> Option<Os> {
    if let Some(release) = system.read("/etc/os-release") {
        let id = value(&release, "ID");
        let like = value(&release, "ID_LIKE");
        let words = id
            .iter()
            .chain(like.iter())
            .flat_map(|v| v.split_whitespace());
        for word in words {
            if let Some(os) = family_of(&word.to_ascii_lowercase()) {
                return Some(os);
            }
        }
    }
    let legacy = [
        ("/etc/debian_version", Os::Debian),
        ("/etc/redhat-release", Os::Redhat),
        ("/etc/fedora-release", Os::Redhat),
        ("/etc/centos-release", Os::Redhat),
        ("/etc/oracle-release", Os::Redhat),
        ("/etc/SuSE-release", Os::Suse),
        ("/etc/arch-release", Os::Arch),
        ("/etc/gentoo-release", Os::Gentoo),
        ("/bin/freebsd-version", Os::Freebsd),
    ];
    legacy
        .into_iter()
        .find(|(file, _)| system.exists(file))
        .map(|(_, os)| os)
}

fn family_of(id: &str) -> Option<Os> {
    Some(match id {
        "debian" | "ubuntu" => Os::Debian,
        "rhel" | "centos" | "fedora" | "ol" | "oracle" | "rocky" | "almalinux" | "redhat" => {
            Os::Redhat
        }
        "sles" | "suse" | "sled" => Os::Suse,
        id if id.starts_with("opensuse") => Os::Suse,
        "arch" | "archlinux" => Os::Arch,
        "gentoo" => Os::Gentoo,
        "freebsd" => Os::Freebsd,
        _ => return None,
    })
}

/// `KEY=value` from os-release, unquoted.
fn value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        Some(rest.trim().trim_matches(['"', '\'']).to_owned())
    })
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
    fn os_release_decides_first() {
        let cases: &[(&str, Os)] = &[
            ("ID=ubuntu\nVERSION_ID=\"22.04\"\n", Os::Debian),
            ("ID=debian\n", Os::Debian),
            ("ID=\"rhel\"\nID_LIKE=\"fedora\"\n", Os::Redhat),
            ("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", Os::Redhat),
            ("ID=fedora\n", Os::Redhat),
            (
                "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n",
                Os::Suse,
            ),
            ("ID=\"sles\"\n", Os::Suse),
            ("ID=arch\n", Os::Arch),
            ("ID=gentoo\n", Os::Gentoo),
            ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", Os::Debian),
        ];
        for (release, expected) in cases {
            let (os, _) = detect(&[("/etc/os-release", release), ("/etc/arch-release", "")]);
            assert_eq!(os, Some(*expected), "{release}");
        }
    }

    #[test]
    fn legacy_files_and_unknown() {
        assert_eq!(
            detect(&[("/etc/redhat-release", "CentOS release 6")]).0,
            Some(Os::Redhat)
        );
        assert_eq!(detect(&[("/etc/SuSE-release", "")]).0, Some(Os::Suse));
        assert_eq!(detect(&[("/bin/freebsd-version", "")]).0, Some(Os::Freebsd));
        assert_eq!(detect(&[("/etc/os-release", "ID=plan9\n")]).0, None);
        assert_eq!(detect(&[]).0, None);
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
