//! The agent inside a real guest, reached through a real virtio-serial port
//! the way libvirt reaches qemu-ga: QEMU with a `virtserialport` named
//! `org.qemu.guest_agent.0` whose host side is a unix socket, Debian's stock
//! cloud kernel loading virtio_pci and virtio_console from the initramfs,
//! and a libvirt-like client on the socket (sync with an epoch-ms id, then
//! commands in libvirt's wire form).
//!
//! The host side also goes away and comes back, as when libvirtd restarts:
//! the new connection syncs at once, and nothing the first one left (unread
//! answers, half an object) reaches it.
//!
//! Skips, saying why, when qemu-system-x86_64 is not installed or the
//! kernel cannot be downloaded.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use nova_agent_tests::vm::libvirt::LibvirtAgent;
use nova_agent_tests::vm::{
    build_initramfs, find_qemu, Accel, GuestAgent, GuestKernel, Vm, GUEST_ETH0_MAC,
    GUEST_HOST_NAME, PORT_READY,
};
use nova_agent_tests::{agent_bin, plugin};

/// From QEMU's start to a serving agent; about 5 s under TCG on 2 cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Per command: libvirt would wait forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Logged by the virtio-serial exchange when it ends the first host's
/// session (its debug log).
const HOST_GONE: &str = "the host of host-1 went away";

const CONFIG: &str = r#"plugin_dir = "/usr/lib/nova-agent/plugins"
root = "/"
apply = false
state_dir = "/var/lib/nova-agent"
run_dir = "/run/nova-agent"

[[channel]]
exchange = "virtio-serial"
parser = "qga"

[plugins.virtio-serial]
path = "/dev/virtio-ports/org.qemu.guest_agent.0"
method = "virtio-serial"
"#;

/// The exchange, the parser and every `qga-*` plugin of the workspace.
fn qga_plugins() -> Vec<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut names = vec!["virtio-serial".to_owned(), "qga".to_owned()];
    let mut extra: Vec<String> = std::fs::read_dir(&workspace)
        .expect("the plugins directory")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with("qga-"))
        .collect();
    extra.sort();
    names.extend(extra);
    names.iter().map(|name| plugin(name)).collect()
}

fn skip(why: &str) {
    eprintln!("skipped: {why}");
}

