//! What the agent opens as root is what was checked (issue 15, items 1–4):
//! staged plugin copies nobody can swap, paths checked as written (symlinks
//! included), the log file never opened through a symlink, and a config file
//! only root could have written. Every check applies to root only: as
//! another user these tests skip with a note.

use std::fs::{self, Permissions};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nova_agent_tests::{nova, plugin, running_as_root, test_plugin, Agent, Sandbox};

const EXIT: Duration = Duration::from_secs(30);

fn as_root() -> bool {
    if !running_as_root() {
        eprintln!("skipped: the checks apply when the agent runs as root");
    }
    running_as_root()
}

fn mkdir(path: &Path, mode: u32) -> PathBuf {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// The sandbox's config with `key = "<old>"` set to `new` instead.
fn set_path(sandbox: &Sandbox, key: &str, new: &Path) {
    let text = fs::read_to_string(&sandbox.config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in the config"))
        .to_owned();
    let text = text.replace(&line, &format!("{key} = \"{}\"", new.display()));
    fs::write(&sandbox.config, text).unwrap();
}

/// Starts the agent and expects it to refuse to start, with `reason` in its
/// one-line error.
fn refuses_to_start(sandbox: &Sandbox, reason: &str) -> Agent {
    let mut agent = sandbox.spawn();
    agent.wait_for_log("nova-agent: error: ");
    let status = agent.wait_exit(EXIT);
    let log = agent.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the agent did not exit with an error; log:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.starts_with("nova-agent: error: "))
        .unwrap_or_else(|| panic!("no error line; log:\n{log}"));
    assert!(line.contains(reason), "{line}");
    agent
}

#[test]
fn a_file_renamed_into_the_staging_directory_is_never_loaded() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::empty();
    sandbox.add_plugin(&plugin("json"));
    sandbox.add_plugin(&plugin("unix-socket"));
    sandbox.install_as(&test_plugin("swap-v1"), "libswap.so");
    sandbox.write_config("");
    let agent = sandbox.start();

    // Another plugin, ready to be renamed over whatever file appears in the
    // staging directory (as an attacker who can write state_dir would).
    let hostile = sandbox.path().join("hostile.so");
    fs::copy(test_plugin("probe"), &hostile).unwrap();
    let staging = sandbox.path().join("state/plugins");
    let stop = Arc::new(AtomicBool::new(false));
    let swapped = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swapped) = (Arc::clone(&stop), Arc::clone(&swapped));
        std::thread::spawn(move || {
            let spare = hostile.with_extension("next");
            while !stop.load(Ordering::Relaxed) {
                let Ok(entries) = fs::read_dir(&staging) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let _ = fs::hard_link(&hostile, &spare);
                    if fs::rename(&spare, entry.path()).is_ok() {
                        swapped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    for round in 0..12 {
        let build = if round % 2 == 0 { "v2" } else { "v1" };
        sandbox.install_as(&test_plugin(&format!("swap-{build}")), "libswap.so");
        let out = sandbox.cli(&["plugins", "reload"]);
        assert!(out.status.success(), "{out:?}\nlog:\n{}", agent.log());
        assert!(
            !sandbox
                .plugins_json()
                .iter()
                .any(|p| p["name"] == "probe-fixture"),
            "the hostile file was loaded (after {} swaps); log:\n{}",
            swapped.load(Ordering::Relaxed),
            agent.log()
        );
        let entry = sandbox.plugin_entry("swap-fixture");
        assert_eq!(entry["state"], "loaded", "{entry:#}");
        assert_eq!(agent.call("version"), nova("0", &format!("swap-{build}")));
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(!agent.log().contains("probe-fixture"), "{}", agent.log());
}

#[test]
fn as_root_the_agent_refuses_a_state_dir_others_can_write() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let state = sandbox.path().join("state");
    fs::set_permissions(&state, Permissions::from_mode(0o777)).unwrap();
    refuses_to_start(
        &sandbox,
        &format!(
            "state_dir {0}: directory {0} is writable by group or others (mode 0777); \
             it and its parents must be writable by root only",
            state.display()
        ),
    );
    assert!(!sandbox.socket.exists());
}

#[test]
fn as_root_the_agent_refuses_a_run_dir_behind_a_symlink_in_a_writable_directory() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let ww = mkdir(&sandbox.path().join("ww"), 0o777);
    symlink(sandbox.path().join("run"), ww.join("run")).unwrap();
    set_path(&sandbox, "run_dir", &ww.join("run"));
    refuses_to_start(
        &sandbox,
        &format!(
            "run_dir {}: directory {} is writable by group or others (mode 0777)",
            ww.join("run").display(),
            ww.display()
        ),
    );
}

#[test]
fn as_root_a_plugin_dir_behind_a_symlink_in_a_writable_directory_is_refused() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let ww = mkdir(&sandbox.path().join("ww"), 0o777);
    symlink(&sandbox.plugins, ww.join("plugins")).unwrap();
    set_path(&sandbox, "plugin_dir", &ww.join("plugins"));
    // Exits non-zero when an entry is refused; the listing is printed all
    // the same.
    let out = sandbox.cli(&["plugins", "list", "--json"]);
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(list.len(), 3, "{list:#?}");
    for entry in &list {
        assert_eq!(entry["state"], "refused", "{entry:#}");
        let error = entry["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("directory {} is writable", ww.display())),
            "{error}"
        );
    }
}

#[test]
fn as_root_a_symlinked_log_file_is_refused_and_its_target_untouched() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let victim = sandbox.path().join("victim");
    fs::write(&victim, b"keep\n").unwrap();
    fs::set_permissions(&victim, Permissions::from_mode(0o644)).unwrap();
    let logs = mkdir(&sandbox.path().join("logs"), 0o755);
    let log = logs.join("agent.log");
    symlink(&victim, &log).unwrap();
    sandbox.write_config(&format!("[log]\nfile = \"{}\"\n", log.display()));
    refuses_to_start(
        &sandbox,
        &format!(
            "log file {}: is a symlink; the log file must be a regular file",
            log.display()
        ),
    );
    assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o644);
    assert_eq!(fs::read(&victim).unwrap(), b"keep\n");
}

