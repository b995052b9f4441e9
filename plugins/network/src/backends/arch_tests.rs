use serde_json::json;

use super::*;
use crate::backend::Actions;
use crate::testutil::{
    apply_expecting, apply_failing, apply_without, network_from, planned_paths, realistic, render,
    rstrip_lines, text, vector, Recorder,
};

// --- The seed's vectors ----------------------------------------------------

fn check_netcfg_vector(id: &str) {
    let v = vector(id);
    let existing = v["input"]["existing_files"]["/etc/rc.conf"]
        .as_str()
        .unwrap();
    let network = network_from(&v["input"]);
    let full = &v["full_output"];
    let profile = netcfg_profile(&network.interfaces[0]);
    assert_eq!(
        rstrip_lines(&profile),
        v["expected"]["/etc/network.d/eth0"].as_str().unwrap()
    );
    assert_eq!(profile, full["/etc/network.d/eth0"].as_str().unwrap());
    let rc_conf = netcfg_rc_conf(existing, &["eth0"]);
    assert_eq!(rc_conf, full["/etc/rc.conf"].as_str().unwrap());
    let plan = render(&ArchNetcfg, &[("/etc/rc.conf", existing)], &network).unwrap();
    assert_eq!(text(&plan, "/etc/network.d/eth0"), profile);
    assert_eq!(
        text(&plan, "/etc/rc.conf"),
        rc_conf + "HOSTNAME=\"example\"\n"
    );
}

#[test]
fn seed_vector_netcfg_ipv4() {
    check_netcfg_vector("interfaces-arch-netcfg-ipv4");
}

#[test]
fn seed_vector_netcfg_ipv6() {
    check_netcfg_vector("interfaces-arch-netcfg-ipv6");
}

// --- The realistic payload -------------------------------------------------

const HOSTS: &str = "127.0.0.1\tlocalhost\n";
const NEW_HOSTS: &str =
    "127.0.0.1\tlocalhost\n198.51.100.10\tweb-1\n2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n";

const LEGACY_RC_CONF: &str = r#"# /etc/rc.conf
LOCALE="en_US.UTF-8"
HOSTNAME="old"
eth0="eth0 192.0.2.250 netmask 255.255.255.0"
INTERFACES=(eth0)
gateway="default gw 192.0.2.254"
ROUTES=(gateway)
DAEMONS=(syslog-ng network crond)
"#;

const NETCFG_RC_CONF: &str = "HOSTNAME=\"old\"\nNETWORKS=(eth0)\n\
DAEMONS=(syslog-ng !network @net-profiles crond)\n";

#[test]
fn realistic_payload_netctl() {
    let plan = render(&ArchNetctl, &[("/etc/hosts", HOSTS)], &realistic()).unwrap();
    let eth0 = "# Label public
Connection=ethernet
Interface=eth0
IP=static
Address=('198.51.100.10/24' '198.51.100.11/24')
Gateway=198.51.100.1
IP6=static
Address6=('2001:db8:0:1::10/64' '2001:db8:0:1::11/64')
Gateway6=fe80::def
DNS=('69.20.0.164' '69.20.0.196')
";
    let eth1 = "# Label private
Connection=ethernet
Interface=eth1
IP=static
Address=('10.208.227.239/19')
Routes=('10.208.0.0/12 via 10.208.224.1' '10.176.0.0/12 via 10.208.224.1')
";
    assert_eq!(text(&plan, "/etc/netctl/eth0"), eth0);
    assert_eq!(text(&plan, "/etc/netctl/eth1"), eth1);
    assert_eq!(plan.files.len(), 2);
    assert!(!plan.resolv_conf);
    assert!(plan.remove.is_empty());
}

