//! The freeze commands, the gate and `thaw_after`, driven as the agent
//! drives them (TestAgent, `apply = false`), over a crafted mount table and
//! a scripted ioctl layer: no test issues a real FIFREEZE, FITHAW or FITRIM.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{ErrorKind, Host, Outcome};
use nova_agent_support::sync::lock;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::freeze::{overdue_message, Freezer, GATE};
use crate::mounts::{Mount, Paths};
use crate::ops::{DryRun, Failure, Filesystems, Trimmed};

thread_local! {
    static SYSTEM: RefCell<Option<(Paths, Arc<dyn Filesystems>)>> = const { RefCell::new(None) };
}

/// What the next `init` on this thread uses instead of the live system.
pub(crate) fn take_system() -> Option<(Paths, Arc<dyn Filesystems>)> {
    SYSTEM.with(|system| system.borrow_mut().take())
}

/// A guest: a temporary tree holding `proc/self/mountinfo`.
pub(crate) struct Guest {
    pub(crate) dir: TempDir,
    pub(crate) paths: Paths,
}

impl Guest {
    pub(crate) fn new(mountinfo: &str) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        fs::create_dir_all(paths.mountinfo.parent().unwrap()).unwrap();
        fs::write(&paths.mountinfo, mountinfo).unwrap();
        Guest { dir, paths }
    }

    /// The plugin loaded on this guest with `ops` and `config`.
    pub(crate) fn agent(&self, ops: Arc<dyn Filesystems>, config: Value) -> TestAgent {
        SYSTEM.with(|system| *system.borrow_mut() = Some((self.paths.clone(), ops)));
        let root = self.dir.path().to_str().unwrap();
        TestAgent::new(TestHost::new(root))
            .with_plugin(crate::init, config)
            .unwrap()
    }
}

/// `/`, `/srv` on it, `/srv/data` on that; tmpfs and proc left out.
const THREE: &str = "\
22 27 0:21 / /proc rw - proc proc rw
27 1 8:1 / / rw - ext4 /dev/sda1 rw
28 27 8:2 / /srv rw - ext4 /dev/sda2 rw
29 27 0:30 / /run rw - tmpfs tmpfs rw
30 28 8:3 / /srv/data rw - xfs /dev/sda3 rw
";

/// The ioctl layer as a test scripts it: FIFREEZE fails where told to,
/// otherwise stacks a freeze; FITHAW undoes every stacked freeze. Every
/// call is recorded, with whether the gate was closed when it came.
#[derive(Default)]
pub(crate) struct Scripted {
    failures: Mutex<HashMap<String, Failure>>,
    frozen: Mutex<HashMap<String, u32>>,
    calls: Mutex<Vec<String>>,
    host: Mutex<Option<Host>>,
    gate_at_freeze: Mutex<Vec<bool>>,
}

impl Scripted {
    pub(crate) fn new() -> Arc<Scripted> {
        Arc::default()
    }

    pub(crate) fn fail(&self, mountpoint: &str, failure: Failure) {
        lock(&self.failures).insert(mountpoint.into(), failure);
    }

    fn watch_gate(&self, host: Host) {
        *lock(&self.host) = Some(host);
    }

    fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

impl Filesystems for Scripted {
    fn freeze(&self, mount: &Mount) -> Result<(), Failure> {
        let dir = mount.shown();
        lock(&self.calls).push(format!("FIFREEZE {dir}"));
        if let Some(host) = lock(&self.host).as_ref() {
            lock(&self.gate_at_freeze).push(host.gate_closed(GATE));
        }
        if let Some(failure) = lock(&self.failures).get(&dir) {
            return Err(*failure);
        }
        *lock(&self.frozen).entry(dir).or_default() += 1;
        Ok(())
    }

    fn thaw(&self, mount: &Mount) -> Result<u32, Failure> {
        let dir = mount.shown();
        lock(&self.calls).push(format!("FITHAW {dir}"));
        Ok(lock(&self.frozen).remove(&dir).unwrap_or(0))
    }

