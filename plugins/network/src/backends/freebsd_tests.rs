use serde_json::json;

use super::*;
use crate::backend::Actions;
use crate::testutil::{
    apply_expecting, apply_failing, apply_without, assert_refused_hostname_stops, network_from,
    planned_paths, realistic, render, rstrip_lines, text, vector, Recorder, REALISTIC_HOSTS,
};

fn render_with(rc_conf: &str, network: &Network) -> Result<Plan, String> {
    render(&FreebsdRcconf, &[("/etc/rc.conf", rc_conf)], network)
}

/// The `/etc/rc.conf` rendered for `network` over one of `old`.
fn rendered_rc_conf(old: &str, network: &Network) -> String {
    let plan = render_with(old, network).unwrap();
    text(&plan, "/etc/rc.conf").to_owned()
}

fn check_vector(id: &str) {
    let v = vector(id);
    let input = &v["input"];
    let plan = render_with(
        input["existing_rc_conf"].as_str().unwrap(),
        &network_from(input),
    )
    .unwrap();
    let rc_conf = text(&plan, "/etc/rc.conf");
    assert_eq!(
        rstrip_lines(rc_conf),
        v["expected"]["/etc/rc.conf"].as_str().unwrap(),
        "{id}"
    );
    assert_eq!(
        rc_conf,
        v["full_output"]["/etc/rc.conf"].as_str().unwrap(),
        "{id}"
    );
}

#[test]
fn seed_vector_ipv4_0_aliases() {
    check_vector("freebsd-rcconf-ipv4-0-aliases");
}

#[test]
fn seed_vector_ipv4_2_aliases() {
    check_vector("freebsd-rcconf-ipv4-2-aliases");
}

#[test]
fn seed_vector_ipv4and6_0_aliases() {
    check_vector("freebsd-rcconf-ipv4and6-0-aliases");
}

#[test]
fn seed_vector_ipv4and6_2_aliases() {
    check_vector("freebsd-rcconf-ipv4and6-2-aliases");
}

const OLD_RC_CONF: &str = "hostname=\"old\"\n  sshd_enable=\"YES\"  \nifconfig_xn0=\"DHCP\"\n\
ipv6_network_interfaces=\"xn0\"\nipv6_defaultrouter=\"fe80::1%xn0\"\n";

const REALISTIC_RC_CONF: &str = r#"sshd_enable="YES"
dhcpd_enable="NO"
hostname=web-1
# Label public
ifconfig_eth0="198.51.100.10 netmask 255.255.255.0 up"
ipv6_ifconfig_eth0="2001:db8:0:1::10/64"
ifconfig_eth0_alias0="198.51.100.11 netmask 255.255.255.0"
ipv6_ifconfig_eth0_alias0="2001:db8:0:1::11/64"
# Label private
ifconfig_eth1="10.208.227.239 netmask 255.255.224.0 up"
route_lan0="-net 10.208.0.0 -netmask 255.240.0.0 10.208.224.1"
route_lan1="-net 10.176.0.0 -netmask 255.240.0.0 10.208.224.1"
static_routes="lan0 lan1"
ipv6_enable="YES"
ipv6_network_interfaces="eth0"
defaultrouter="198.51.100.1"
ipv6_defaultrouter="fe80::def%eth0"
"#;

#[test]
fn realistic_payload_renders_whole_files() {
    let files = [
        ("/etc/rc.conf", OLD_RC_CONF),
        ("/etc/hosts", "127.0.0.1\tlocalhost\n"),
    ];
    let plan = render(&FreebsdRcconf, &files, &realistic()).unwrap();
    assert_eq!(text(&plan, "/etc/rc.conf"), REALISTIC_RC_CONF);
    assert_eq!(
        text(&plan, "/etc/hosts"),
        format!("127.0.0.1\tlocalhost\n{REALISTIC_HOSTS}")
    );
    assert_eq!(planned_paths(&plan), ["/etc/rc.conf", "/etc/hosts"]);
    assert!(plan.resolv_conf);
    assert!(plan.remove.is_empty());
}

#[test]
fn rerendering_its_own_output_changes_nothing() {
    // B-NET-13: ipv6_network_interfaces no longer accumulates.
    let plan = render_with(REALISTIC_RC_CONF, &realistic()).unwrap();
    assert_eq!(text(&plan, "/etc/rc.conf"), REALISTIC_RC_CONF);
}

#[test]
fn missing_rc_conf_counts_as_empty() {
    let plan = render(&FreebsdRcconf, &[], &realistic()).unwrap();
    assert_eq!(
        text(&plan, "/etc/rc.conf"),
        REALISTIC_RC_CONF.replace("sshd_enable=\"YES\"\n", "")
    );
}

