use serde_json::json;

use super::*;
use crate::testutil::{
    apply_expecting, apply_failing, apply_on, apply_without, assert_refused_hostname_stops,
    assert_whole_plan, check_etc_hosts_vectors, check_hostname_vector, check_interfaces_vector,
    network_from, realistic, root_with, Recorder,
};

fn render_in(root: &tempfile::TempDir, network: &Network) -> Plan {
    crate::testutil::render_in(&Ifupdown, root, network).unwrap()
}

const OLD_INTERFACES: &str = "auto lo\niface lo inet loopback\n\nauto eth0 eth3\n\
iface eth0 inet dhcp\nallow-hotplug eth2\niface eth2 inet dhcp\n";

const PLANNED: &str = "write /etc/network/interfaces /etc/hostname /etc/hosts";

/// Applies the realistic payload on a root holding `files`.
fn apply_in<'a>(
    files: &'a [(&'a str, &'a str)],
) -> impl FnOnce(&mut dyn Actions) -> Result<(), String> + 'a {
    |actions| apply_on(&Ifupdown, &realistic(), files, actions)
}

/// An old interfaces file and the networking init script `script`.
fn old_file_and_script(script: &str) -> [(&str, &str); 2] {
    [
        (INTERFACES_FILE, OLD_INTERFACES),
        ("/etc/init.d/networking", script),
    ]
}

/// The restart through the init script, then through `service`.
const FALLEN_BACK: [&str; 2] = [
    "run /etc/init.d/networking restart",
    "run /usr/sbin/service networking restart",
];

/// The init script and `service` both fail with `service_code`.
fn failing_restart(service_code: i32) -> Recorder {
    Recorder::exiting(&[
        ("/etc/init.d/networking", 1),
        ("/usr/sbin/service", service_code),
    ])
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
        check_interfaces_vector(&Ifupdown, id, INTERFACES_FILE, "interfaces");
    }
}

#[test]
fn seed_vector_hostname() {
    check_hostname_vector(&Ifupdown, "hostname-debian", "/etc/hostname");
}

#[test]
fn seed_vectors_etc_hosts() {
    check_etc_hosts_vectors(&Ifupdown);
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
    assert_whole_plan(
        &plan,
        &[
            (INTERFACES_FILE, interfaces, 0o644),
            ("/etc/hostname", "web-1\n", 0o644),
            ("/etc/hosts", hosts, 0o644),
        ],
        &[],
        true,
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
    let files = old_file_and_script("#!/bin/sh\n");
    let log = apply_expecting(Recorder::default(), Ok(()), apply_in(&files));
    assert_eq!(log, expected_log(&["run /etc/init.d/networking restart"]));
}

#[test]
fn apply_without_old_file_brings_nothing_down() {
    let files = [("/etc/init.d/networking", "#!/bin/sh\n")];
    let log = apply_expecting(Recorder::default(), Ok(()), apply_in(&files));
    let mut expected = vec![
        "sethostname web-1".to_owned(),
        PLANNED.to_owned(),
        "run /etc/init.d/networking restart".to_owned(),
    ];
    expected.extend(ifups());
    assert_eq!(log, expected);
}

#[test]
fn apply_falls_back_to_service() {
    let files = old_file_and_script("#!/bin/sh\n");
    let recorder = Recorder::exiting(&[("/etc/init.d/networking", 1)]);
    let log = apply_expecting(recorder, Ok(()), apply_in(&files));
    assert_eq!(log, expected_log(&FALLEN_BACK));
}

#[test]
fn apply_failing_restart() {
    let files = old_file_and_script("#!/bin/sh\n");
    let log = apply_expecting(
        failing_restart(3),
        Err("Couldn't restart network: 3"),
        apply_in(&files),
    );
    assert_eq!(log, expected_log(&FALLEN_BACK));
}

#[test]
fn apply_under_upstart_forgives_the_restart() {
    let script = "#!/bin/sh\nif init_is_upstart; then exit 1; fi\n";
    let [old_file, init_script] = old_file_and_script(script);
    let files = [old_file, init_script, ("/sbin/initctl", "")];
    apply_expecting(failing_restart(1), Ok(()), apply_in(&files));

    // The script alone (no initctl) is not upstart.
    apply_expecting(
        failing_restart(1),
        Err("Couldn't restart network: 1"),
        apply_in(&[init_script]),
    );
}

#[test]
fn apply_on_systemd_only_debian() {
    let files = [(INTERFACES_FILE, OLD_INTERFACES), ("/bin/systemctl", "")];
    let log = apply_expecting(Recorder::default(), Ok(()), apply_in(&files));
    assert_eq!(
        log,
        expected_log(&["run /bin/systemctl restart networking"])
    );

    apply_failing(
        "/bin/systemctl",
        5,
        "Couldn't restart network: 5",
        apply_in(&files),
    );
}

#[test]
fn apply_missing_restart_program() {
    let log = apply_without(
        "/etc/init.d/networking",
        apply_in(&[(INTERFACES_FILE, OLD_INTERFACES)]),
    );
    assert_eq!(log.last().unwrap(), "run /etc/init.d/networking restart");

    let mut recorder = Recorder::exiting(&[("/etc/init.d/networking", 1)]);
    recorder.missing.push("/usr/sbin/service".into());
    apply_expecting(
        recorder,
        Err("cannot run /usr/sbin/service: No such file or directory"),
        apply_in(&[("/etc/init.d/networking", "")]),
    );
}

#[test]
fn apply_ignores_ifdown_and_ifup_failures() {
    let files = old_file_and_script("");
    let mut recorder = Recorder::exiting(&[("/sbin/ifdown", 1)]);
    recorder.missing.push("/sbin/ifup".into());
    let log = apply_expecting(recorder, Ok(()), apply_in(&files));
    assert_eq!(log, expected_log(&["run /etc/init.d/networking restart"]));
}

#[test]
fn apply_failed_write_still_restarts_then_reports_it() {
    let files = old_file_and_script("");
    let mut recorder = failing_restart(1);
    recorder.write_error = Some("Permission denied".to_owned());
    let log = apply_expecting(recorder, Err("Permission denied"), apply_in(&files));
    // Nothing was written, so the old file's interfaces are brought back up.
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
    assert_refused_hostname_stops(
        apply_in(&[(INTERFACES_FILE, OLD_INTERFACES)]),
        &["sethostname web-1"],
    );
}