    fn trim(&self, mount: &Mount, minimum: u64) -> Result<Trimmed, Failure> {
        lock(&self.calls).push(format!("FITRIM {}", mount.shown()));
        match lock(&self.failures).get(&mount.shown()) {
            Some(failure) => Err(*failure),
            None => Ok(Trimmed {
                bytes: 4096,
                minimum,
            }),
        }
    }
}

pub(crate) fn value(outcome: Outcome) -> Value {
    match outcome.result {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(e) => panic!("expected a value, got {e:?}"),
    }
}

pub(crate) fn error(outcome: Outcome) -> (ErrorKind, String) {
    let e = outcome.result.unwrap_err();
    (e.kind, e.message)
}

fn status(agent: &TestAgent) -> Value {
    value(agent.run("guest-fsfreeze-status", "{}"))
}

fn off() -> Value {
    json!({"thaw_after": "off"})
}

/// Waits, with a deadline far beyond any slow machine, for `done`.
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn freeze_goes_in_reverse_mount_order_and_thaw_in_mount_order() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let agent = guest.agent(ops.clone(), off());
    assert_eq!(status(&agent), json!("thawed"));
    assert_eq!(value(agent.run("guest-fsfreeze-freeze", "{}")), json!(3));
    assert_eq!(
        ops.calls(),
        ["FIFREEZE /srv/data", "FIFREEZE /srv", "FIFREEZE /"]
    );
    assert_eq!(status(&agent), json!("frozen"));
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(3));
    assert_eq!(
        ops.calls()[3..],
        ["FITHAW /", "FITHAW /srv", "FITHAW /srv/data"]
    );
    assert_eq!(status(&agent), json!("thawed"));
}

#[test]
fn the_gate_closes_before_the_first_fifreeze_and_holds_other_commands() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let agent = guest.agent(ops.clone(), off());
    ops.watch_gate(agent.host());
    value(agent.run("guest-fsfreeze-freeze", "{}"));
    assert_eq!(*lock(&ops.gate_at_freeze), [true, true, true]);
    assert!(agent.host().gate_closed("frozen"));
    for held in ["guest-get-fsinfo", "guest-fstrim", "guest-fsfreeze-freeze"] {
        assert_eq!(
            error(agent.run(held, "{}")),
            (ErrorKind::Disabled, "the agent is in frozen state".into()),
            "{held}"
        );
    }
    assert_eq!(status(&agent), json!("frozen"));
    value(agent.run("guest-fsfreeze-thaw", "{}"));
    assert!(!agent.host().gate_closed("frozen"));
    value(agent.run("guest-get-fsinfo", "{}"));
}

#[test]
fn the_gate_lets_the_six_commands_of_rule_12_through() {
    let gate = crate::freeze::gate();
    assert_eq!(gate.name, "frozen");
    assert_eq!(gate.reason, "the agent is in frozen state");
    let mut allowed = gate.allow.clone();
    allowed.sort();
    assert_eq!(
        allowed,
        [
            "guest-fsfreeze-status",
            "guest-fsfreeze-thaw",
            "guest-info",
            "guest-ping",
            "guest-sync",
            "guest-sync-delimited"
        ]
    );
}

#[test]
fn eopnotsupp_and_ebusy_are_skipped_and_not_counted() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    ops.fail("/srv", Failure::Ioctl(Errno::EOPNOTSUPP));
    ops.fail("/srv/data", Failure::Ioctl(Errno::EBUSY));
    let agent = guest.agent(ops.clone(), off());
    assert_eq!(value(agent.run("guest-fsfreeze-freeze", "{}")), json!(1));
    assert_eq!(ops.calls().len(), 3);
    assert_eq!(status(&agent), json!("frozen"));
}

#[test]
fn any_other_error_thaws_everything_and_fails_with_qemu_gas_words() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    ops.fail("/srv", Failure::Ioctl(Errno::EPERM));
    let agent = guest.agent(ops.clone(), off());
    assert_eq!(
        error(agent.run("guest-fsfreeze-freeze", "{}")),
        (
            ErrorKind::Failed,
            "failed to freeze /srv: Operation not permitted".into()
        )
    );
    // /srv/data froze, /srv failed, / was never tried; then all thawed.
    assert_eq!(
        ops.calls(),
        [
            "FIFREEZE /srv/data",
            "FIFREEZE /srv",
            "FITHAW /",
            "FITHAW /srv",
            "FITHAW /srv/data"
        ]
    );
    assert!(lock(&ops.frozen).is_empty());
    assert_eq!(status(&agent), json!("thawed"));

    ops.fail("/srv", Failure::Open(Errno::ENOENT));
    assert_eq!(
        error(agent.run("guest-fsfreeze-freeze", "{}")).1,
        "failed to open /srv: No such file or directory"
    );
    assert_eq!(status(&agent), json!("thawed"));
}

#[test]
fn nothing_frozen_leaves_the_agent_thawed() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    for dir in ["/", "/srv", "/srv/data"] {
        ops.fail(dir, Failure::Ioctl(Errno::EOPNOTSUPP));
    }
    let agent = guest.agent(ops.clone(), off());
    assert_eq!(value(agent.run("guest-fsfreeze-freeze", "{}")), json!(0));
    assert_eq!(status(&agent), json!("thawed"));
    let none = r#"{"mountpoints":[]}"#;
    assert_eq!(
        value(agent.run("guest-fsfreeze-freeze-list", none)),
        json!(0)
    );
    assert_eq!(status(&agent), json!("thawed"));
}