#[test]
fn realistic_payload_netcfg_migrating_from_legacy() {
    let files = [("/etc/rc.conf", LEGACY_RC_CONF), ("/etc/hosts", HOSTS)];
    let plan = render(&ArchNetcfg, &files, &realistic()).unwrap();
    let eth0 = r#"# Label public
CONNECTION="ethernet"
INTERFACE=eth0
IP="static"
ADDR="198.51.100.10"
NETMASK="255.255.255.0"
GATEWAY="198.51.100.1"
IP6="static"
ADDR6="2001:db8:0:1::10/64"
GATEWAY6="fe80::def"
DNS=(69.20.0.164 69.20.0.196)
POST_UP="ip addr add 198.51.100.11/255.255.255.0 dev eth0; ip addr add 2001:db8:0:1::11/64 dev eth0"
PRE_DOWN="ip addr del 2001:db8:0:1::11/64 dev eth0; ip addr del 198.51.100.11/255.255.255.0 dev eth0"
"#;
    let eth1 = r#"# Label private
CONNECTION="ethernet"
INTERFACE=eth1
IP="static"
ADDR="10.208.227.239"
NETMASK="255.255.224.0"
ROUTES=("10.208.0.0/255.240.0.0 via 10.208.224.1" "10.176.0.0/255.240.0.0 via 10.208.224.1")
"#;
    // B-NET-11 fixed: the variables themselves are commented out.
    let rc_conf = r#"# /etc/rc.conf
LOCALE="en_US.UTF-8"
HOSTNAME="web-1"
#eth0="eth0 192.0.2.250 netmask 255.255.255.0"
#INTERFACES=(eth0)
#gateway="default gw 192.0.2.254"
#ROUTES=(gateway)
DAEMONS=(syslog-ng !network @net-profiles crond)
NETWORKS=(eth0 eth1)
"#;
    assert_eq!(text(&plan, "/etc/network.d/eth0"), eth0);
    assert_eq!(text(&plan, "/etc/network.d/eth1"), eth1);
    assert_eq!(text(&plan, "/etc/rc.conf"), rc_conf);
    assert_eq!(text(&plan, "/etc/hosts"), NEW_HOSTS);
    assert_eq!(
        planned_paths(&plan),
        [
            "/etc/network.d/eth0",
            "/etc/network.d/eth1",
            "/etc/rc.conf",
            "/etc/hosts"
        ]
    );
    assert!(!plan.resolv_conf);
    // Rendering again over its own output changes nothing.
    assert_eq!(
        text(
            &render(&ArchNetcfg, &[("/etc/rc.conf", rc_conf)], &realistic()).unwrap(),
            "/etc/rc.conf"
        ),
        rc_conf
    );
}

const REALISTIC_LEGACY: &str = r#"HOSTNAME="web-1"
#NETWORKS=(eth0)
DAEMONS=(syslog-ng network crond)
eth0="eth0 198.51.100.10 netmask 255.255.255.0 add 2001:db8:0:1::10/64"
eth0_1="eth0:1 198.51.100.11 netmask 255.255.255.0 add 2001:db8:0:1::11/64"
eth1="eth1 10.208.227.239 netmask 255.255.224.0"
INTERFACES=(eth0 eth0_1 eth1)
eth1_route0="-net 10.208.0.0 netmask 255.240.0.0 gw 10.208.224.1"
eth1_route1="-net 10.176.0.0 netmask 255.240.0.0 gw 10.208.224.1"
gateway="default gw 198.51.100.1"
gateway6="default gw fe80::def"
ROUTES=(eth1_route0 eth1_route1 gateway gateway6)
"#;

#[test]
fn realistic_payload_legacy_migrating_from_netcfg() {
    let files = [("/etc/rc.conf", NETCFG_RC_CONF), ("/etc/hosts", HOSTS)];
    let plan = render(&ArchRcconf, &files, &realistic()).unwrap();
    assert_eq!(text(&plan, "/etc/rc.conf"), REALISTIC_LEGACY);
    assert_eq!(text(&plan, "/etc/hosts"), NEW_HOSTS);
    assert_eq!(planned_paths(&plan), ["/etc/rc.conf", "/etc/hosts"]);
    assert!(plan.resolv_conf);
    assert!(plan.remove.is_empty());
    let again = render(
        &ArchRcconf,
        &[("/etc/rc.conf", REALISTIC_LEGACY)],
        &realistic(),
    )
    .unwrap();
    assert_eq!(text(&again, "/etc/rc.conf"), REALISTIC_LEGACY);
}

#[test]
fn realistic_payload_legacy_over_a_legacy_rc_conf() {
    let plan = render(
        &ArchRcconf,
        &[("/etc/rc.conf", LEGACY_RC_CONF)],
        &realistic(),
    )
    .unwrap();
    let stanzas_and_routes = REALISTIC_LEGACY.split_once("crond)\n").unwrap().1;
    let (stanzas, routes) =
        stanzas_and_routes.split_at(stanzas_and_routes.find("eth1_route0").unwrap());
    let expected = format!(
        "# /etc/rc.conf\nLOCALE=\"en_US.UTF-8\"\nHOSTNAME=\"web-1\"\n{stanzas}{routes}DAEMONS=(syslog-ng network crond)\n"
    );
    assert_eq!(text(&plan, "/etc/rc.conf"), expected);
}

// --- Details ---------------------------------------------------------------