fn two_interfaces(gateway_key: &str, first: &str, second: &str) -> Network {
    network_from(&json!({"interfaces": {
        "xn0": {"ip4s": [{"address": "192.0.2.10", "netmask": "255.255.255.0"}],
                "ip6s": [{"address": "2001:db8::10", "prefixlen": 64}], gateway_key: first},
        "xn1": {"ip4s": [{"address": "10.0.0.10", "netmask": "255.0.0.0"}],
                "ip6s": [{"address": "2001:db8:1::10", "prefixlen": 64}], gateway_key: second},
    }}))
}

#[test]
fn two_gateways_of_a_family_are_refused() {
    let network = two_interfaces("gateway4", "192.0.2.1", "10.0.0.1");
    assert_eq!(
        render_with("", &network),
        Err("Multiple IPv4 default routes specified".into())
    );
    let network = two_interfaces("gateway6", "2001:db8::1", "2001:db8:1::1");
    assert_eq!(
        render_with("", &network),
        Err("Multiple IPv6 default routes specified".into())
    );
}

#[test]
fn ipv6_default_router_zone_is_its_interface() {
    let mut network = two_interfaces("gateway6", "2001:db8::1", "2001:db8:1::1");
    network.interfaces[0].gateway6 = None;
    let rc_conf = rendered_rc_conf("", &network);
    assert!(
        rc_conf.contains("ipv6_network_interfaces=\"xn0,xn1\"\n"),
        "{rc_conf}"
    );
    assert!(
        rc_conf.ends_with("ipv6_defaultrouter=\"2001:db8:1::1%xn1\"\n"),
        "{rc_conf}"
    );
}

#[test]
fn default_route_through_the_gateway_is_left_out() {
    let network = network_from(&json!({"interfaces": {"xn0": {
        "ip4s": [{"address": "192.0.2.10", "netmask": "255.255.255.0"}],
        "gateway4": "192.0.2.1",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                   {"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "192.0.2.1"}],
    }}}));
    let rc_conf = rendered_rc_conf("", &network);
    assert!(rc_conf.contains(
        "route_lan0=\"-net 10.0.0.0 -netmask 255.0.0.0 192.0.2.1\"\nstatic_routes=\"lan0\"\n"
    ));
}

/// Applies the realistic payload on a root holding `files`.
fn apply_on<'a>(
    files: &'a [(&'a str, &'a str)],
) -> impl FnOnce(&mut dyn Actions) -> Result<(), String> + 'a {
    |actions| crate::testutil::apply_on(&FreebsdRcconf, &realistic(), files, actions)
}

#[test]
fn apply_restarts_netif_and_routing() {
    let log = apply_expecting(Recorder::default(), Ok(()), apply_on(&[]));
    assert_eq!(
        log,
        [
            "write /etc/rc.conf /etc/hosts",
            "sethostname web-1",
            "run /bin/sh /etc/rc.d/netif restart",
            "run /bin/sh /etc/rc.d/routing restart",
        ]
    );
}

#[test]
fn apply_restarts_ipv6_networking_when_its_script_exists() {
    let log = apply_expecting(
        Recorder::exiting(&[("/bin/sh /etc/rc.d/routing restart", 1)]),
        Ok(()),
        apply_on(&[("/etc/rc.d/network_ipv6", "")]),
    );
    assert_eq!(
        log[2..],
        [
            "run /bin/sh /etc/rc.d/netif restart",
            "run /bin/sh /etc/rc.d/network_ipv6 restart",
            "run /bin/sh /etc/rc.d/routing restart",
        ]
    );
}

#[test]
fn apply_reports_failed_restarts() {
    let log = apply_failing(
        "/bin/sh /etc/rc.d/netif restart",
        1,
        "Couldn't restart IPv4 networking: 1",
        apply_on(&[]),
    );
    assert_eq!(log.last().unwrap(), "run /bin/sh /etc/rc.d/netif restart");

    let log = apply_failing(
        "/bin/sh /etc/rc.d/network_ipv6 restart",
        3,
        "Couldn't restart IPv6 networking: 3",
        apply_on(&[("/etc/rc.d/network_ipv6", "")]),
    );
    assert_eq!(
        log.last().unwrap(),
        "run /bin/sh /etc/rc.d/network_ipv6 restart"
    );
}

#[test]
fn apply_reports_a_missing_program() {
    apply_without("/bin/sh", apply_on(&[]));
}

#[test]
fn apply_reports_a_refused_hostname() {
    assert_refused_hostname_stops(
        apply_on(&[]),
        &["write /etc/rc.conf /etc/hosts", "sethostname web-1"],
    );
}

#[test]
fn only_label_comments_of_dropped_lines_go() {
    let old = "# Label notes\nsshd_enable=\"YES\"\n# Label public\nifconfig_xn0=\"DHCP\"\n";
    let rc_conf = rendered_rc_conf(old, &realistic());
    assert!(rc_conf.starts_with("# Label notes\nsshd_enable=\"YES\"\ndhcpd_enable=\"NO\"\n"));
    assert_eq!(rc_conf.matches("# Label public\n").count(), 1);
}
