//! The README demo as a new user meets it: the embedded default, with the
//! examples of `nova-agent --help` answering in its seeded sandbox.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use nova_agent_tests::{agent_bin, plugin, BUILTIN};

/// An agent run on its embedded default from a copy of the binary and the
/// given plugins in `<tempdir>/bin`; SIGTERM on drop.
struct Demo {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    child: Child,
}

impl Demo {
    fn start(plugins: &[&str]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::copy(agent_bin(), bin.join("nova-agent")).unwrap();
        for name in plugins {
            let so = plugin(name);
            std::fs::copy(&so, bin.join(so.file_name().unwrap())).unwrap();
        }
        let child = Command::new(bin.join("nova-agent"))
            .arg("run")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let socket = bin.join("demo/run/agent.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "demo socket never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        Demo {
            _dir: dir,
            bin,
            child,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("nova-agent"))
            .args(args)
            .output()
            .unwrap()
    }

    fn demo(&self, path: &str) -> PathBuf {
        self.bin.join("demo").join(path)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn embedded_default_applies() -> bool {
    if Path::new("/etc/nova-agent/agent.toml").exists() {
        eprintln!(
            "skipped: /etc/nova-agent/agent.toml exists, so the embedded default is not used"
        );
        return false;
    }
    true
}

/// `--help` suggests `nova-agent call resetnetwork`: in the demo it answers
/// "0", configuring the seeded NIC in the demo root only (apply = false).
#[test]
fn call_resetnetwork_from_help_works_in_the_demo() {
    if !embedded_default_applies() {
        return;
    }
    let help = Command::new(agent_bin()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("nova-agent call resetnetwork"));

    let plugins: Vec<&str> = BUILTIN.iter().copied().chain(["network"]).collect();
    let demo = Demo::start(&plugins);
    let out = demo.cli(&["call", "resetnetwork"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let interfaces = std::fs::read_to_string(demo.demo("root/etc/network/interfaces")).unwrap();
    assert!(interfaces.contains("eth0"), "{interfaces}");
    assert!(interfaces.contains("192.0.2.10"), "{interfaces}");
    let hostname = std::fs::read_to_string(demo.demo("root/etc/hostname")).unwrap();
    assert_eq!(hostname, "nova-agent-demo\n");
}
