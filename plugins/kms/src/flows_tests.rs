//! Tests of the flows: `rhnreg_ks`, `subscription-manager`, neither, and
//! `apply = false` with the log.

use super::*;

// --- The RHN flow ----------------------------------------------------------------

#[test]
fn rhnreg_ks_gets_key_profile_and_force_after_the_files() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    guest.stub("rhnreg_ks", 0);
    guest.stub("subscription-manager", 0);
    std::fs::write(guest.real(SYSTEMID), "<old registration/>").unwrap();
    assert_eq!(guest.call(&value_with(r#", "org": "ignored""#)), ok());
    assert_eq!(
        guest.args("rhnreg_ks").unwrap(),
        strings(&["--activationkey", KEY, "--profile", "web-01", "--force"])
    );
    assert_eq!(
        guest.args("subscription-manager"),
        None,
        "rhnreg_ks is preferred"
    );
    assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());
    assert!(!guest.real(SYSTEMID).exists(), "systemid removed");
}

#[test]
fn rhnreg_ks_failures_answer_its_exit_code() {
    let _programs = programs();
    for (exit, expected) in [
        (1, error("Couldn't activate with RHN: 1")),
        (255, error("Couldn't activate with RHN: 255")),
        (0, ok()),
    ] {
        let guest = Guest::rhel(true);
        guest.stub("rhnreg_ks", exit);
        assert_eq!(guest.call(&value_with("")), expected);
        assert!(guest.args("rhnreg_ks").is_some());
    }
}

#[test]
fn a_program_killed_by_a_signal_answers_128_plus_the_signal() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    let stub = guest.tools.join("rhnreg_ks");
    std::fs::write(&stub, "#!/bin/sh\nkill -9 $$\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        guest.call(&value_with("")),
        error("Couldn't activate with RHN: 137")
    );
}

#[test]
fn an_existing_up2date_is_backed_up_and_keeps_its_mode() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    std::fs::write(
        guest.real(UP2DATE),
        "serverURL=https://old.example/XMLRPC\n",
    )
    .unwrap();
    std::fs::set_permissions(guest.real(UP2DATE), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(guest.call(&value_with("")), ok());
    assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());
    assert_eq!(guest.mode(UP2DATE), 0o600);
    assert_eq!(
        guest.file(BACKUP).unwrap(),
        "serverURL=https://old.example/XMLRPC\n"
    );
    assert_eq!(guest.mode(BACKUP), 0o600);

    // The same again: the file is unchanged, so the backup keeps the old one.
    assert_eq!(guest.call(&value_with("")), ok());
    assert_eq!(
        guest.file(BACKUP).unwrap(),
        "serverURL=https://old.example/XMLRPC\n"
    );

    let names: Vec<String> = std::fs::read_dir(guest.real("/etc/sysconfig/rhn"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "up2date and its backup only: {names:?}");
}