#[test]
fn freeze_list_freezes_exactly_the_mount_points_named() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let agent = guest.agent(ops.clone(), off());
    let list = r#"{"mountpoints":["/srv/data/","/srv","/nowhere","srv/data"]}"#;
    assert_eq!(
        value(agent.run("guest-fsfreeze-freeze-list", list)),
        json!(1)
    );
    assert_eq!(ops.calls(), ["FIFREEZE /srv"]);
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(1));
    // Without the member it is guest-fsfreeze-freeze.
    assert_eq!(
        value(agent.run("guest-fsfreeze-freeze-list", "{}")),
        json!(3)
    );
}

#[test]
fn thaw_counts_a_mount_once_however_many_freezes_it_undoes() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    lock(&ops.frozen).insert("/srv".into(), 3);
    let agent = guest.agent(ops.clone(), off());
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(1));
    // Thawing what is not frozen is no error: 0.
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(0));
}

#[test]
fn arguments_are_checked_as_qemu_checks_them() {
    let guest = Guest::new(THREE);
    let agent = guest.agent(Scripted::new(), off());
    let cases = [
        (
            "guest-fsfreeze-status",
            r#"{"x":1}"#,
            "Parameter 'x' is unexpected",
        ),
        (
            "guest-fsfreeze-freeze",
            r#"{"a":1}"#,
            "Parameter 'a' is unexpected",
        ),
        (
            "guest-fsfreeze-thaw",
            r#"{"a":1}"#,
            "Parameter 'a' is unexpected",
        ),
        (
            "guest-get-fsinfo",
            r#"{"bogus":true}"#,
            "Parameter 'bogus' is unexpected",
        ),
        (
            "guest-get-disks",
            r#"{"a":1}"#,
            "Parameter 'a' is unexpected",
        ),
        (
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":"x"}"#,
            "Invalid parameter type for 'mountpoints', expected: array",
        ),
        (
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":[1]}"#,
            "Invalid parameter type for 'mountpoints[0]', expected: string",
        ),
        (
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":null}"#,
            "Invalid parameter type for 'mountpoints', expected: array",
        ),
        (
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":["/x"],"y":1}"#,
            "Parameter 'y' is unexpected",
        ),
        (
            "guest-fstrim",
            r#"{"minimum":1.5}"#,
            "Invalid parameter type for 'minimum', expected: integer",
        ),
        (
            "guest-fstrim",
            r#"{"minimum":1,"z":2}"#,
            "Parameter 'z' is unexpected",
        ),
    ];
    for (command, arguments, message) in cases {
        assert_eq!(
            error(agent.run(command, arguments)),
            (ErrorKind::BadArguments, message.to_owned()),
            "{command} {arguments}"
        );
    }
    assert_eq!(
        status(&agent),
        json!("thawed"),
        "no bad call froze anything"
    );
}

#[test]
fn with_apply_false_a_freeze_is_logged_counted_and_still_gates() {
    // / and a bind mount of the same filesystem: one freeze, as the kernel.
    let guest = Guest::new(
        "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
         28 27 8:1 /srv /mnt/bind rw - ext4 /dev/sda1 rw\n\
         29 27 8:2 / /srv rw - ext4 /dev/sda2 rw\n",
    );
    let agent = guest.agent(Arc::new(DryRun::default()), off());
    let log = nova_agent_support::testing::captured_log(|| {
        assert_eq!(value(agent.run("guest-fsfreeze-freeze", "{}")), json!(2));
    });
    assert!(
        log.contains("not issuing FIFREEZE on /srv (apply = false)"),
        "{log}"
    );
    assert!(log.contains("not issuing FIFREEZE on /mnt/bind"), "{log}");
    assert!(
        !log.contains("FIFREEZE on / "),
        "/ is the bind mount's filesystem: {log}"
    );
    assert_eq!(status(&agent), json!("frozen"));
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(2));
    assert_eq!(status(&agent), json!("thawed"));
}

#[test]
fn status_reads_the_gate_the_agent_keeps() {
    let guest = Guest::new(THREE);
    let agent = guest.agent(Scripted::new(), off());
    // As an agent restarted while frozen restores it.
    agent.host().set_gate("frozen", true).unwrap();
    assert_eq!(status(&agent), json!("frozen"));
    assert_eq!(value(agent.run("guest-fsfreeze-thaw", "{}")), json!(0));
    assert_eq!(status(&agent), json!("thawed"));
}

#[test]
fn thaw_after_thaws_a_freeze_the_host_forgot() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let agent = guest.agent(ops.clone(), json!({"thaw_after": "20ms"}));
    assert_eq!(value(agent.run("guest-fsfreeze-freeze", "{}")), json!(3));
    wait_for("the thaw", || !agent.host().gate_closed("frozen"));
    assert_eq!(
        ops.calls()
            .iter()
            .filter(|c| c.starts_with("FITHAW"))
            .count(),
        3
    );
    assert!(lock(&ops.frozen).is_empty());
}

