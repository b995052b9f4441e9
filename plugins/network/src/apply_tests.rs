use std::os::unix::fs::{symlink, PermissionsExt};

use nova_agent_support::runner::Runner;

use super::*;
use crate::testutil::{realistic, root_with, Recorder};

fn plan(path: &str, content: &str) -> Plan {
    let mut plan = Plan::default();
    plan.write(path, content);
    plan
}

fn backups(dir: &Path, name: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let file = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            file.starts_with(&format!("{name}.")) && file.ends_with(".bak~")
        })
        .count()
}

#[test]
fn files_are_written_unchanged_ones_skipped_and_backups_bounded() {
    let root = root_with(&[("/etc/hosts", "old\n")]);
    let runner = Runner::new(false);
    let mut actions = SystemActions::new(root.path(), &runner);
    let etc = root.path().join("etc");

    actions.write(&plan("/etc/hosts", "old\n")).unwrap();
    assert_eq!(backups(&etc, "hosts"), 0, "unchanged: no backup");

    actions
        .write(&plan("/etc/network/interfaces", "new\n"))
        .unwrap();
    let mode = std::fs::metadata(etc.join("network/interfaces"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // Backups are named by the second: make older ones by hand.
    for stamp in [100, 200, 300, 400] {
        std::fs::write(etc.join(format!("hosts.{stamp}.bak~")), "x").unwrap();
    }
    actions.write(&plan("/etc/hosts", "changed\n")).unwrap();
    assert_eq!(
        std::fs::read_to_string(etc.join("hosts")).unwrap(),
        "changed\n"
    );
    assert_eq!(backups(&etc, "hosts"), BACKUPS_KEPT);
    assert!(!etc.join("hosts.100.bak~").exists() && !etc.join("hosts.200.bak~").exists());
}

#[test]
fn removals_are_moved_aside_and_missing_ones_ignored() {
    let root = root_with(&[("/etc/sysconfig/network-scripts/ifcfg-eth9", "DEVICE=eth9\n")]);
    let runner = Runner::new(false);
    let mut actions = SystemActions::new(root.path(), &runner);
    let plan = Plan {
        remove: vec![
            "/etc/sysconfig/network-scripts/ifcfg-eth9".into(),
            "/etc/sysconfig/network-scripts/ifcfg-eth8".into(),
        ],
        ..Plan::default()
    };
    actions.write(&plan).unwrap();
    let dir = root.path().join("etc/sysconfig/network-scripts");
    assert!(!dir.join("ifcfg-eth9").exists());
    assert_eq!(backups(&dir, "ifcfg-eth9"), 1);
}

#[test]
fn symlinks_are_made_under_the_root_even_with_apply_false() {
    let root = root_with(&[("/etc/init.d/net.lo", "#!/sbin/openrc-run\n")]);
    let runner = Runner::new(false);
    let mut actions = SystemActions::new(root.path(), &runner);
    actions.symlink("net.lo", "/etc/init.d/net.eth0").unwrap();
    let link = root.path().join("etc/init.d/net.eth0");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("net.lo"));
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        "#!/sbin/openrc-run\n"
    );

    actions.symlink("net.lo", "/etc/new/net.eth0").unwrap();
    let in_new_dir = root.path().join("etc/new/net.eth0");
    assert_eq!(std::fs::read_link(in_new_dir).unwrap(), Path::new("net.lo"));

    // A file where the link's directory should be.
    let error = actions
        .symlink("net.lo", "/etc/init.d/net.lo/net.eth0")
        .unwrap_err();
    assert!(error.starts_with("File exists"), "{error}");
}

#[test]
fn symlinks_leave_whatever_exists_alone() {
    let root = root_with(&[("/etc/init.d/net.eth0", "custom\n")]);
    let init_d = root.path().join("etc/init.d");
    symlink("elsewhere", init_d.join("net.eth1")).unwrap();
    let runner = Runner::new(true);
    let mut actions = SystemActions::new(root.path(), &runner);
    actions.symlink("net.lo", "/etc/init.d/net.eth0").unwrap();
    actions.symlink("net.lo", "/etc/init.d/net.eth1").unwrap();
    assert_eq!(
        std::fs::read_to_string(init_d.join("net.eth0")).unwrap(),
        "custom\n"
    );
    assert_eq!(
        std::fs::read_link(init_d.join("net.eth1")).unwrap(),
        Path::new("elsewhere")
    );
}

#[test]
fn apply_false_runs_nothing_and_sets_no_hostname() {
    let root = root_with(&[]);
    let runner = Runner::new(false);
    let mut actions = SystemActions::new(root.path(), &runner);
    let marker = root.path().join("ran");
    let code = actions
        .run("/bin/touch", &[marker.to_str().unwrap()])
        .unwrap();
    assert_eq!(code, 0);
    assert!(!marker.exists());
    actions
        .set_hostname(&Hostname::new("not-this-machine").unwrap())
        .unwrap();
}

#[test]
fn dns_goes_to_a_plain_or_absent_resolv_conf() {
    for existing in [Some("nameserver 1.1.1.1\n"), None] {
        let files: Vec<(&str, &str)> = existing
            .map(|e| ("/etc/resolv.conf", e))
            .into_iter()
            .collect();
        let root = root_with(&files);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        let runner = Runner::new(false);
        let system = System::new(root.path());
        apply_dns(
            &realistic(),
            &system,
            &mut SystemActions::new(root.path(), &runner),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/resolv.conf")).unwrap(),
            "# Automatically generated, do not edit\nnameserver 69.20.0.164\nnameserver 69.20.0.196\n"
        );
    }
}

#[test]
fn dns_goes_through_systemd_resolved_or_resolvconf_and_a_foreign_link_is_left_alone() {
    let cases = [
        (
            "../run/systemd/resolve/stub-resolv.conf",
            vec!["run /usr/bin/resolvectl dns eth0 69.20.0.164 69.20.0.196"],
        ),
        (
            "/run/resolvconf/resolv.conf",
            vec![
                "write /etc/resolvconf/resolv.conf.d/base",
                "run /sbin/resolvconf -u",
            ],
        ),
        ("/somewhere/else", vec![]),
    ];
    for (target, expected) in cases {
        let root = root_with(&[]);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        symlink(target, root.path().join("etc/resolv.conf")).unwrap();
        let mut recorder = Recorder::default();
        apply_dns(&realistic(), &System::new(root.path()), &mut recorder).unwrap();
        assert_eq!(recorder.log, expected, "{target}");
        // The link itself is never renamed, replaced or deleted.
        assert_eq!(
            std::fs::read_link(root.path().join("etc/resolv.conf")).unwrap(),
            Path::new(target)
        );
    }
}

#[test]
fn no_nameservers_leave_resolv_conf_alone() {
    let root = root_with(&[("/etc/resolv.conf", "nameserver 9.9.9.9\n")]);
    let mut network = realistic();
    for interface in &mut network.interfaces {
        interface.dns.clear();
    }
    let mut recorder = Recorder::default();
    apply_dns(&network, &System::new(root.path()), &mut recorder).unwrap();
    assert!(recorder.log.is_empty());
}
