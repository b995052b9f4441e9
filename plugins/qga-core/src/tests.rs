//! The plugin loaded as the agent loads it: every command's answer shape and
//! argument errors, with the live kernel and a sandbox root. The shared
//! `Sandbox` (stub programs, a recording clock) serves the modules' tests.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::time::TimeSpec;
use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::sync::lock;
use serde_json::{json, Value};

use crate::System;

#[path = "agent_tests.rs"]
mod agent;

/// A temporary directory with a root, a directory of stub programs and the
/// kernel files the commands read, and a clock that only records.
pub(crate) struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub tools: PathBuf,
    pub power_state: PathBuf,
    pub loadavg: PathBuf,
    /// What the commands set the clock to: (seconds, nanoseconds).
    pub clock: Arc<Mutex<Vec<(i64, i64)>>>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tools = dir.path().join("tools");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&tools).unwrap();
        Sandbox {
            power_state: dir.path().join("power-state"),
            loadavg: dir.path().join("loadavg"),
            _dir: dir,
            root,
            tools,
            clock: Arc::default(),
        }
    }

    pub fn system(&self) -> Arc<System> {
        let clock = Arc::clone(&self.clock);
        Arc::new(System {
            tools: Some(self.tools.clone()),
            power_state: self.power_state.clone(),
            loadavg: self.loadavg.clone(),
            set_clock: Arc::new(move |time: TimeSpec| {
                lock(&clock).push((time.tv_sec(), time.tv_nsec()));
                Ok(())
            }),
        })
    }

    /// `tools/<name>`: appends its arguments, one a line, to
    /// `tools/<name>.args` and exits with `exit`.
    pub fn stub(&self, name: &str, exit: i32) {
        self.stub_script(name, &format!("exit {exit}"));
    }

    /// `tools/<name>`: appends its arguments as [`stub`](Self::stub) does,
    /// then runs the shell code `then`.
    pub fn stub_script(&self, name: &str, then: &str) {
        let path = self.tools.join(name);
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n{then}\n",
            self.args_file(name).display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The arguments stub `name` got, one run after the other; `None` if it
    /// never ran.
    pub fn args(&self, name: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.args_file(name)).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    pub fn tool(&self, name: &str) -> String {
        self.tools.join(name).display().to_string()
    }

    fn args_file(&self, name: &str) -> PathBuf {
        self.tools.join(format!("{name}.args"))
    }

    pub fn clock_calls(&self) -> Vec<(i64, i64)> {
        lock(&self.clock).clone()
    }

    pub fn agent(&self, apply: bool) -> TestAgent {
        agent_on(TestHost::new(self.root.display().to_string()).with_apply(apply))
    }
}

/// Writing an executable while another thread forks can make its exec fail
/// with ETXTBSY; tests that write stubs or run programs hold this.
pub(crate) fn programs() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock(&LOCK)
}

pub(crate) fn agent_on(host: TestHost) -> TestAgent {
    TestAgent::new(host)
        .with_plugin(crate::init, json!({}))
        .unwrap()
}

/// The value of a call that must succeed.
pub(crate) fn value(agent: &TestAgent, command: &str, arguments: &str) -> Value {
    let outcome = agent.run(command, arguments);
    let text = outcome
        .result
        .unwrap_or_else(|e| panic!("{command} {arguments}: {e:?}"));
    serde_json::from_str(&text).unwrap()
}

/// The message of a call that must fail as a `kind` error.
pub(crate) fn error(agent: &TestAgent, command: &str, arguments: &str, kind: ErrorKind) -> String {
    let outcome = agent.run(command, arguments);
    let error = outcome
        .result
        .expect_err(&format!("{command} {arguments} must fail"));
    assert_eq!(error.kind, kind, "{command} {arguments}: {error:?}");
    error.message
}

/// The message of a command's error, checking its kind.
pub(crate) fn failure(result: Result<Value, CommandError>, kind: ErrorKind) -> String {
    let error = result.expect_err("the call must fail");
    assert_eq!(error.kind, kind, "{error:?}");
    error.message
}
