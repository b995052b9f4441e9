use serde_json::json;

use super::*;
use crate::backend::FileChange;
use crate::testutil::{network_from, realistic, root_with, rstrip_lines, vector, Recorder};

fn render_in(root: &tempfile::TempDir, network: &Network) -> Plan {
    Ifupdown.render(network, &System::new(root.path())).unwrap()
}

fn text<'a>(plan: &'a Plan, path: &str) -> &'a str {
    std::str::from_utf8(
        plan.content(path)
            .unwrap_or_else(|| panic!("{path} not planned")),
    )
    .unwrap()
}

const OLD_INTERFACES: &str = "auto lo\niface lo inet loopback\n\nauto eth0 eth3\n\
iface eth0 inet dhcp\nallow-hotplug eth2\niface eth2 inet dhcp\n";

const PLANNED: &str = "write /etc/network/interfaces /etc/hostname /etc/hosts";

fn apply_in(root: &tempfile::TempDir, actions: &mut dyn Actions) -> Result<(), String> {
    let network = realistic();
    let system = System::new(root.path());
    let plan = Ifupdown.render(&network, &system).unwrap();
    Ifupdown.apply(&network, &system, &plan, actions)
}

fn ifups() -> Vec<String> {
    ["eth0", "eth0:1", "eth1"]
        .iter()
        .map(|i| format!("run /sbin/ifup {i}"))
        .collect()
}

fn expected_log(restart: &[&str]) -> Vec<String> {
    let mut log = vec![
        "sethostname web-1".to_owned(),
        "run /sbin/ifdown eth0".to_owned(),
        "run /sbin/ifdown eth2".to_owned(),
        "run /sbin/ifdown eth3".to_owned(),
        PLANNED.to_owned(),
    ];
    log.extend(restart.iter().map(|line| line.to_string()));
    log.extend(ifups());
    log
}

#[test]
fn name_is_ifupdown() {
    assert_eq!(Ifupdown.name(), "ifupdown");
}

#[test]
fn seed_vectors_interfaces() {
    for id in ["interfaces-debian-ipv4", "interfaces-debian-ipv6"] {
        let v = vector(id);
        assert_eq!(v["match"], "rstrip_lines");
        let root = root_with(&[]);
        let plan = render_in(&root, &network_from(&v["input"]));
        let file = text(&plan, INTERFACES_FILE);
        assert_eq!(rstrip_lines(file), v["expected"]["interfaces"], "{id}");
        assert_eq!(file, v["full_output"]["interfaces"], "{id}");
    }
}

#[test]
fn seed_vector_hostname() {
    let v = vector("hostname-debian");
    let plan = render_in(&root_with(&[]), &network_from(&v["input"]));
    assert_eq!(text(&plan, "/etc/hostname"), v["expected"]["/etc/hostname"]);
}

#[test]
fn seed_vectors_etc_hosts() {
    for id in [
        "etchosts-empty",
        "etchosts-add",
        "etchosts-update-one-hostname",
        "etchosts-update-two-hostnames",
        "etchosts-update-two-entries",
        "etchosts-update-comment",
    ] {
        let v = vector(id);
        assert_eq!(v["match"], "exact");
        let root = root_with(&[("/etc/hosts", v["input"]["etc_hosts"].as_str().unwrap())]);
        let plan = render_in(&root, &network_from(&v["input"]));
        assert_eq!(
            text(&plan, "/etc/hosts"),
            v["expected"]["/etc/hosts"],
            "{id}"
        );
    }
}

