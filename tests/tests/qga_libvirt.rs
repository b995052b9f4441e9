//! nova-agent's QGA side driven by a client that behaves as libvirt's agent
//! client does (reference/qga-protocol.md §2.1, libvirt 11.3
//! `src/qemu/qemu_agent.c`): replies split on `\n`, any line that is not a
//! JSON object is a failure (except during the very first sync), a
//! `guest-sync` with an epoch-milliseconds id before the first command,
//! stale replies skipped while syncing, and every command in libvirt's exact
//! wire form: compact JSON, members in libvirt's order, no `id`, `arguments`
//! left out when there are none.
//!
//! Every command of §2.2 and §2.3 that libvirt or Nova sends, against ours
//! only (the mutating ones never go to qemu-ga), in a sandbox root with
//! `apply = false`; each return is checked for the members libvirt requires.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nova_agent_tests::password_host::crypt_verifies;
use nova_agent_tests::qga::{qga_sandbox, Ours, Peer};
use serde_json::Value;

/// libvirt's sync timeout (`QEMU_AGENT_WAIT_TIME`).
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// libvirt's agent connection, as `qemuAgent` keeps it.
struct Libvirt {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    in_sync: bool,
    synced_once: bool,
    /// Every line received, for failure messages.
    transcript: Vec<String>,
}

/// What libvirt does with one line (`qemuAgentIOProcessLine`).
enum Line {
    Reply(Value),
    Ignored,
}

impl Libvirt {
    fn connect(peer: &dyn Peer) -> Libvirt {
        let stream = UnixStream::connect(peer.socket()).expect("connecting to the agent");
        Libvirt {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            in_sync: false,
            synced_once: false,
            transcript: Vec::new(),
        }
    }

    fn write(&mut self, command: &str) {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .expect("writing to the agent");
    }

    fn line(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        self.writer.set_read_timeout(Some(timeout)).unwrap();
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(_) if line.ends_with(b"\n") => {
                line.pop();
                self.transcript
                    .push(String::from_utf8_lossy(&line).into_owned());
                Ok(line)
            }
            Ok(_) => Err("End of file from agent socket".to_owned()),
            Err(e) => Err(format!("guest agent didn't respond: {e}")),
        }
    }

    fn process(&self, line: &[u8], first_sync: bool) -> Result<Line, String> {
        let json: Value = match serde_json::from_slice(line) {
            Ok(json) => json,
            Err(_) if first_sync => return Ok(Line::Ignored),
            Err(e) => return Err(format!("cannot parse agent reply {line:?}: {e}")),
        };
        let Some(object) = json.as_object() else {
            return Err(format!("Parsed JSON reply '{json}' isn't an object"));
        };
        if object.contains_key("QMP") || object.contains_key("event") {
            return Ok(Line::Ignored);
        }
        if object.contains_key("return") || object.contains_key("error") {
            return Ok(Line::Reply(json));
        }
        Err(format!("Unknown JSON reply '{json}'"))
    }

    /// `qemuAgentGuestSync`: one try, then a second on garbage or silence.
    fn sync(&mut self) -> Result<(), String> {
        let first_sync = !self.synced_once;
        let id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        for attempt in 0..2 {
            self.write(&format!(
                "{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}"
            ));
            let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                let line = match self.line(left) {
                    Ok(line) => line,
                    Err(_) if attempt == 0 => break,
                    Err(e) => return Err(e),
                };
                match self.process(&line, first_sync)? {
                    Line::Reply(reply) if reply["return"].as_u64() == Some(id) => {
                        self.in_sync = true;
                        self.synced_once = true;
                        return Ok(());
                    }
                    // "Ignoring delayed reply on sync"
                    Line::Reply(_) | Line::Ignored => {}
                }
            }
        }
        Err(format!(
            "guest agent didn't respond to synchronization within '5' seconds; got {:?}",
            self.transcript
        ))
    }

    /// `qemuAgentCommand`: sync when not in sync, send, wait for the reply.
    fn command(&mut self, command: &str) -> Result<Value, String> {
        if !self.in_sync {
            self.sync()?;
        }
        self.write(command);
        loop {
            let line = self.line(Duration::from_secs(30))?;
            if let Line::Reply(reply) = self.process(&line, false)? {
                if let Some(error) = reply.get("error") {
                    return Err(format!(
                        "unable to execute QEMU agent command '{}': {}",
                        name_of(command),
                        error["desc"].as_str().unwrap_or("")
                    ));
                }
                return Ok(reply["return"].clone());
            }
        }
    }

    /// A command with `success-response: false`: libvirt waits for QEMU's
    /// SHUTDOWN event, not for the agent.
    fn command_no_reply(&mut self, command: &str) -> Result<(), String> {
        if !self.in_sync {
            self.sync()?;
        }
        self.write(command);
        Ok(())
    }
}

