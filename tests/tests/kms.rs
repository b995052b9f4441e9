//! kmsactivate end to end: the agent binary with the kms plugin, run with
//! `apply = true` so that its runner really starts programs, but with
//! everything inside the test's temporary directory: the root is the
//! sandbox's, and the agent's PATH is only a `bin` directory of stub
//! `rhnreg_ks` / `subscription-manager` scripts that record their arguments
//! there (so a machine with the real tools cannot interfere either).
//!
//! `Sandbox::spawn` sets no PATH, so the agent is started here with the same
//! few lines plus `PATH`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nova_agent_tests::{agent_bin, nova, plugin, Client, Sandbox, TIMEOUT};

const KEY: &str = "7-E2eS3cretActivationKey";
const UP2DATE: &str = "etc/sysconfig/rhn/up2date";
const SYSTEMID: &str = "etc/sysconfig/rhn/systemid";

/// A sandbox with the kms plugin, a config with `apply = true`, a Red Hat
/// root holding an old RHN registration, and an empty `bin` directory.
struct Guest {
    sandbox: Sandbox,
    bin: PathBuf,
}

impl Guest {
    fn new(os_release: &str) -> Guest {
        let sandbox = Sandbox::with_builtins();
        sandbox.add_plugin(&plugin("kms"));
        // Sandbox::write_config's text, with apply = true.
        let d = sandbox.path().display();
        let config = format!(
            "plugin_dir = \"{d}/plugins\"\nroot = \"{d}/root\"\napply = true\n\
             state_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\n\n\
             [[channel]]\nexchange = \"unix-socket\"\nparser = \"json\"\n\n\
             [plugins.unix-socket]\npath = \"{d}/run/agent.sock\"\n"
        );
        std::fs::write(&sandbox.config, config).unwrap();
        let rhn = sandbox.root.join("etc/sysconfig/rhn");
        std::fs::create_dir_all(&rhn).unwrap();
        std::fs::write(sandbox.root.join("etc/os-release"), os_release).unwrap();
        std::fs::write(rhn.join("systemid"), "<old registration/>\n").unwrap();
        let bin = sandbox.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        Guest { sandbox, bin }
    }

    fn rhel() -> Guest {
        Guest::new("NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\n")
    }

    /// `bin/<name>`: appends its arguments, one a line, to `<name>.args` in
    /// the sandbox and exits with `exit`.
    fn stub(&self, name: &str, exit: i32) {
        let path = self.bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexit {exit}\n",
                self.args_file(name).display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn args_file(&self, name: &str) -> PathBuf {
        self.sandbox.path().join(format!("{name}.args"))
    }

    /// What the stub `name` received; `None` if it never ran.
    fn args(&self, name: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.args_file(name)).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    fn file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.sandbox.root.join(path)).ok()
    }

    /// `nova-agent run` as `Sandbox::spawn` starts it, with `RUST_LOG=trace`
    /// and `PATH` = the stubs' directory only; waits until it serves.
    fn start(&self) -> RunningAgent {
        let mut child = Command::new(agent_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.sandbox.config)
            .env("RUST_LOG", "trace")
            .env("PATH", &self.bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nova-agent");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let agent = RunningAgent {
            child,
            log,
            reader: Some(reader),
            socket: self.sandbox.socket.clone(),
        };
        agent.wait_for_log("nova-agent 2.0.0 started");
        agent
    }
}

struct RunningAgent {
    child: Child,
    log: Arc<Mutex<String>>,
    /// Collects stderr into `log`; ends when the agent exits.
    reader: Option<std::thread::JoinHandle<()>>,
    socket: PathBuf,
}

impl RunningAgent {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn kmsactivate(&self, value_json: &str) -> String {
        Client::connect(&self.socket).request(&format!(
            "{{\"name\": \"kmsactivate\", \"value\": {value_json}}}"
        ))
    }