#[test]
fn realistic_payload_whole_files() {
    let root = root_with(&[("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\told\n")]);
    let plan = render_in(&root, &realistic());
    let interfaces = "\
# Used by ifup(8) and ifdown(8). See the interfaces(5) manpage or
# /usr/share/doc/ifupdown/examples for more information.
# The loopback network interface
auto lo
iface lo inet loopback

# Label public
auto eth0
iface eth0 inet static
    address 198.51.100.10
    netmask 255.255.255.0
    gateway 198.51.100.1
iface eth0 inet6 static
    address 2001:db8:0:1::10
    netmask 64
    gateway fe80::def
    dns-nameservers 69.20.0.164 69.20.0.196

# Label public
auto eth0:1
iface eth0:1 inet static
    address 198.51.100.11
    netmask 255.255.255.0
iface eth0:1 inet6 static
    address 2001:db8:0:1::11
    netmask 64

# Label private
auto eth1
iface eth1 inet static
    address 10.208.227.239
    netmask 255.255.224.0
    post-up route add -net 10.208.0.0 netmask 255.240.0.0 gw 10.208.224.1 || true
    pre-down route del -net 10.208.0.0 netmask 255.240.0.0 gw 10.208.224.1 || true
    post-up route add -net 10.176.0.0 netmask 255.240.0.0 gw 10.208.224.1 || true
    pre-down route del -net 10.176.0.0 netmask 255.240.0.0 gw 10.208.224.1 || true
";
    let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\told\n198.51.100.10\tweb-1\n\
2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n";
    let file = |path: &str, content: &str| FileChange {
        path: path.to_owned(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    };
    assert_eq!(
        plan,
        Plan {
            files: vec![
                file(INTERFACES_FILE, interfaces),
                file("/etc/hostname", "web-1\n"),
                file("/etc/hosts", hosts),
            ],
            remove: vec![],
            resolv_conf: true,
        }
    );
}

#[test]
fn default_route_skipped_gateways_and_dns_once_no_label() {
    let network = network_from(&json!({
        "hostname": "h",
        "interfaces": {
            "eth0": {
                "ip4s": [], "ip6s": [{"address": "2001:db8::1", "prefixlen": 64},
                                     {"address": "2001:db8::2", "prefixlen": 64}],
                "gateway4": "192.0.2.1", "gateway6": "2001:db8::ff", "dns": ["192.0.2.53"],
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                           {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.9"}]
            },
            "eth1": {
                "ip4s": [], "ip6s": [],
                "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "10.0.0.1"}]
            }
        }
    }));
    let file = interfaces_file(&network);
    let expected = format!(
        "{HEADER}
auto eth0
iface eth0 inet6 static
    address 2001:db8::1
    netmask 64
    gateway 2001:db8::ff
    dns-nameservers 192.0.2.53

auto eth0:1
iface eth0:1 inet6 static
    address 2001:db8::2
    netmask 64
    post-up route add -net 0.0.0.0 netmask 0.0.0.0 gw 192.0.2.9 || true
    pre-down route del -net 0.0.0.0 netmask 0.0.0.0 gw 192.0.2.9 || true
"
    );
    assert_eq!(file, expected);
}

#[test]
fn configured_interfaces_of_a_file() {
    let names = configured_interfaces(
        "auto lo eth0\n  iface eth1 inet static\nallow-hotplug eth2 -a\n# auto eth9\nmapping eth4\nauto\n",
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["eth0", "eth1", "eth2"]);
}

#[test]
fn apply_sequence_normal_run() {
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", "#!/bin/sh\n"),
    ]);
    let mut recorder = Recorder::default();
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));
    assert_eq!(
        recorder.log,
        expected_log(&["run /etc/init.d/networking restart"])
    );
}

#[test]
fn apply_without_old_file_brings_nothing_down() {
    let root = root_with(&[("/etc/init.d/networking", "#!/bin/sh\n")]);
    let mut recorder = Recorder::default();
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));
    let mut expected = vec![
        "sethostname web-1".to_owned(),
        PLANNED.to_owned(),
        "run /etc/init.d/networking restart".to_owned(),
    ];
    expected.extend(ifups());
    assert_eq!(recorder.log, expected);
}

#[test]
fn apply_falls_back_to_service() {
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", "#!/bin/sh\n"),
    ]);
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));
    assert_eq!(
        recorder.log,
        expected_log(&[
            "run /etc/init.d/networking restart",
            "run /usr/sbin/service networking restart"
        ])
    );
}