/// The guest, booted and its agent serving; `None` (after saying why) when
/// this machine cannot run it.
fn boot_guest() -> Option<(Vm, GuestKernel)> {
    let Some(qemu) = find_qemu() else {
        skip("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)");
        return None;
    };
    let kernel = match GuestKernel::fetch() {
        Ok(kernel) => kernel,
        Err(e) => {
            skip(&format!("no guest kernel: {e}"));
            return None;
        }
    };
    let plugins = qga_plugins();
    let work = tempfile::tempdir().unwrap();
    let initrd = work.path().join("initrd.cpio");
    let guest = GuestAgent {
        agent: &agent_bin(),
        plugins: &plugins,
        config: CONFIG,
    };
    build_initramfs(&kernel, &guest, &initrd).unwrap_or_else(|e| panic!("{e}"));
    let accel = Accel::choose(&qemu, &kernel, &initrd);
    eprintln!("booting {} under {accel:?}", kernel.release);
    let vm = Vm::boot(&qemu, &kernel, &initrd, accel, "").unwrap_or_else(|e| panic!("{e}"));
    let started = format!("nova-agent {} started", env!("CARGO_PKG_VERSION"));
    for needle in [PORT_READY, started.as_str()] {
        vm.wait_for(needle, BOOT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    Some((vm, kernel))
}

/// `return` of a command that must succeed.
fn ok(host: &mut LibvirtAgent, vm: &Vm, name: &str, arguments: Option<Value>) -> Value {
    let reply = host
        .command(name, arguments, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("{name}: {e}; guest output:\n{}", vm.output()));
    match reply.get("return") {
        Some(value) => value.clone(),
        None => panic!("{name} failed: {reply}"),
    }
}

fn epoch_ns() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_nanos() as i64
}

/// The commands libvirt and Nova read, each checked for what libvirt needs
/// and for what the guest is known to hold; a command the agent does not
/// list yet is left out (and named).
fn read_only_commands(host: &mut LibvirtAgent, vm: &Vm, kernel: &GuestKernel) {
    assert_eq!(ok(host, vm, "guest-ping", None), json!({}));

    let info = ok(host, vm, "guest-info", None);
    assert!(info["version"].is_string(), "{info}");
    let listed: Vec<&str> = info["supported_commands"]
        .as_array()
        .unwrap_or_else(|| panic!("no supported_commands: {info}"))
        .iter()
        .map(|c| {
            assert!(
                c["enabled"].is_boolean() && c["success-response"].is_boolean(),
                "{c}"
            );
            c["name"].as_str().expect("a command name")
        })
        .collect();
    for needed in ["guest-sync", "guest-ping", "guest-info"] {
        assert!(listed.contains(&needed), "{needed} not in {listed:?}");
    }
    let has = |name: &str| {
        let there = listed.contains(&name);
        if !there {
            eprintln!("note: {name} is not registered; not asked");
        }
        there
    };

    if has("guest-get-osinfo") {
        let os = ok(host, vm, "guest-get-osinfo", None);
        assert_eq!(os["id"], "novatest", "{os}");
        assert_eq!(os["name"], "Nova Test Guest", "{os}");
        assert_eq!(os["pretty-name"], "Nova Test Guest 1.0", "{os}");
        assert_eq!(os["version-id"], "1.0", "{os}");
        assert_eq!(os["kernel-release"], kernel.release.as_str(), "{os}");
        assert_eq!(os["machine"], "x86_64", "{os}");
    }
    if has("guest-get-host-name") {
        let name = ok(host, vm, "guest-get-host-name", None);
        assert_eq!(name, json!({ "host-name": GUEST_HOST_NAME }));
    }
    if has("guest-network-get-interfaces") {
        check_interfaces(&ok(host, vm, "guest-network-get-interfaces", None));
    }
    if has("guest-get-time") {
        let time = ok(host, vm, "guest-get-time", None);
        let guest = time
            .as_i64()
            .unwrap_or_else(|| panic!("not an integer: {time}"));
        // The guest's clock comes from the emulated RTC, set from this
        // machine's clock at boot; this checks the unit (ns), not timing.
        let apart = (guest - epoch_ns()).abs();
        assert!(
            apart < 600_000_000_000,
            "guest time {guest} is not ns since 1970"
        );
    }
    if has("guest-get-timezone") {
        // No /etc/localtime in the guest: UTC.
        let zone = ok(host, vm, "guest-get-timezone", None);
        assert_eq!(zone["offset"], 0, "{zone}");
    }
    if has("guest-get-users") {
        assert_eq!(ok(host, vm, "guest-get-users", None), json!([]));
    }
    if has("guest-get-vcpus") {
        let vcpus = ok(host, vm, "guest-get-vcpus", None);
        let ids: Vec<&Value> = vcpus
            .as_array()
            .unwrap_or_else(|| panic!("{vcpus}"))
            .iter()
            .map(|v| &v["logical-id"])
            .collect();
        assert_eq!(ids, [&json!(0)], "one vCPU: {vcpus}");
        assert_eq!(vcpus[0]["online"], true, "{vcpus}");
    }
    if has("guest-fsfreeze-status") {
        assert_eq!(ok(host, vm, "guest-fsfreeze-status", None), "thawed");
    }
    if has("guest-get-fsinfo") {
        let fs = ok(host, vm, "guest-get-fsinfo", None);
        for entry in fs.as_array().unwrap_or_else(|| panic!("{fs}")) {
            for key in ["name", "mountpoint", "type"] {
                assert!(entry[key].is_string(), "{key} in {entry}");
            }
            assert!(entry["disk"].is_array(), "disk in {entry}");
        }
    }
    if has("guest-get-load") {
        let load = ok(host, vm, "guest-get-load", None);
        for key in ["load1m", "load5m", "load15m"] {
            assert!(load[key].is_number(), "{key} in {load}");
        }
    }
}

/// libvirt's required fields, the dummy eth0 with its `eth0:1` alias folded
/// in, and the loopback.
fn check_interfaces(list: &Value) {
    let interfaces = list.as_array().unwrap_or_else(|| panic!("{list}"));
    for interface in interfaces {
        assert!(interface["name"].is_string(), "{interface}");
        for address in interface["ip-addresses"].as_array().into_iter().flatten() {
            let kind = address["ip-address-type"].as_str().unwrap_or_default();
            assert!(kind == "ipv4" || kind == "ipv6", "{address}");
            assert!(address["ip-address"].is_string(), "{address}");
            assert!(address["prefix"].is_u64(), "{address}");
        }
    }
    let named = |name: &str| interfaces.iter().find(|i| i["name"] == name);
    assert!(named("eth0:1").is_none(), "eth0:1 not folded: {list}");
    let eth0 = named("eth0").unwrap_or_else(|| panic!("no eth0: {list}"));
    assert_eq!(eth0["hardware-address"], GUEST_ETH0_MAC, "{eth0}");
    let v4: Vec<(&Value, &Value)> = eth0["ip-addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("eth0 without addresses: {eth0}"))
        .iter()
        .filter(|a| a["ip-address-type"] == "ipv4")
        .map(|a| (&a["ip-address"], &a["prefix"]))
        .collect();
    assert_eq!(
        v4,
        [
            (&json!("192.0.2.10"), &json!(24)),
            (&json!("192.0.2.11"), &json!(24))
        ],
        "{eth0}"
    );
    let lo = named("lo").unwrap_or_else(|| panic!("no lo: {list}"));
    let lo_has = |ip: &str, prefix: u64| {
        lo["ip-addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["ip-address"] == ip && a["prefix"] == prefix)
    };
    assert!(lo_has("127.0.0.1", 8), "{lo}");
}

#[test]
fn libvirt_reaches_the_agent_in_a_vm_over_virtio_serial_and_again_after_reconnecting() {
    let Some((vm, kernel)) = boot_guest() else {
        return;
    };

    let mut first = LibvirtAgent::connect(&vm.qga_socket).unwrap();
    let synced = first
        .sync()
        .unwrap_or_else(|e| panic!("{e}; guest output:\n{}", vm.output()));
    assert!(synced.skipped.is_empty(), "{synced:?}");
    read_only_commands(&mut first, &vm, &kernel);

    // The first host leaves in the middle of a long answer (a 6 MiB read
    // of /dev/zero, 8 MiB of base64), with half an object sent after its
    // request. qemu-ga would keep the half object and swallow the next
    // host's first request with it (reference §1.7, T-stale).
    let file = ok(
        &mut first,
        &vm,
        "guest-file-open",
        Some(json!({"path": "/dev/zero"})),
    );
    let read =
        json!({"execute": "guest-file-read", "arguments": {"handle": file, "count": 6 << 20}});
    let half = r#"{"execute":"guest-sync","arguments":{"id":1},"id":"old-half""#;
    first
        .send_raw(format!("{read}\n{half}").as_bytes())
        .unwrap();
    first
        .wait_for_bytes(64 << 10, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("the long answer: {e}; guest output:\n{}", vm.output()));
    drop(first);
    // The guest must see the host gone before a new host attaches, or the
    // two would be one session to it (virtio only reports the state).
    vm.wait_for(HOST_GONE, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));

    let mut second = LibvirtAgent::connect(&vm.qga_socket).unwrap();
    let synced = second.sync().unwrap_or_else(|e| {
        panic!(
            "the second host's sync: {e}; guest output:\n{}",
            vm.output()
        )
    });
    // No answer of the first host's reaches the second. Bytes the guest had
    // already handed to the virtio queue when the host left are QEMU's to
    // deliver: it holds them while its chardev is throttled and flushes them
    // to the next connection. Those can only be a piece of the long answer
    // (base64 of zeros), which the agent ends with a newline of its own
    // before its next answer: one line that is not JSON (blank when QEMU
    // had nothing left), which libvirt passes over on a connection's first
    // sync. The sync is answered at the first try.
    assert!(
        synced.skipped.is_empty() && synced.attempts == 1,
        "the second host's sync was not answered first: {synced:?}"
    );
    assert!(synced.garbage.len() <= 1, "{:?}", synced.garbage.len());
    for line in &synced.garbage {
        let text = String::from_utf8_lossy(line);
        let head = &text[..text.find('"').unwrap_or(text.len())].trim_end();
        assert!(
            head.bytes().all(|b| b == b'A'),
            "unexpected garbage before the second host's sync: {}",
            &text[..text.len().min(200)]
        );
    }
    read_only_commands(&mut second, &vm, &kernel);
    let last = ok(&mut second, &vm, "guest-sync", Some(json!({"id": 7})));
    assert_eq!(last, 7);
    // libvirt sends no id: any id seen here came from the first host.
    let stale: Vec<&Value> = second
        .received
        .iter()
        .filter(|line| line.get("id").is_some())
        .collect();
    assert!(
        stale.is_empty(),
        "the first host's answers reached the second: {stale:?}"
    );
}
