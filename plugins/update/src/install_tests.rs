//! The install into a temporary root: files replaced with their modes, the
//! old install byte-identical after a failure before the renames, targets
//! that are links refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::{Paths, Settings};
use crate::install::{check, install, install_with, plan, InstallError, Item};
use crate::testutil::{
    good_package, root_with_old_install, snapshot, KEPT_PLUGIN, NEW_BINARY, NEW_PLUGIN,
    OTHER_PLUGIN,
};
use crate::unpack::unpack;

/// The good package unpacked into `staging`, planned for `root`.
fn planned(root: &Path, staging: &Path) -> Vec<Item> {
    let archive = staging.join("package.tar.gz");
    std::fs::write(&archive, good_package()).unwrap();
    let unpacked = staging.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let package = unpack(&archive, &unpacked, 1 << 20).unwrap();
    let paths = Paths::new(root, &Settings::default()).unwrap();
    plan(&package, &paths)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn plugins_come_first_and_the_binary_last() {
    let root = root_with_old_install();
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());
    let order: Vec<(&str, &str, u32)> = items
        .iter()
        .map(|i| (i.member.as_str(), i.target.guest.as_str(), i.mode))
        .collect();
    assert_eq!(
        order,
        [
            ("plugins/x.so", "/usr/lib/nova-agent/plugins/x.so", 0o644),
            ("plugins/z.so", "/usr/lib/nova-agent/plugins/z.so", 0o644),
            ("bin/nova-agent", "/usr/sbin/nova-agent", 0o755),
        ]
    );
}

#[test]
fn install_replaces_the_files_with_new_modes_and_leaves_other_plugins() {
    let root = root_with_old_install();
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());
    let binary = root.path().join("usr/sbin/nova-agent");
    let plugins = root.path().join("usr/lib/nova-agent/plugins");
    let old_inode = std::fs::metadata(&binary).unwrap().ino();

    install(&items).unwrap();

    assert_eq!(std::fs::read(&binary).unwrap(), NEW_BINARY);
    assert_eq!(mode(&binary), 0o755);
    // Replaced by a rename, not written in place: the running agent's inode
    // is untouched.
    assert_ne!(std::fs::metadata(&binary).unwrap().ino(), old_inode);
    assert_eq!(std::fs::read(plugins.join("x.so")).unwrap(), NEW_PLUGIN);
    assert_eq!(mode(&plugins.join("x.so")), 0o644);
    assert_eq!(std::fs::read(plugins.join("z.so")).unwrap(), OTHER_PLUGIN);
    assert_eq!(mode(&plugins.join("z.so")), 0o644);
    assert_eq!(std::fs::read(plugins.join("y.so")).unwrap(), KEPT_PLUGIN);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(std::fs::metadata(&binary).unwrap().uid(), 0);
        assert_eq!(std::fs::metadata(plugins.join("z.so")).unwrap().gid(), 0);
    }
    // No temporary is left behind.
    let names: Vec<String> = snapshot(root.path()).into_iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        [
            "usr/lib/nova-agent/plugins/x.so",
            "usr/lib/nova-agent/plugins/y.so",
            "usr/lib/nova-agent/plugins/z.so",
            "usr/sbin/nova-agent",
        ]
    );
}

#[test]
fn a_failure_before_the_renames_leaves_the_install_byte_identical() {
    let root = root_with_old_install();
    let before = snapshot(root.path());
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());

    let result = install_with(&items, || {
        // Every temporary is written by now, beside its target.
        let hidden = snapshot(root.path())
            .into_iter()
            .filter(|f| f.0.contains("/.") && f.0.contains(".nova-agent-update."))
            .count();
        assert_eq!(hidden, 3);
        Err(std::io::Error::other("injected failure"))
    });

    assert_eq!(
        result,
        Err(InstallError::Untouched("injected failure".to_owned()))
    );
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn a_failure_while_writing_the_temporaries_leaves_the_install_byte_identical() {
    let root = root_with_old_install();
    let before = snapshot(root.path());
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());
    // The binary comes last: both plugins' temporaries are written first.
    std::fs::remove_file(&items[2].source).unwrap();

    let message = install(&items).unwrap_err().message();

    assert!(
        message.starts_with(
            "installing the update failed, nothing was changed: \
             writing the new /usr/sbin/nova-agent: "
        ),
        "{message}"
    );
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn a_target_that_is_a_symlink_or_a_directory_is_refused_before_anything_is_written() {
    let root = root_with_old_install();
    let binary = root.path().join("usr/sbin/nova-agent");
    std::fs::remove_file(&binary).unwrap();
    std::os::unix::fs::symlink("/usr/share/nova-agent/1.0/sbin/nova-agent", &binary).unwrap();
    let before = snapshot(root.path());
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());

    assert_eq!(
        check(&items),
        Err("refusing to replace /usr/sbin/nova-agent: it is a symbolic link".to_owned())
    );
    assert!(install(&items).is_err());
    assert_eq!(snapshot(root.path()), before);

    std::fs::remove_file(&binary).unwrap();
    std::fs::create_dir(&binary).unwrap();
    assert_eq!(
        check(&items),
        Err("refusing to replace /usr/sbin/nova-agent: it is not a regular file".to_owned())
    );
}

#[test]
fn a_missing_plugin_directory_is_refused() {
    let root = root_with_old_install();
    std::fs::remove_dir_all(root.path().join("usr/lib")).unwrap();
    let staging = tempfile::tempdir().unwrap();
    let items = planned(root.path(), staging.path());
    assert_eq!(
        check(&items),
        Err("cannot install /usr/lib/nova-agent/plugins/x.so: \
             the directory /usr/lib/nova-agent/plugins does not exist"
            .to_owned())
    );
}