fn with_routes(gateway4: &str) -> Network {
    network_from(&json!({"interfaces": {"eth0": {
        "ip4s": [{"address": "192.0.2.10", "netmask": "255.255.255.0"}],
        "gateway4": gateway4,
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                   {"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "192.0.2.1"},
                   {"network": "172.16.0.0", "netmask": "255.240.0.0", "gateway": "192.0.2.254"}],
    }}}))
}

#[test]
fn routes_are_skipped_as_the_seed_did() {
    let network = with_routes("192.0.2.1");
    // rc.conf: only the default route through the gateway goes.
    let rc_conf = legacy_rc_conf("", &network).unwrap();
    assert!(rc_conf.contains(
        "eth0_route1=\"-net 10.0.0.0 netmask 255.0.0.0 gw 192.0.2.1\"\n\
eth0_route2=\"-net 172.16.0.0 netmask 255.240.0.0 gw 192.0.2.254\"\n\
gateway=\"default gw 192.0.2.1\"\nROUTES=(eth0_route1 eth0_route2 gateway)\n"
    ));
    // Profiles (B-NET-3 kept): every route through the gateway goes.
    let interface = &network.interfaces[0];
    assert!(netctl_profile(interface).ends_with("\nRoutes=('172.16.0.0/12 via 192.0.2.254')\n"));
    assert!(netcfg_profile(interface)
        .ends_with("\nROUTES=(\"172.16.0.0/255.240.0.0 via 192.0.2.254\")\n"));
}

#[test]
fn netctl_profile_without_ipv4_disables_it() {
    let network = network_from(&json!({"interfaces": {"eth0": {
        "ip6s": [{"address": "2001:db8::42", "prefixlen": 96}], "gateway6": "2001:db8::1"}}}));
    assert_eq!(
        netctl_profile(&network.interfaces[0]),
        "Connection=ethernet\nInterface=eth0\nIP=no\nIP6=static\nAddress6=('2001:db8::42/96')\nGateway6=2001:db8::1\n"
    );
}

#[test]
fn only_stale_profiles_nova_agent_wrote_are_removed() {
    let ours =
        |label: &str, name: &str| format!("{label}Connection=ethernet\nInterface={name}\nIP=no\n");
    let stale_labelled = ours("# Label private\n", "eth2");
    let stale = ours("", "eth3");
    let misnamed = ours("", "eth5");
    let netcfg_stale = "# Label public\nCONNECTION=\"ethernet\"\nINTERFACE=eth2\n";
    let files = [
        ("/etc/netctl/eth0", "old content\n"),
        ("/etc/netctl/eth2", stale_labelled.as_str()),
        ("/etc/netctl/eth3", stale.as_str()),
        ("/etc/netctl/eth4", misnamed.as_str()),
        (
            "/etc/netctl/wlan-home",
            "Description='home'\nInterface=wlan0\nConnection=wireless\n",
        ),
        (
            "/etc/netctl/examples/ethernet-static",
            "Connection=ethernet\nInterface=ethernet-static\n",
        ),
        ("/etc/network.d/eth2", netcfg_stale),
        ("/etc/network.d/eth3", stale.as_str()),
        ("/etc/rc.conf", ""),
    ];
    let netctl = render(&ArchNetctl, &files, &realistic()).unwrap();
    assert_eq!(netctl.remove, ["/etc/netctl/eth2", "/etc/netctl/eth3"]);
    let netcfg = render(&ArchNetcfg, &files, &realistic()).unwrap();
    assert_eq!(netcfg.remove, ["/etc/network.d/eth2"]);
}

// --- Apply sequences -------------------------------------------------------

/// `realistic()` with eth1 down, rendered with `backend` and applied on a
/// root with `files`.
fn apply_on<'a>(
    backend: &'a dyn Backend,
    files: &'a [(&'a str, &'a str)],
) -> impl FnOnce(&mut dyn Actions) -> Result<(), String> + 'a {
    move |actions| {
        let mut network = realistic();
        network.interfaces[1].up = false;
        crate::testutil::apply_on(backend, &network, files, actions)
    }
}

const NETCTL_INSTALLED: [(&str, &str); 1] = [("/usr/bin/netctl", "")];

#[test]
fn netctl_apply_sequence() {
    // A failed stop is soft.
    let recorder = Recorder::exiting(&[("/usr/bin/netctl stop eth0", 1)]);
    let log = apply_expecting(recorder, Ok(()), apply_on(&ArchNetctl, &NETCTL_INSTALLED));
    assert_eq!(
        log,
        [
            "run /usr/bin/hostnamectl set-hostname web-1",
            "sethostname web-1",
            "run /usr/bin/netctl stop eth0",
            "write /etc/netctl/eth0 /etc/netctl/eth1",
            "run /usr/bin/netctl restart eth0",
            "run /usr/bin/netctl reenable eth0",
            "run /usr/bin/netctl restart eth1",
            "run /usr/bin/netctl reenable eth1",
        ]
    );
}

