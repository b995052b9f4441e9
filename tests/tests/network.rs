//! resetnetwork end to end: the agent binary with the network plugin, a
//! sandbox root laid out like a guest (os-release, /sys/class/net, the
//! distro's tools), metadata from the unix-socket channel's `metadata_dir`
//! or from XenStore, and `apply = false` so nothing runs.

use std::collections::BTreeMap;
use std::path::Path;

use nova_agent_tests::dom0::{Dom0, HOME};
use nova_agent_tests::xenstored::FakeXenstored;
use nova_agent_tests::{nova, plugin, Sandbox};

const PUBLIC: &str = r#"{"label": "public", "mac": "BC:76:4E:20:6C:5A", "broadcast": "198.51.100.255", "ips": [{"ip": "198.51.100.10", "netmask": "255.255.255.0", "enabled": "1", "gateway": "198.51.100.1"}, {"ip": "198.51.100.11", "netmask": "255.255.255.0", "enabled": "1", "gateway": "198.51.100.1"}], "ip6s": [{"ip": "2001:db8:0:1::10", "netmask": 64, "enabled": "1", "gateway": "fe80::def"}, {"ip": "2001:db8:0:1::11", "netmask": "64", "enabled": "1", "gateway": "fe80::def"}], "gateway": "198.51.100.1", "gateway_v6": "fe80::def", "dns": ["69.20.0.164", "69.20.0.196"]}"#;
const PRIVATE: &str = r#"{"label": "private", "mac": "bc:76:4e:20:6c:5b", "broadcast": "10.208.255.255", "ips": [{"ip": "10.208.227.239", "netmask": "255.255.224.0", "enabled": "1", "gateway": null}], "routes": [{"route": "10.208.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"}, {"route": "10.176.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"}], "gateway": null}"#;
const STALE: &str = r#"{"label": "gone", "mac": "de:ad:be:ef:00:01", "ips": [{"ip": "192.0.2.9", "netmask": "255.255.255.0", "enabled": "1"}]}"#;

/// A guest root: the distro's files and two NICs in /sys/class/net.
fn guest_root(root: &Path, files: &[(&str, &str)]) {
    let mut all: Vec<(&str, &str)> = vec![
        ("/sys/class/net/lo/type", "772\n"),
        ("/sys/class/net/lo/address", "00:00:00:00:00:00\n"),
        ("/sys/class/net/eth0/type", "1\n"),
        ("/sys/class/net/eth0/address", "bc:76:4e:20:6c:5a\n"),
        ("/sys/class/net/eth0/flags", "0x1003\n"),
        ("/sys/class/net/eth1/type", "1\n"),
        ("/sys/class/net/eth1/address", "bc:76:4e:20:6c:5b\n"),
        ("/sys/class/net/eth1/flags", "0x1003\n"),
        ("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\toldname\n"),
        ("/etc/resolv.conf", "nameserver 10.0.0.1\n"),
    ];
    all.extend_from_slice(files);
    for (path, content) in all {
        let real = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, content).unwrap();
    }
}

const DEBIAN: &[(&str, &str)] = &[
    (
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\nVERSION_ID=\"12\"\n",
    ),
    ("/sbin/ifup", ""),
    (
        "/etc/network/interfaces",
        "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n",
    ),
];

/// A sandbox with the network plugin and a unix-socket metadata directory
/// holding `networking` entries (key → JSON) and the hostname.
fn sandbox(
    distro: &[(&str, &str)],
    networking: &[(&str, &str)],
    hostname: Option<&str>,
) -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&plugin("network"));
    let metadata = sandbox.path().join("metadata");
    std::fs::create_dir_all(metadata.join("vm-data/networking")).unwrap();
    for (key, json) in networking {
        std::fs::write(metadata.join("vm-data/networking").join(key), json).unwrap();
    }
    if let Some(hostname) = hostname {
        std::fs::write(metadata.join("vm-data/hostname"), format!("{hostname}\n")).unwrap();
    }
    sandbox.write_config(&format!("metadata_dir = \"{}\"\n", metadata.display()));
    guest_root(&sandbox.root, distro);
    sandbox
}