    /// Stops the agent (SIGTERM, so it logs its stop) and returns its whole
    /// log.
    fn stop(mut self) -> String {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the agent did not stop");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The reader sees EOF once the agent is gone: the log is complete.
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(extra: &str) -> String {
    format!(
        r#"{{"activation_key": "{KEY}", "profile": "web-01.example.com", "domains": ["proxy1.example.com", "proxy2.example.com"]{extra}}}"#
    )
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_key_not_in(log: &str) {
    assert!(
        !log.contains(KEY),
        "the activation key is in the log:\n{log}"
    );
    assert!(
        !log.contains("S3cret"),
        "part of the activation key is in the log:\n{log}"
    );
}

/// The seed's vector `kms-redhat-up2date` has these two domains.
fn expected_up2date() -> String {
    let template = include_str!("../../plugins/kms/testdata/kms-redhat-up2date.json");
    let vectors: serde_json::Value = serde_json::from_str(template).unwrap();
    vectors[0]["expected"]["/etc/sysconfig/rhn/up2date"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn rhnreg_ks_registers_with_the_key_profile_and_force() {
    let guest = Guest::rhel();
    guest.stub("rhnreg_ks", 0);
    guest.stub("subscription-manager", 0);
    let agent = guest.start();
    assert_eq!(agent.kmsactivate(&value("")), nova("0", ""));
    let log = agent.stop();

    assert_eq!(
        guest.args("rhnreg_ks").unwrap(),
        strings(&[
            "--activationkey",
            KEY,
            "--profile",
            "web-01.example.com",
            "--force"
        ])
    );
    assert_eq!(guest.args("subscription-manager"), None);
    assert_eq!(guest.file(UP2DATE).unwrap(), expected_up2date());
    assert_eq!(
        guest.file(SYSTEMID),
        None,
        "the old registration is removed"
    );
    let line = format!(
        "running: {} --activationkey <secret> --profile web-01.example.com --force",
        guest.bin.join("rhnreg_ks").display()
    );
    assert!(log.contains(&line), "{log}");
    assert_key_not_in(&log);
}

#[test]
fn rhnreg_ks_failures_are_answered_with_the_exit_code() {
    let guest = Guest::rhel();
    guest.stub("rhnreg_ks", 4);
    let agent = guest.start();
    assert_eq!(
        agent.kmsactivate(&value("")),
        nova("500", "Couldn't activate with RHN: 4")
    );
    let log = agent.stop();
    assert!(guest.args("rhnreg_ks").unwrap().contains(&KEY.to_owned()));
    assert_key_not_in(&log);
}

#[test]
fn subscription_manager_registers_with_the_org_when_rhnreg_ks_is_absent() {
    let guest = Guest::new("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n");
    guest.stub("subscription-manager", 0);
    let agent = guest.start();
    assert_eq!(
        agent.kmsactivate(&value("")),
        nova("500", "Missing 'org' key")
    );
    assert_eq!(guest.args("subscription-manager"), None);
    assert_eq!(
        agent.kmsactivate(&value(r#", "org": "Acme""#)),
        nova("0", "")
    );
    let log = agent.stop();

    assert_eq!(
        guest.args("subscription-manager").unwrap(),
        strings(&[
            "register",
            "--activationkey",
            KEY,
            "--org",
            "Acme",
            "--name",
            "web-01.example.com",
            "--force"
        ])
    );
    assert_eq!(guest.file(UP2DATE), None, "RHN's file is not written");
    assert!(
        guest.file(SYSTEMID).is_some(),
        "RHN's systemid is left alone"
    );
    assert!(
        log.contains("register --activationkey <secret> --org Acme"),
        "{log}"
    );
    assert_key_not_in(&log);
}

#[test]
fn subscription_manager_failures_and_no_tool_at_all() {
    let guest = Guest::rhel();
    guest.stub("subscription-manager", 64);
    let agent = guest.start();
    assert_eq!(
        agent.kmsactivate(&value(r#", "org": "Acme""#)),
        nova("500", "Couldn't register with subscription-manager: 64")
    );
    std::fs::remove_file(guest.bin.join("subscription-manager")).unwrap();
    assert_eq!(
        agent.kmsactivate(&value("")),
        nova(
            "500",
            "Neither rhnreg_ks nor subscription-manager is installed"
        )
    );
    let log = agent.stop();
    assert_eq!(guest.file(UP2DATE), None);
    assert_key_not_in(&log);
}

#[test]
fn other_oses_and_bad_values_are_refused_and_nothing_runs() {
    let guest = Guest::new("ID=debian\nVERSION_ID=\"12\"\n");
    guest.stub("rhnreg_ks", 0);
    let agent = guest.start();
    assert_eq!(
        agent.kmsactivate(&value("")),
        nova("500", "KMS not supported on this OS")
    );
    let log = agent.stop();
    assert_eq!(guest.args("rhnreg_ks"), None);
    assert!(guest.file(SYSTEMID).is_some());
    assert_key_not_in(&log);

    let guest = Guest::rhel();
    guest.stub("rhnreg_ks", 0);
    let agent = guest.start();
    for (value, message) in [
        (
            r#"{"profile": "p", "domains": "a.example"}"#.to_owned(),
            "Missing 'activation_key' key",
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "domains": "a.example"}}"#),
            "Missing 'profile' key",
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "p"}}"#),
            "Missing 'domains' key",
        ),
        (
            format!(
                r#"{{"activation_key": "{KEY}", "profile": "p", "domains": ["a.example/x;http://evil"]}}"#
            ),
            "Invalid 'domains': entry 1 is not a host name (letters, digits, '-' and '.')",
        ),
        (
            r#"{"activation_key": "S3cret\nInjected", "profile": "p", "domains": "a.example"}"#
                .to_owned(),
            "Invalid 'activation_key': expected a non-empty string of printable characters",
        ),
        ("\"\"".to_owned(), "Invalid value: expected a JSON object"),
    ] {
        assert_eq!(agent.kmsactivate(&value), nova("500", message), "{value}");
    }
    let log = agent.stop();
    assert_eq!(guest.args("rhnreg_ks"), None, "nothing ran");
    assert_eq!(guest.file(UP2DATE), None, "nothing written");
    assert!(guest.file(SYSTEMID).is_some(), "nothing removed");
    assert_key_not_in(&log);
}
