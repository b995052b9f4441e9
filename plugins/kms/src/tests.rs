//! `kmsactivate` against a sandbox root, with stub programs in a temporary
//! directory standing in for `rhnreg_ks` and `subscription-manager`.
//!
//! The shared helpers live here; the tests are in `checks_tests.rs` (the
//! seed's vector, the value, the OS) and `flows_tests.rs` (the RHN and
//! subscription-manager flows, `apply = false` and the log).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::runner::Runner;
use nova_agent_support::sync::lock;
use nova_agent_support::testing::captured_log;
use serde_json::{json, Value};

use crate::up2date::{self, BACKUP, SYSTEMID, UP2DATE};
use crate::value::{missing, Domain, Request, NOT_AN_OBJECT};
use crate::{KmsActivate, NOT_SUPPORTED, NO_TOOL};

#[path = "checks_tests.rs"]
mod checks;
#[path = "flows_tests.rs"]
mod flows;

const KEY: &str = "1-Sup3rS3cretK3y";
const RHEL: &str = "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\n";

/// The seed's vector `kms-redhat-up2date` (copied into `testdata/`).
fn vector() -> Value {
    let all: Vec<Value> =
        serde_json::from_str(include_str!("../testdata/kms-redhat-up2date.json")).unwrap();
    all.into_iter()
        .find(|v| v["id"] == "kms-redhat-up2date")
        .unwrap()
}

fn vector_domains() -> Vec<String> {
    vector()["input"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn vector_up2date() -> String {
    vector()["expected"]["/etc/sysconfig/rhn/up2date"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A value with the seed's three keys (and `extra` members appended).
fn value_with(extra: &str) -> String {
    format!(
        r#"{{"activation_key": "{KEY}", "profile": "web-01", "domains": ["proxy1.example.com", "proxy2.example.com"]{extra}}}"#
    )
}

/// Writing an executable while another thread forks can make its exec fail
/// with ETXTBSY; tests that write stubs or run programs hold this.
fn programs() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock(&LOCK)
}

struct Guest {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tools: PathBuf,
    command: KmsActivate,
}

impl Guest {
    /// A root with `os_release` as /etc/os-release (none if empty) and an
    /// empty tools directory.
    fn new(os_release: &str, apply: bool) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(root.join("etc/sysconfig/rhn")).unwrap();
        std::fs::create_dir(&tools).unwrap();
        if !os_release.is_empty() {
            std::fs::write(root.join("etc/os-release"), os_release).unwrap();
        }
        let command = KmsActivate {
            root: root.clone(),
            runner: Runner::new(apply),
            tools: Some(tools.clone()),
            running: Mutex::new(()),
        };
        Guest {
            _dir: dir,
            root,
            tools,
            command,
        }
    }

    fn rhel(apply: bool) -> Guest {
        Guest::new(RHEL, apply)
    }

    /// `tools/<name>`: appends its arguments, one a line, to
    /// `tools/<name>.args` and exits with `exit`.
    fn stub(&self, name: &str, exit: i32) {
        let path = self.tools.join(name);
        let log = self.args_file(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexit {exit}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn args_file(&self, name: &str) -> PathBuf {
        self.tools.join(format!("{name}.args"))
    }

    /// The arguments the stub `name` received; `None` if it never ran.
    fn args(&self, name: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.args_file(name)).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    fn call(&self, arguments: &str) -> Answer {
        TestCall::new().run(&self.command, arguments)
    }

    /// The message of a call that must fail.
    fn failure(&self, arguments: &str) -> String {
        let error = self.call(arguments).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Failed, "{error:?}");
        error.message
    }

    fn file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.real(path)).ok()
    }

    fn real(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn mode(&self, path: &str) -> u32 {
        std::fs::metadata(self.real(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

/// What the command answers.
type Answer = Result<Value, CommandError>;

/// Failure with `message` (the Nova parser answers "500" and it).
fn error(message: &str) -> Answer {
    Err(CommandError::failed(message))
}

/// Success: the empty string (the Nova parser answers "0" and "").
fn ok() -> Answer {
    Ok(json!(""))
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