fn read(sandbox: &Sandbox, path: &str) -> String {
    std::fs::read_to_string(sandbox.root.join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file under the root with its content, to prove nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn debian_over_the_unix_socket_with_a_metadata_directory() {
    let sandbox = sandbox(
        DEBIAN,
        &[
            ("BC764E206C5A", PUBLIC),
            ("BC764E206C5B", PRIVATE),
            ("DEADBEEF0001", STALE),
        ],
        Some("web-1"),
    );
    let agent = sandbox.start();
    assert_eq!(agent.call("resetnetwork"), nova("0", ""));

    let interfaces = read(&sandbox, "/etc/network/interfaces");
    for needle in [
        "auto lo\niface lo inet loopback\n",
        "# Label public\nauto eth0\niface eth0 inet static\n    address 198.51.100.10\n    netmask 255.255.255.0\n    gateway 198.51.100.1\n",
        "iface eth0 inet6 static\n    address 2001:db8:0:1::10\n    netmask 64\n    gateway fe80::def\n",
        "# Label private\nauto eth1\niface eth1 inet static\n    address 10.208.227.239\n    netmask 255.255.224.0\n",
        "    post-up route add -net 10.208.0.0 netmask 255.240.0.0 gw 10.208.224.1 || true\n",
    ] {
        assert!(interfaces.contains(needle), "{needle:?} not in:\n{interfaces}");
    }
    assert_eq!(read(&sandbox, "/etc/hostname"), "web-1\n");
    assert_eq!(
        read(&sandbox, "/etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\toldname\n198.51.100.10\tweb-1\n2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n"
    );
    assert_eq!(
        read(&sandbox, "/etc/resolv.conf"),
        "# Automatically generated, do not edit\nnameserver 69.20.0.164\nnameserver 69.20.0.196\n"
    );
    for needle in [
        "not running (apply = false): /sbin/ifdown eth0",
        "not running (apply = false): /sbin/ifup eth1",
        "no NIC has MAC de:ad:be:ef:00:01",
    ] {
        agent.wait_for_logged(needle, 1);
    }

    // Run again: nothing changes, and only a bounded number of backups.
    assert_eq!(agent.call("resetnetwork"), nova("0", ""));
    assert_eq!(read(&sandbox, "/etc/network/interfaces"), interfaces);
}

#[test]
fn invalid_input_answers_500_and_touches_nothing() {
    let bad_ip = PRIVATE.replace("10.208.227.239", "10.208.227.239; reboot");
    let bad_enabled = PRIVATE.replace("\"enabled\": \"1\"", "\"enabled\": \"yes\"");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("A", "{not json")],
            None,
            "vm-data/networking/A is not valid JSON",
        ),
        (
            vec![("A", STALE)],
            None,
            "Unknown interface MAC de:ad:be:ef:00:01",
        ),
        (vec![("A", &bad_ip)], None, "Invalid IPv4 address"),
        (
            vec![("A", &bad_enabled)],
            None,
            "Invalid value u'yes' for 'enabled' key",
        ),
        (
            vec![("A", r#"{"mac": "bc:76:4e:20:6c:5a"}"#)],
            None,
            "No IPs found for interface",
        ),
        (vec![("A", PUBLIC)], Some("bad;host"), "Invalid hostname"),
        (vec![], None, "No interfaces found in vm-data/networking"),
    ];
    for (networking, hostname, message) in cases {
        let sandbox = sandbox(DEBIAN, &networking, hostname);
        let before = snapshot(&sandbox.root);
        let agent = sandbox.start();
        let response = agent.call("resetnetwork");
        assert!(
            response.contains("\"returncode\": \"500\"") && response.contains(message),
            "{message}: {response}"
        );
        assert_eq!(
            snapshot(&sandbox.root),
            before,
            "{message}: the root changed"
        );
    }
    let private_with_gateway =
        PRIVATE.replace("\"gateway\": null}", "\"gateway\": \"10.208.224.1\"}");
    let freebsd = sandbox(
        &[
            ("/bin/freebsd-version", ""),
            ("/etc/rc.conf", "sshd_enable=\"YES\"\n"),
        ],
        &[("A", PUBLIC), ("B", &private_with_gateway)],
        None,
    );
    let before = snapshot(&freebsd.root);
    let agent = freebsd.start();
    assert_eq!(
        agent.call("resetnetwork"),
        nova("500", "Multiple IPv4 default routes specified")
    );
    assert_eq!(snapshot(&freebsd.root), before);

    let unknown_os = sandbox(&[], &[("A", PUBLIC)], None);
    let agent = unknown_os.start();
    assert_eq!(
        agent.call("resetnetwork"),
        nova("500", "Couldn't figure out my OS")
    );
}

#[test]
fn over_xenstore_the_metadata_comes_from_the_domain_s_home() {
    let sandbox = Sandbox::with_xenstore("");
    sandbox.add_plugin(&plugin("network"));
    guest_root(&sandbox.root, DEBIAN);
    let xenstored = FakeXenstored::start(sandbox.xenstored_socket()).unwrap();
    let dom0 = Dom0::new(xenstored.socket());
    dom0.write(&[
        (&format!("{HOME}/vm-data/hostname"), "xen-guest"),
        (&format!("{HOME}/vm-data/networking/BC764E206C5A"), PUBLIC),
        (&format!("{HOME}/vm-data/networking/BC764E206C5B"), PRIVATE),
    ]);
    let agent = sandbox.start();
    agent.wait_for_logged("connected to XenStore", 1);
    assert_eq!(dom0.call("resetnetwork", "\"\""), nova("0", ""));
    assert_eq!(read(&sandbox, "/etc/hostname"), "xen-guest\n");
    assert!(read(&sandbox, "/etc/network/interfaces").contains("address 10.208.227.239"));
}

#[test]
fn nova_agent_resetnetwork_runs_once_at_boot() {
    let sandbox = sandbox(DEBIAN, &[("BC764E206C5A", PUBLIC)], Some("boot-1"));
    let out = sandbox.cli(&["resetnetwork"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), r#"{"message":"","returncode":"0"}"#);
    assert_eq!(read(&sandbox, "/etc/hostname"), "boot-1\n");

    let broken = sandbox
        .path()
        .join("metadata/vm-data/networking/BC764E206C5A");
    std::fs::write(broken, "{").unwrap();
    let out = sandbox.cli(&["resetnetwork"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"returncode\":\"500\""));
}

#[test]
fn nova_agent_resetnetwork_reads_xenstore_beside_a_running_agent() {
    let sandbox = Sandbox::with_xenstore("");
    sandbox.add_plugin(&plugin("network"));
    guest_root(&sandbox.root, DEBIAN);
    let xenstored = FakeXenstored::start(sandbox.xenstored_socket()).unwrap();
    let dom0 = Dom0::new(xenstored.socket());
    dom0.write(&[
        (&format!("{HOME}/vm-data/hostname"), "xen-boot"),
        (&format!("{HOME}/vm-data/networking/BC764E206C5A"), PUBLIC),
    ]);
    // The running agent serves XenStore; the command opens its own
    // connection for the metadata (the unix-socket channel has none here).
    let agent = sandbox.start();
    agent.wait_for_logged("connected to XenStore", 1);
    let out = sandbox.cli(&["resetnetwork"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), r#"{"message":"","returncode":"0"}"#);
    assert_eq!(read(&sandbox, "/etc/hostname"), "xen-boot\n");
    assert_eq!(dom0.call("version", "\"agent\""), nova("0", "2.0.0"));
}

#[test]
fn each_family_is_detected_and_configured() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("/etc/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\n"),
                ("/usr/sbin/netplan", ""),
            ],
            "/etc/netplan/90-nova-agent.yaml",
        ),
        (
            &[
                ("/etc/os-release", "ID=\"rhel\"\nVERSION_ID=\"9.3\"\n"),
                ("/usr/sbin/NetworkManager", ""),
            ],
            "/etc/NetworkManager/system-connections/nova-agent-eth0.nmconnection",
        ),
        (
            &[
                ("/etc/redhat-release", "CentOS release 6.10"),
                ("/etc/init.d/network", ""),
            ],
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
        ),
        (
            &[
                ("/etc/os-release", "ID=\"opensuse-leap\"\n"),
                ("/usr/sbin/wicked", ""),
            ],
            "/etc/sysconfig/network/ifcfg-eth0",
        ),
        (
            &[
                ("/etc/arch-release", ""),
                ("/lib/systemd/systemd-networkd", ""),
                ("/usr/bin/netctl", ""),
            ],
            "/etc/netctl/eth0",
        ),
        (
            &[("/etc/gentoo-release", ""), ("/sbin/openrc", "")],
            "/etc/conf.d/net",
        ),
        (
            &[
                ("/etc/os-release", "ID=debian\n"),
                ("/lib/systemd/systemd-networkd", ""),
            ],
            "/etc/systemd/network/50-nova-agent-eth0.network",
        ),
    ];
    for (distro, expected) in cases {
        let sandbox = sandbox(
            distro,
            &[("BC764E206C5A", PUBLIC), ("BC764E206C5B", PRIVATE)],
            Some("web-1"),
        );
        let agent = sandbox.start();
        assert_eq!(
            agent.call("resetnetwork"),
            nova("0", ""),
            "{distro:?}\n{}",
            agent.log()
        );
        assert!(
            sandbox.root.join(expected.trim_start_matches('/')).exists(),
            "{expected} for {distro:?}"
        );
    }
}