#[test]
fn apply_failing_restart() {
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", "#!/bin/sh\n"),
    ]);
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    recorder.exit_codes.insert("/usr/sbin/service".into(), 3);
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("Couldn't restart network: 3".to_owned())
    );
    assert_eq!(
        recorder.log,
        expected_log(&[
            "run /etc/init.d/networking restart",
            "run /usr/sbin/service networking restart"
        ])
    );
}

#[test]
fn apply_under_upstart_forgives_the_restart() {
    let script = "#!/bin/sh\nif init_is_upstart; then exit 1; fi\n";
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", script),
        ("/sbin/initctl", ""),
    ]);
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    recorder.exit_codes.insert("/usr/sbin/service".into(), 1);
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));

    // The script alone (no initctl) is not upstart.
    let root = root_with(&[("/etc/init.d/networking", script)]);
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    recorder.exit_codes.insert("/usr/sbin/service".into(), 1);
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("Couldn't restart network: 1".to_owned())
    );
}

#[test]
fn apply_on_systemd_only_debian() {
    let root = root_with(&[(INTERFACES_FILE, OLD_INTERFACES), ("/bin/systemctl", "")]);
    let mut recorder = Recorder::default();
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));
    assert_eq!(
        recorder.log,
        expected_log(&["run /bin/systemctl restart networking"])
    );

    let mut recorder = Recorder::default();
    recorder.exit_codes.insert("/bin/systemctl".into(), 5);
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("Couldn't restart network: 5".to_owned())
    );
}

#[test]
fn apply_missing_restart_program() {
    let root = root_with(&[(INTERFACES_FILE, OLD_INTERFACES)]);
    let mut recorder = Recorder::default();
    recorder.missing.push("/etc/init.d/networking".into());
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("cannot run /etc/init.d/networking: No such file or directory".to_owned())
    );
    assert_eq!(
        recorder.log.last().unwrap(),
        "run /etc/init.d/networking restart"
    );

    let root = root_with(&[("/etc/init.d/networking", "")]);
    let mut recorder = Recorder::default();
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    recorder.missing.push("/usr/sbin/service".into());
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("cannot run /usr/sbin/service: No such file or directory".to_owned())
    );
}

#[test]
fn apply_ignores_ifdown_and_ifup_failures() {
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", ""),
    ]);
    let mut recorder = Recorder::default();
    recorder.exit_codes.insert("/sbin/ifdown".into(), 1);
    recorder.missing.push("/sbin/ifup".into());
    assert_eq!(apply_in(&root, &mut recorder), Ok(()));
    assert_eq!(
        recorder.log,
        expected_log(&["run /etc/init.d/networking restart"])
    );
}

#[test]
fn apply_failed_write_still_restarts_then_reports_it() {
    let root = root_with(&[
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", ""),
    ]);
    let mut recorder = Recorder {
        write_error: Some("Permission denied".to_owned()),
        ..Recorder::default()
    };
    recorder
        .exit_codes
        .insert("/etc/init.d/networking".into(), 1);
    recorder.exit_codes.insert("/usr/sbin/service".into(), 1);
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("Permission denied".to_owned())
    );
    // Nothing was written, so the old file's interfaces are brought back up.
    let log = &recorder.log;
    assert_eq!(
        log[log.len() - 3..],
        [
            "run /sbin/ifup eth0",
            "run /sbin/ifup eth2",
            "run /sbin/ifup eth3"
        ]
    );
    assert!(log.contains(&"run /usr/sbin/service networking restart".to_owned()));
}

#[test]
fn apply_failed_sethostname_stops_first() {
    let root = root_with(&[(INTERFACES_FILE, OLD_INTERFACES)]);
    let mut recorder = Recorder {
        hostname_error: Some("Operation not permitted".to_owned()),
        ..Recorder::default()
    };
    assert_eq!(
        apply_in(&root, &mut recorder),
        Err("Couldn't set hostname: Operation not permitted".to_owned())
    );
    assert_eq!(recorder.log, ["sethostname web-1"]);
}