#[test]
fn as_root_a_log_file_in_a_directory_others_can_write_is_refused() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let logs = mkdir(&sandbox.path().join("logs"), 0o777);
    let log = logs.join("agent.log");
    sandbox.write_config(&format!("[log]\nfile = \"{}\"\n", log.display()));
    refuses_to_start(
        &sandbox,
        &format!(
            "log file {}: directory {} is writable by group or others (mode 0777)",
            log.display(),
            logs.display()
        ),
    );
    assert!(!log.exists());
}

#[test]
fn as_root_a_config_others_can_write_is_refused_by_run_and_config_check() {
    if !as_root() {
        return;
    }
    let sandbox = Sandbox::with_builtins();
    let config = sandbox.config.display().to_string();
    let cases = [
        (
            0o666,
            0,
            format!(
                "config {config}: writable by group or others (mode 0666); \
                 the config file must be writable by root only"
            ),
        ),
        (
            0o644,
            1000,
            format!("config {config}: owned by uid 1000; the config file must be owned by root"),
        ),
    ];
    for (mode, uid, reason) in cases {
        fs::set_permissions(&sandbox.config, Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&sandbox.config, Some(uid), None).unwrap();
        let out = sandbox.cli(&["config", "check"]);
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end(), format!("nova-agent: error: {reason}"));
        refuses_to_start(&sandbox, &reason);
    }
    fs::set_permissions(&sandbox.config, Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&sandbox.config, Some(0), None).unwrap();
    let out = sandbox.cli(&["config", "check"]);
    assert!(out.status.success(), "{out:?}");
}
