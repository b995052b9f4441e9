//! The embedded default's sandbox (`<dir>/demo/`): created at start, and
//! seeded so that the examples of `--help` and the README answer "0" there:
//! the root gets an os-release and one Ethernet NIC under `sys/class/net`,
//! the unix-socket metadata directory a hostname and that NIC's network.
//!
//! Only for the embedded default, and only under its demo directory: every
//! path is checked to be there before anything is written, and a file that
//! exists (the user's own edit, or a link) is left as it is.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;

/// The demo NIC's MAC, in the OpenStack (fa:16:3e) range.
pub(crate) const MAC: &str = "fa:16:3e:00:00:01";

/// The seeded files, relative to the root.
const ROOT_FILES: [(&str, &str); 4] = [
    (
        "etc/os-release",
        "PRETTY_NAME=\"nova-agent demo root (Debian)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
    ),
    ("sys/class/net/eth0/type", "1\n"),
    ("sys/class/net/eth0/address", "fa:16:3e:00:00:01\n"),
    ("sys/class/net/eth0/flags", "0x1003\n"),
];

/// The demo NIC's network, as the host writes it under
/// `vm-data/networking/<mac without colons>` (documentation addresses).
const NETWORK: &str = r#"{"label": "public", "mac": "fa:16:3e:00:00:01", "ips": [{"ip": "192.0.2.10", "netmask": "255.255.255.0", "enabled": "1"}], "gateway": "192.0.2.1", "dns": ["192.0.2.53"]}"#;

/// Creates the root, state and run directories and seeds the root and the
/// metadata directory.
pub(crate) fn prepare(config: &Config) -> Result<()> {
    let Some(demo) = config.root.parent().map(Path::to_path_buf) else {
        bail!(
            "the embedded default's root {} has no parent",
            config.root.display()
        );
    };
    for dir in [&config.root, &config.state_dir, &config.run_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut files: Vec<(PathBuf, &str)> = ROOT_FILES
        .iter()
        .map(|(path, text)| (config.root.join(path), *text))
        .collect();
    if let Some(metadata) = metadata_dir(config) {
        let key = MAC.replace(':', "");
        files.push((metadata.join("vm-data/hostname"), "nova-agent-demo\n"));
        files.push((metadata.join(format!("vm-data/networking/{key}")), NETWORK));
    }
    for (path, text) in files {
        seed(&demo, &path, text)?;
    }
    Ok(())
}

/// `[plugins.unix-socket] metadata_dir` of the config.
fn metadata_dir(config: &Config) -> Option<PathBuf> {
    let table: serde_json::Value = serde_json::from_str(config.plugin_json("unix-socket")).ok()?;
    table["metadata_dir"].as_str().map(PathBuf::from)
}

/// Writes `text` to `path`, which must lie under `demo`, unless something is
/// there already.
fn seed(demo: &Path, path: &Path, text: &str) -> Result<()> {
    let under_demo = path.starts_with(demo)
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !under_demo {
        bail!(
            "not seeding {}: it is outside the demo directory {}",
            path.display(),
            demo.display()
        );
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // create_new: never follows a link, never replaces the user's file.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => file
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_seeded_under_its_directory_and_user_edits_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::embedded_default_in(dir.path()).unwrap();
        let root = dir.path().join("demo/root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=fedora\n").unwrap();
        prepare(&config).unwrap();
        prepare(&config).unwrap();
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        assert_eq!(read("demo/root/etc/os-release"), "ID=fedora\n");
        assert_eq!(
            read("demo/root/sys/class/net/eth0/address"),
            format!("{MAC}\n")
        );
        assert_eq!(read("demo/metadata/vm-data/hostname"), "nova-agent-demo\n");
        let network: serde_json::Value =
            serde_json::from_str(&read("demo/metadata/vm-data/networking/fa163e000001")).unwrap();
        assert_eq!(network["mac"], MAC);
        assert!(dir.path().join("demo/state").is_dir());
        assert!(dir.path().join("demo/run").is_dir());
    }

    #[test]
    fn nothing_is_written_outside_the_demo_directory() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo");
        let error = seed(&demo, &dir.path().join("elsewhere"), "x").unwrap_err();
        assert!(
            error.to_string().contains("outside the demo directory"),
            "{error}"
        );
        let climbing = demo.join("root/../../elsewhere");
        assert!(seed(&demo, &climbing, "x").is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