#[test]
fn a_missing_rhn_directory_is_created_and_a_symlink_is_refused() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    std::fs::remove_dir(guest.real("/etc/sysconfig/rhn")).unwrap();
    assert_eq!(guest.call(&value_with("")), ok());
    assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());

    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    let elsewhere = guest.root.join("elsewhere");
    std::fs::write(&elsewhere, "keep").unwrap();
    std::os::unix::fs::symlink(&elsewhere, guest.real(UP2DATE)).unwrap();
    let message = guest.failure(&value_with(""));
    assert!(
        message.starts_with("Couldn't write /etc/sysconfig/rhn/up2date: ")
            && message.contains("symbolic link"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
    assert_eq!(guest.file(BACKUP), None);
}

// --- The subscription-manager flow -------------------------------------------------

#[test]
fn subscription_manager_registers_with_org_and_name_when_rhnreg_ks_is_absent() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    guest.stub("subscription-manager", 0);
    std::fs::write(guest.real(SYSTEMID), "<old/>").unwrap();
    assert_eq!(guest.call(&value_with(r#", "org": "Acme Corp""#)), ok());
    assert_eq!(
        guest.args("subscription-manager").unwrap(),
        strings(&[
            "register",
            "--activationkey",
            KEY,
            "--org",
            "Acme Corp",
            "--name",
            "web-01",
            "--force"
        ])
    );
    assert_eq!(guest.file(UP2DATE), None, "RHN's file is not written");
    assert_eq!(
        guest.file(SYSTEMID).as_deref(),
        Some("<old/>"),
        "nor RHN's systemid removed"
    );
}

#[test]
fn subscription_manager_without_a_profile_or_domains_and_its_failures() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    guest.stub("subscription-manager", 0);
    let value = format!(r#"{{"activation_key": "{KEY}", "org": "1234567"}}"#);
    assert_eq!(guest.call(&value), ok());
    assert_eq!(
        guest.args("subscription-manager").unwrap(),
        strings(&[
            "register",
            "--activationkey",
            KEY,
            "--org",
            "1234567",
            "--force"
        ])
    );

    let guest = Guest::rhel(true);
    guest.stub("subscription-manager", 70);
    assert_eq!(
        guest.call(&value),
        error("Couldn't register with subscription-manager: 70")
    );

    let guest = Guest::rhel(true);
    guest.stub("subscription-manager", 0);
    assert_eq!(guest.call(&value_with("")), error("Missing 'org' key"));
    assert_eq!(guest.args("subscription-manager"), None);
}

#[test]
fn neither_program_answers_500() {
    for apply in [true, false] {
        let guest = Guest::rhel(apply);
        assert_eq!(guest.call(&value_with("")), error(NO_TOOL));
        assert_eq!(guest.file(UP2DATE), None, "nothing written");
    }
    // A file that is not executable does not count.
    let guest = Guest::rhel(true);
    std::fs::write(guest.tools.join("rhnreg_ks"), "#!/bin/sh\n").unwrap();
    assert_eq!(guest.call(&value_with("")), error(NO_TOOL));
}

#[test]
fn a_program_that_cannot_start_is_reported_without_the_key() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    let stub = guest.tools.join("rhnreg_ks");
    std::fs::write(&stub, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let message = guest.failure(&value_with(""));
    assert!(
        message.starts_with("Couldn't activate with RHN: cannot run "),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");
}

// --- apply = false and the log ---------------------------------------------------

fn tool_path(guest: &Guest, name: &str) -> String {
    Path::new(&guest.tools).join(name).display().to_string()
}

#[test]
fn with_apply_false_nothing_runs_files_are_written_and_the_key_is_masked() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 1);
    std::fs::write(guest.real(SYSTEMID), "<old/>").unwrap();
    let log = captured_log(|| assert_eq!(guest.call(&value_with("")), ok()));
    assert_eq!(guest.args("rhnreg_ks"), None, "nothing ran");
    assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());
    assert!(!guest.real(SYSTEMID).exists());
    let line = format!(
        "not running (apply = false): {} --activationkey <secret> --profile web-01 --force",
        tool_path(&guest, "rhnreg_ks")
    );
    assert!(log.contains(&line), "{log}");
    assert!(!log.contains(KEY), "{log}");
    assert!(!log.contains("S3cret"), "{log}");
}

#[test]
fn the_key_never_reaches_the_log_at_trace_level() {
    let _programs = programs();
    let guest = Guest::rhel(true);
    // A program that echoes its arguments on both outputs, then fails.
    let stub = guest.tools.join("rhnreg_ks");
    std::fs::write(
        &stub,
        "#!/bin/sh\necho \"$@\"\necho \"bad key $2\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    guest.stub("subscription-manager", 0);
    let sm = Guest::rhel(true);
    sm.stub("subscription-manager", 5);
    let log = captured_log(|| {
        assert_eq!(
            guest.call(&value_with("")),
            error("Couldn't activate with RHN: 3")
        );
        assert_eq!(
            sm.call(&value_with(r#", "org": "o""#)),
            error("Couldn't register with subscription-manager: 5")
        );
        let _ = guest.call(
            r#"{"activation_key": "S3cretWith\u0001Control", "profile": "p", "domains": "a"}"#,
        );
    });
    let rhn_line = format!(
        "running: {} --activationkey <secret> --profile web-01 --force",
        tool_path(&guest, "rhnreg_ks")
    );
    let sm_line = format!(
        "running: {} register --activationkey <secret> --org o --name web-01 --force",
        tool_path(&sm, "subscription-manager")
    );
    assert!(log.contains(&rhn_line), "{log}");
    assert!(log.contains(&sm_line), "{log}");
    assert!(
        log.contains("kmsactivate failed: Couldn't activate with RHN: 3"),
        "{log}"
    );
    assert!(!log.contains(KEY), "{log}");
    assert!(!log.contains("S3cret"), "{log}");
}