fn name_of(command: &str) -> String {
    let json: Value = serde_json::from_str(command).unwrap();
    json["execute"].as_str().unwrap().to_owned()
}

const SHADOW_REST: &str =
    "daemon:*:19000:0:99999:7:::\nalice:$6$oldsalt$oldhash:19000:0:99999:7:::\n";

fn guest() -> Ours {
    let sandbox = qga_sandbox(&[], "");
    let root = &sandbox.root;
    for dir in ["etc", "root", "home/alice"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n\
         daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         alice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/shadow"),
        format!("root:$6$rootsalt$roothash:19000:0:99999:7:::\n{SHADOW_REST}"),
    )
    .unwrap();
    if nova_agent_tests::running_as_root() {
        std::os::unix::fs::chown(root.join("home/alice"), Some(1000), Some(1000)).unwrap();
    }
    let os_release = std::path::Path::new("/etc/os-release");
    if os_release.exists() {
        std::fs::copy(os_release, root.join("etc/os-release")).unwrap();
    }
    Ours::serve(sandbox)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn is_uint(v: &Value) -> bool {
    v.is_u64()
}

/// libvirt's `qemuAgentGetOneAddress` / `qemuAgentGetFSInfoFillDisks`
/// requirements for a disk address.
fn check_disk_address(address: &Value) {
    for key in ["bus", "target", "unit"] {
        assert!(address[key].is_u64(), "address.{key}: {address}");
    }
    let pci = &address["pci-controller"];
    for key in ["domain", "bus", "slot", "function"] {
        assert!(pci[key].is_u64(), "pci-controller.{key}: {address}");
    }
    for key in ["bus-type", "serial", "dev"] {
        assert!(
            address.get(key).is_none_or(Value::is_string),
            "{key}: {address}"
        );
    }
}

#[test]
fn libvirt_reads_every_guestinfo_and_domifaddr_answer() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);

    let osinfo = libvirt
        .command(r#"{"execute":"guest-get-osinfo"}"#)
        .unwrap();
    for (key, value) in osinfo.as_object().expect("osinfo is an object") {
        assert!(value.is_string(), "{key}: {value}");
    }
    assert!(osinfo["kernel-release"].is_string(), "{osinfo}");

    let host = libvirt
        .command(r#"{"execute":"guest-get-host-name"}"#)
        .unwrap();
    assert!(host["host-name"].is_string(), "{host}");

    let time = libvirt.command(r#"{"execute":"guest-get-time"}"#).unwrap();
    assert!(
        time.as_u64()
            .is_some_and(|ns| ns > 1_600_000_000 * 1_000_000_000),
        "{time}"
    );

    let timezone = libvirt
        .command(r#"{"execute":"guest-get-timezone"}"#)
        .unwrap();
    assert!(timezone["offset"].is_i64(), "{timezone}");
    assert!(
        timezone.get("zone").is_none_or(Value::is_string),
        "{timezone}"
    );

    let users = libvirt.command(r#"{"execute":"guest-get-users"}"#).unwrap();
    for user in users.as_array().expect("users is an array") {
        assert!(
            user["user"].is_string() && user["login-time"].is_number(),
            "{user}"
        );
        assert!(user.get("domain").is_none_or(Value::is_string), "{user}");
    }

    let interfaces = libvirt
        .command(r#"{"execute":"guest-network-get-interfaces"}"#)
        .unwrap();
    let interfaces = interfaces.as_array().expect("interfaces is an array");
    assert!(
        interfaces.iter().any(|i| i["name"] == "lo"),
        "{interfaces:?}"
    );
    for interface in interfaces {
        assert!(interface["name"].is_string(), "{interface}");
        assert!(
            !interface["name"].as_str().unwrap().contains(':'),
            "aliases fold: {interface}"
        );
        assert!(interface
            .get("hardware-address")
            .is_none_or(Value::is_string));
        for address in interface
            .get("ip-addresses")
            .map_or(&[][..], |a| a.as_array().unwrap())
        {
            let kind = address["ip-address-type"].as_str();
            assert!(matches!(kind, Some("ipv4" | "ipv6")), "{address}");
            assert!(
                address["ip-address"].is_string() && is_uint(&address["prefix"]),
                "{address}"
            );
        }
    }

    let filesystems = libvirt
        .command(r#"{"execute":"guest-get-fsinfo"}"#)
        .unwrap();
    for fs in filesystems.as_array().expect("fsinfo is an array") {
        for key in ["name", "mountpoint", "type"] {
            assert!(fs[key].is_string(), "{key}: {fs}");
        }
        for key in ["used-bytes", "total-bytes"] {
            assert!(fs.get(key).is_none_or(is_uint), "{key}: {fs}");
        }
        fs["disk"]
            .as_array()
            .expect("disk is an array")
            .iter()
            .for_each(check_disk_address);
    }

    let disks = libvirt.command(r#"{"execute":"guest-get-disks"}"#).unwrap();
    for disk in disks.as_array().expect("disks is an array") {
        assert!(
            disk["name"].is_string() && disk["partition"].is_boolean(),
            "{disk}"
        );
        if let Some(dependencies) = disk.get("dependencies") {
            assert!(
                dependencies
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(Value::is_string),
                "{disk}"
            );
        }
        disk.get("address").into_iter().for_each(check_disk_address);
    }

    let vcpus = libvirt.command(r#"{"execute":"guest-get-vcpus"}"#).unwrap();
    let vcpus = vcpus.as_array().expect("vcpus is an array");
    assert!(!vcpus.is_empty());
    for vcpu in vcpus {
        assert!(
            vcpu["logical-id"].is_u64() && vcpu["online"].is_boolean(),
            "{vcpu}"
        );
        assert!(
            vcpu.get("can-offline").is_none_or(Value::is_boolean),
            "{vcpu}"
        );
    }

    let load = libvirt.command(r#"{"execute":"guest-get-load"}"#).unwrap();
    for key in ["load1m", "load5m", "load15m"] {
        assert!(load[key].is_number(), "{load}");
    }
    // One sync for the whole session (libvirt syncs only when not in sync),
    // and not one line from the agent beyond the ten replies.
    assert_eq!(libvirt.transcript.len(), 11, "{:?}", libvirt.transcript);
}

#[test]
fn libvirt_syncs_skipping_stale_replies_and_fails_on_a_non_object_line() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);
    // A reply to an earlier request that libvirt gave up on, still on the
    // wire: the sync skips it.
    libvirt.write(r#"{"execute":"guest-sync","arguments":{"id":1}}"#);
    libvirt.write(r#"{"execute":"guest-ping"}"#);
    libvirt.sync().unwrap();
    assert_eq!(libvirt.transcript.len(), 3, "{:?}", libvirt.transcript);
    assert_eq!(
        libvirt.command(r#"{"execute":"guest-ping"}"#).unwrap(),
        serde_json::json!({})
    );
    // The agent itself never writes a line that is not an object; libvirt's
    // rule, checked on what a broken agent would send:
    assert!(libvirt.process(b"", false).is_err());
    assert!(libvirt.process(b"[1]", false).is_err());
    assert!(libvirt.process(b"{\"hello\": 1}", false).is_err());
    assert!(libvirt.process(b"{\"return\": {}}", false).is_ok());
    // A second connection (libvirt reconnects after the guest reopens the
    // port) starts with a sync of its own.
    drop(libvirt);
    let mut again = Libvirt::connect(&guest);
    assert!(again
        .command(r#"{"execute":"guest-get-host-name"}"#)
        .unwrap()["host-name"]
        .is_string());
    assert_eq!(again.transcript.len(), 2, "{:?}", again.transcript);
}

#[test]
fn nova_set_password_as_libvirt_sends_it_sets_the_shadow_hash() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);
    let password = "Nova set-password pässword 42";
    let command = format!(
        "{{\"execute\":\"guest-set-user-password\",\"arguments\":{{\"crypted\":false,\"username\":\"alice\",\"password\":\"{}\"}}}}",
        base64(password.as_bytes())
    );
    assert!(libvirt.command(&command).unwrap().is_object());
    let shadow = std::fs::read_to_string(guest.sandbox.root.join("etc/shadow")).unwrap();
    let alice = shadow.lines().find(|l| l.starts_with("alice:")).unwrap();
    let hash = alice.split(':').nth(1).unwrap();
    assert!(
        hash.starts_with("$6$") && crypt_verifies(password, hash),
        "{alice}"
    );
    assert!(shadow.starts_with("root:$6$rootsalt$roothash:19000:0:99999:7:::\ndaemon:*:19000"));
    assert!(
        !guest.agent.log().contains(password),
        "the password reached the log"
    );
}

#[test]
fn quiesce_and_time_sync_as_nova_and_libvirt_send_them() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);
    let frozen = libvirt
        .command(r#"{"execute":"guest-fsfreeze-freeze"}"#)
        .unwrap();
    assert!(frozen.is_i64(), "{frozen}");
    assert_eq!(
        libvirt
            .command(r#"{"execute":"guest-fsfreeze-status"}"#)
            .unwrap(),
        "frozen"
    );
    let error = libvirt
        .command(r#"{"execute":"guest-get-time"}"#)
        .unwrap_err();
    assert!(error.contains("the agent is in frozen state"), "{error}");
    let thawed = libvirt
        .command(r#"{"execute":"guest-fsfreeze-thaw"}"#)
        .unwrap();
    assert!(thawed.is_i64(), "{thawed}");
    assert_eq!(
        libvirt
            .command(r#"{"execute":"guest-fsfreeze-status"}"#)
            .unwrap(),
        "thawed"
    );

    let mountpoints = libvirt
        .command(r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/"]}}"#)
        .unwrap();
    assert!(mountpoints.is_i64(), "{mountpoints}");
    assert!(libvirt
        .command(r#"{"execute":"guest-fsfreeze-thaw"}"#)
        .unwrap()
        .is_i64());

    // virDomainSetTime: with a time (Nova), and with --sync (no arguments).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let set = libvirt
        .command(&format!(
            r#"{{"execute":"guest-set-time","arguments":{{"time":{now}}}}}"#
        ))
        .unwrap();
    assert!(set.is_object(), "{set}");
    assert!(libvirt
        .command(r#"{"execute":"guest-set-time"}"#)
        .unwrap()
        .is_object());
    guest
        .agent
        .wait_for_logged("not running (apply = false)", 2);
}

#[test]
fn set_user_sshkeys_as_virsh_sends_them() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);
    let add = |libvirt: &mut Libvirt, keys: &str, reset: bool| {
        libvirt
            .command(&format!(
                r#"{{"execute":"guest-ssh-add-authorized-keys","arguments":{{"username":"alice","keys":[{keys}],"reset":{reset}}}}}"#
            ))
            .unwrap()
    };
    let get = |libvirt: &mut Libvirt| {
        libvirt
            .command(
                r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}}"#,
            )
            .unwrap()["keys"]
            .clone()
    };
    add(
        &mut libvirt,
        r#""ssh-ed25519 AAAAC3one alice@a","ssh-rsa AAAAB3two alice@b""#,
        false,
    );
    // qemu-ga lists the file's keys last line first (QAPI_LIST_PREPEND).
    assert_eq!(
        get(&mut libvirt),
        serde_json::json!(["ssh-rsa AAAAB3two alice@b", "ssh-ed25519 AAAAC3one alice@a"])
    );
    let file = guest.sandbox.root.join("home/alice/.ssh/authorized_keys");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "ssh-ed25519 AAAAC3one alice@a\nssh-rsa AAAAB3two alice@b\n"
    );
    libvirt
        .command(r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["ssh-ed25519 AAAAC3one alice@a"]}}"#)
        .unwrap();
    assert_eq!(
        get(&mut libvirt),
        serde_json::json!(["ssh-rsa AAAAB3two alice@b"])
    );
    add(&mut libvirt, r#""ssh-ed25519 AAAAC3three alice@c""#, true);
    assert_eq!(
        get(&mut libvirt),
        serde_json::json!(["ssh-ed25519 AAAAC3three alice@c"])
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "ssh-ed25519 AAAAC3three alice@c\n"
    );
    if nova_agent_tests::running_as_root() {
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), 1000);
    }
}

#[test]
fn shutdown_by_agent_gets_no_reply_and_the_next_command_is_served() {
    let guest = guest();
    let mut libvirt = Libvirt::connect(&guest);
    libvirt
        .command_no_reply(r#"{"execute":"guest-shutdown","arguments":{"mode":"powerdown"}}"#)
        .unwrap();
    // libvirt would now wait for QEMU's SHUTDOWN event; the next line on the
    // wire must be the next command's reply, not one for the shutdown.
    assert_eq!(
        libvirt.command(r#"{"execute":"guest-ping"}"#).unwrap(),
        serde_json::json!({})
    );
    assert_eq!(libvirt.transcript.len(), 2, "{:?}", libvirt.transcript);
    guest.agent.wait_for_log("not running (apply = false)");
}