#[test]
fn netctl_retries_once_and_names_the_failures() {
    let recorder = Recorder::exiting(&[
        ("/usr/bin/netctl restart eth0", 1),
        ("/usr/bin/netctl reenable eth1", 1),
    ]);
    let log = apply_expecting(
        recorder,
        Err("Failed to start eth0, eth1"),
        apply_on(&ArchNetctl, &NETCTL_INSTALLED),
    );
    let starts: Vec<&String> = log.iter().filter(|l| l.contains("restart")).collect();
    assert_eq!(starts.len(), 4);
}

#[test]
fn netctl_not_installed_only_writes() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_on(&ArchNetctl, &[]));
    assert_eq!(
        log,
        [
            "run /usr/bin/hostnamectl set-hostname web-1",
            "sethostname web-1",
            "write /etc/netctl/eth0 /etc/netctl/eth1",
        ]
    );
}

#[test]
fn netctl_reports_a_missing_program() {
    apply_without(
        "/usr/bin/hostnamectl",
        apply_on(&ArchNetctl, &NETCTL_INSTALLED),
    );
}

#[test]
fn netcfg_apply_when_netcfg_is_current() {
    let log = apply_failing(
        "/usr/bin/netcfg -u eth1",
        1,
        "Failed to start eth1",
        apply_on(&ArchNetcfg, &[("/etc/rc.conf", NETCFG_RC_CONF)]),
    );
    assert_eq!(
        log,
        [
            "sethostname web-1",
            "run /usr/bin/netcfg -d eth0",
            "write /etc/network.d/eth0 /etc/network.d/eth1 /etc/rc.conf /etc/hosts",
            "run /usr/bin/netcfg -u eth0",
            "run /usr/bin/netcfg -u eth1",
            "run /usr/bin/netcfg -u eth1",
        ]
    );
}

#[test]
fn netcfg_apply_when_legacy_is_current() {
    let files = [("/etc/rc.conf", LEGACY_RC_CONF)];
    let log = apply_expecting(Recorder::default(), Ok(()), apply_on(&ArchNetcfg, &files));
    assert_eq!(
        log[..3],
        [
            "sethostname web-1",
            "run /etc/rc.d/network stop",
            "write /etc/network.d/eth0 /etc/network.d/eth1 /etc/rc.conf /etc/hosts"
        ]
    );

    let log = apply_failing(
        "/etc/rc.d/network",
        4,
        "Couldn't stop network: 4",
        apply_on(&ArchNetcfg, &files),
    );
    assert_eq!(log.last().unwrap(), "run /etc/rc.d/network stop");

    apply_without("/usr/bin/netcfg", apply_on(&ArchNetcfg, &files));
}

#[test]
fn legacy_apply_sequence() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_on(&ArchRcconf, &[]));
    assert_eq!(
        log,
        [
            "sethostname web-1",
            "run /etc/rc.d/network stop",
            "write /etc/rc.conf /etc/hosts",
            "run /etc/rc.d/network start",
        ]
    );
}

#[test]
fn legacy_apply_failures() {
    let log = apply_failing(
        "/etc/rc.d/network stop",
        1,
        "Couldn't stop network: 1",
        apply_on(&ArchRcconf, &[]),
    );
    assert!(!log.iter().any(|l| l.starts_with("write")));

    apply_failing(
        "/etc/rc.d/network start",
        2,
        "Couldn't start network: 2",
        apply_on(&ArchRcconf, &[]),
    );

    apply_without("/etc/rc.d/network", apply_on(&ArchRcconf, &[]));
}

#[test]
fn a_refused_hostname_stops_every_mode() {
    let refused = Err("Couldn't set hostname: Operation not permitted".to_owned());
    for backend in [&ArchNetctl as &dyn Backend, &ArchNetcfg, &ArchRcconf] {
        let mut recorder = Recorder::refusing_hostname();
        assert_eq!(
            apply_on(backend, &NETCTL_INSTALLED)(&mut recorder),
            refused,
            "{}",
            backend.name()
        );
        assert!(!recorder.log.iter().any(|l| l.starts_with("write")));
        assert_eq!(recorder.log.last().unwrap(), "sethostname web-1");
    }
}

#[test]
fn names() {
    assert_eq!(ArchNetctl.name(), "arch-netctl");
    assert_eq!(ArchNetcfg.name(), "arch-netcfg");
    assert_eq!(ArchRcconf.name(), "arch-rcconf");
}
