//! Which distro family a root holds, decided from files only (never by
//! running a command), first match wins:
//! 1. `/etc/os-release`: `ID`, then each word of `ID_LIKE` (debian, ubuntu →
//!    debian; rhel, centos, fedora, ol, rocky, almalinux → redhat; opensuse*,
//!    sles, suse → suse; arch → arch; gentoo → gentoo; freebsd → freebsd);
//! 2. the legacy release files the original agent's detection read:
//!    `/etc/debian_version`, `/etc/redhat-release` (also `fedora-`,
//!    `centos-`, `oracle-release`), `/etc/SuSE-release`, `/etc/arch-release`,
//!    `/etc/gentoo-release`, and `/bin/freebsd-version` for FreeBSD.
//!
//! Used by `resetnetwork` (which back-end) and `kmsactivate` (Red Hat only).

use std::path::Path;

use crate::files::under_root;

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

/// The distro family of the root, from its files; `None` when unknown.
pub fn detect(root: &Path) -> Option<Os> {
    let read = |path: &str| std::fs::read_to_string(under_root(root, path).ok()?).ok();
    let exists =
        |path: &str| under_root(root, path).is_ok_and(|p| std::fs::symlink_metadata(p).is_ok());
    if let Some(release) = read("/etc/os-release") {
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
        .find(|(file, _)| exists(file))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_in(files: &[(&str, &str)]) -> Option<Os> {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let real = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, content).unwrap();
        }
        detect(dir.path())
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
            let os = detect_in(&[("/etc/os-release", release), ("/etc/arch-release", "")]);
            assert_eq!(os, Some(*expected), "{release}");
        }
    }

    #[test]
    fn legacy_files_and_unknown() {
        assert_eq!(
            detect_in(&[("/etc/redhat-release", "CentOS release 6")]),
            Some(Os::Redhat)
        );
        assert_eq!(detect_in(&[("/etc/SuSE-release", "")]), Some(Os::Suse));
        assert_eq!(
            detect_in(&[("/bin/freebsd-version", "")]),
            Some(Os::Freebsd)
        );
        assert_eq!(detect_in(&[("/etc/os-release", "ID=plan9\n")]), None);
        assert_eq!(detect_in(&[]), None);
    }
}
