//! The guest's current hostname, read where each distro keeps it (the
//! original agent's table), for when the host sends none.

use crate::backend::System;
use crate::detect::Os;
use crate::model::Hostname;

/// The configured hostname, else the distro's name (the original's
/// fallback).
pub fn hostname(os: Os, system: &System) -> Hostname {
    configured(os, system)
        .and_then(|name| Hostname::new(&name).ok())
        .unwrap_or_else(|| Hostname::new(os.name()).expect("distro names are hostnames"))
}

fn configured(os: Os, system: &System) -> Option<String> {
    let assignment = |path: &str, key: &str| {
        let text = system.read(path)?;
        text.lines().find_map(|line| {
            let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
            // Unquoted as a shell would (the original kept FreeBSD's quotes,
            // B-NET-6).
            Some(value.trim().trim_matches(['"', '\'']).to_owned())
        })
    };
    let whole_file = |path: &str| system.read(path).map(|t| t.trim().to_owned());
    let found = match os {
        Os::Redhat => assignment("/etc/sysconfig/network", "HOSTNAME"),
        Os::Arch => assignment("/etc/rc.conf", "HOSTNAME"),
        Os::Gentoo => assignment("/etc/conf.d/hostname", "HOSTNAME")
            .or_else(|| assignment("/etc/conf.d/hostname", "hostname")),
        Os::Suse => whole_file("/etc/HOSTNAME"),
        Os::Freebsd => assignment("/etc/rc.conf", "hostname"),
        Os::Debian => None,
    };
    // systemd distros keep it in /etc/hostname whatever their family.
    found
        .filter(|name| !name.is_empty())
        .or_else(|| whole_file("/etc/hostname").filter(|name| !name.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::root_with;

    fn current(os: Os, files: &[(&str, &str)]) -> String {
        let root = root_with(files);
        hostname(os, &System::new(root.path())).as_str().to_owned()
    }

    #[test]
    fn each_distro_s_place() {
        assert_eq!(
            current(
                Os::Redhat,
                &[("/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=rh1\n")]
            ),
            "rh1"
        );
        assert_eq!(
            current(Os::Arch, &[("/etc/rc.conf", "HOSTNAME=\"arch1\"\n")]),
            "arch1"
        );
        assert_eq!(
            current(Os::Gentoo, &[("/etc/conf.d/hostname", "HOSTNAME=\"g1\"")]),
            "g1"
        );
        assert_eq!(current(Os::Suse, &[("/etc/HOSTNAME", "suse1\n")]), "suse1");
        assert_eq!(
            current(
                Os::Freebsd,
                &[("/etc/rc.conf", "sshd_enable=\"YES\"\nhostname=\"bsd1\"\n")]
            ),
            "bsd1"
        );
        assert_eq!(current(Os::Debian, &[("/etc/hostname", "deb1\n")]), "deb1");
        assert_eq!(current(Os::Redhat, &[("/etc/hostname", "rh9\n")]), "rh9");
    }

    #[test]
    fn the_distro_name_when_nothing_usable() {
        assert_eq!(current(Os::Debian, &[]), "debian");
        assert_eq!(
            current(Os::Suse, &[("/etc/HOSTNAME", "bad name!\n")]),
            "suse"
        );
        assert_eq!(
            current(Os::Freebsd, &[("/etc/rc.conf", "hostname=\"\"\n")]),
            "freebsd"
        );
    }
}