#[test]
fn a_host_that_thaws_in_time_gets_no_second_thaw() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let host = {
        let agent = guest.agent(ops.clone(), off());
        agent.host()
    };
    let freezer = Freezer::new(
        host.clone(),
        guest.paths.clone(),
        ops.clone(),
        Some(Duration::from_millis(20)),
    );
    assert_eq!(freezer.freeze(None).unwrap(), 3);
    assert_eq!(freezer.thaw().unwrap(), 3);
    wait_for("the countdown to end", || !freezer.watchdog_running());
    assert_eq!(ops.calls().len(), 6, "{:?}", ops.calls());
    freezer.shutdown();
}

#[test]
fn an_agent_restarted_frozen_is_thawed_after_thaw_after() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let first = guest.agent(ops.clone(), off());
    // The agent restores the closed gate; the new instance's init arms.
    first.host().set_gate("frozen", true).unwrap();
    let scripted: Arc<dyn Filesystems> = ops.clone();
    SYSTEM.with(|s| *s.borrow_mut() = Some((guest.paths.clone(), scripted)));
    let provides = crate::init(first.host(), json!({"thaw_after": "20ms"})).unwrap();
    wait_for("the thaw", || !first.host().gate_closed("frozen"));
    assert_eq!(ops.calls(), ["FITHAW /", "FITHAW /srv", "FITHAW /srv/data"]);
    drop(provides);
}

#[test]
fn a_countdown_that_ends_while_thawed_does_nothing() {
    let guest = Guest::new(THREE);
    let ops = Scripted::new();
    let host = guest.agent(ops.clone(), off()).host();
    let freezer = Freezer::new(
        host.clone(),
        guest.paths.clone(),
        ops.clone(),
        Some(Duration::from_millis(1)),
    );
    freezer.arm();
    wait_for("the countdown to end", || !freezer.watchdog_running());
    assert!(ops.calls().is_empty());
    freezer.shutdown();
}

#[test]
fn the_warning_names_the_delay() {
    assert_eq!(
        overdue_message(Duration::from_secs(600)),
        "filesystems frozen for 10m without a thaw from the host; thawing them"
    );
}

#[test]
fn thaw_after_is_a_duration_or_off() {
    use crate::thaw_after;
    assert_eq!(
        thaw_after(json!({})).unwrap(),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        thaw_after(json!({"thaw_after": "30s"})).unwrap(),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        thaw_after(json!({"thaw_after": "1h 30m"})).unwrap(),
        Some(Duration::from_secs(5400))
    );
    for never in ["off", "0", "0s"] {
        assert_eq!(
            thaw_after(json!({"thaw_after": never})).unwrap(),
            None,
            "{never}"
        );
    }
    let bad = thaw_after(json!({"thaw_after": "soon"})).unwrap_err();
    assert!(
        bad.message()
            .starts_with("[plugins.qga-fs] thaw_after: 'soon' is not a duration"),
        "{bad}"
    );
    let unknown = thaw_after(json!({"thaw_afer": "1m"})).unwrap_err();
    assert!(
        unknown
            .message()
            .starts_with("[plugins.qga-fs] thaw_afer: unknown field"),
        "{unknown}"
    );
    let number = thaw_after(json!({"thaw_after": 600})).unwrap_err();
    assert!(
        number
            .message()
            .starts_with("[plugins.qga-fs] thaw_after: invalid type"),
        "{number}"
    );
}

#[test]
fn the_live_system_answers_in_qemu_gas_shapes() {
    // Read only: the live mount table, sysfs and statvfs; no ioctl.
    let agent = TestAgent::new(TestHost::new("/"))
        .with_plugin(crate::init, off())
        .unwrap();
    for fs in value(agent.run("guest-get-fsinfo", "{}"))
        .as_array()
        .unwrap()
    {
        for key in ["name", "mountpoint", "type"] {
            assert!(fs[key].is_string(), "{key} in {fs}");
        }
        assert!(fs["disk"].is_array(), "{fs}");
        for disk in fs["disk"].as_array().unwrap() {
            for key in ["bus", "target", "unit"] {
                assert!(disk[key].is_u64(), "{key} in {disk}");
            }
            assert!(disk["pci-controller"]["domain"].is_i64(), "{disk}");
        }
    }
    if std::path::Path::new("/sys/block").is_dir() {
        for disk in value(agent.run("guest-get-disks", "{}"))
            .as_array()
            .unwrap()
        {
            assert!(
                disk["name"].as_str().unwrap().starts_with("/dev/"),
                "{disk}"
            );
            assert!(disk["partition"].is_boolean(), "{disk}");
        }
    }
}
