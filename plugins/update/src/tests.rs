//! The value, the URL, the checksums, the settings, the restart, and whole
//! updates from a downloaded file into a temporary root with `apply` on
//! (restart through stub programs).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nova_agent_plugin_api::{ErrorKind, PluginError};
use nova_agent_support::runner::Runner;

use crate::config::{GuestPath, Paths, Settings};
use crate::download::Downloaded;
use crate::location::{Location, Scheme};
use crate::restart::{self, Method, Programs};
use crate::testutil::{
    good_package, root_with_old_install, snapshot, tarball, write, Member, KEPT_PLUGIN, NEW_BINARY,
    NEW_PLUGIN, OTHER_PLUGIN,
};
use crate::update::{verify, Failure, Staging, Updater, BUSY, HTTP_REFUSED};
use crate::value::{parse, UpdateRequest, INVALID, MISSING_IN_DICT, NO_COMMA};

/// The settings of a `[plugins.update]` table given as JSON text.
fn settings(json: &str) -> Result<Settings, PluginError> {
    Settings::parse(serde_json::from_str(json).unwrap())
}

fn request(url: &str, md5: &str) -> UpdateRequest {
    UpdateRequest {
        url: url.to_owned(),
        md5: md5.to_owned(),
    }
}

#[test]
fn the_value_is_a_url_and_an_md5_split_at_the_first_comma() {
    assert_eq!(
        parse(r#""http://example.com/a,b.tar.gz,abc""#),
        Ok(request("http://example.com/a", "b.tar.gz,abc"))
    );
    assert_eq!(
        parse(r#""https://example.com/nova-agent-2.tar.gz, 0123abcd ""#),
        Ok(request(
            "https://example.com/nova-agent-2.tar.gz",
            "0123abcd"
        ))
    );
}

#[test]
fn the_value_may_be_the_old_dictionary() {
    assert_eq!(
        parse(r#"{"url": "http://h/p.tar.gz", "md5sum": "ff", "other": 1}"#),
        Ok(request("http://h/p.tar.gz", "ff"))
    );
    assert_eq!(parse(r#"{"url": "http://h/p"}"#), Err(MISSING_IN_DICT));
    assert_eq!(parse(r#"{"md5sum": "ff"}"#), Err(MISSING_IN_DICT));
    assert_eq!(
        parse(r#"{"url": "", "md5sum": "ff"}"#),
        Err(MISSING_IN_DICT)
    );
    assert_eq!(parse(r#"{"url": 1, "md5sum": "ff"}"#), Err(INVALID));
}

#[test]
fn other_values_answer_as_the_seed_or_clearly() {
    assert_eq!(
        MISSING_IN_DICT,
        "Missing URL or MD5 sum in dictionary arguments"
    );
    assert_eq!(INVALID, "Invalid arguments");
    for other in ["null", "1", "[\"http://h/p\", \"ff\"]", "true"] {
        assert_eq!(parse(other), Err(INVALID), "{other}");
    }
    for no_comma in [
        r#""http://h/p.tar.gz""#,
        r#""""#,
        r#"",ff""#,
        r#""http://h/p,""#,
    ] {
        assert_eq!(parse(no_comma), Err(NO_COMMA), "{no_comma}");
    }
}

#[test]
fn urls_are_http_or_https_and_shown_without_userinfo() {
    let url =
        Location::parse("https://user:s3cret@mirror.example.com:8443/a/b.tar.gz?x=1").unwrap();
    assert_eq!(url.scheme(), Scheme::Https);
    assert_eq!(
        url.to_string(),
        "https://mirror.example.com:8443/a/b.tar.gz?x=1"
    );
    assert!(!format!("{url:?}").contains("s3cret"));
    assert_eq!(
        url.raw(),
        "https://user:s3cret@mirror.example.com:8443/a/b.tar.gz?x=1"
    );
    assert_eq!(
        url.scrub("cannot fetch https://user:s3cret@mirror.example.com:8443/"),
        "cannot fetch https://mirror.example.com:8443/"
    );
    assert_eq!(
        Location::parse("HTTP://h/p").unwrap().scheme(),
        Scheme::Http
    );
    assert_eq!(Location::parse("http://h").unwrap().to_string(), "http://h");

    for (bad, why) in [
        (
            "ftp://h/p.tar.gz",
            "unsupported URL scheme 'ftp': only http and https are supported",
        ),
        (
            "file:///etc/shadow",
            "unsupported URL scheme 'file': only http and https are supported",
        ),
        (
            "example.com/p.tar.gz",
            "invalid URL: it does not start with http:// or https://",
        ),
        ("http:///p.tar.gz", "invalid URL: it has no host"),
        ("http://user@/p", "invalid URL: it has no host"),
        (
            "http://h/a b",
            "invalid URL: it contains a space or a character that is not printable ASCII",
        ),
        (
            "http://h/\u{e9}",
            "invalid URL: it contains a space or a character that is not printable ASCII",
        ),
    ] {
        assert_eq!(Location::parse(bad), Err(why.to_owned()), "{bad}");
    }
    let message = Location::parse("http://h/p<x>").unwrap_err();
    assert!(message.starts_with("invalid URL: "), "{message}");
}

fn downloaded(md5: &str, sha256: &str) -> Downloaded {
    Downloaded {
        size: 10,
        md5: md5.to_owned(),
        sha256: sha256.to_owned(),
    }
}

#[test]
fn an_md5_mismatch_answers_the_seeds_message() {
    // Vector agentupdate-invalid-md5.
    let actual = "0a9c6e4bd1b8a6b6e1c1ef2bb2b7d1f1";
    assert_eq!(
        verify("bogus", None, &downloaded(actual, "00")),
        Err(format!("MD5 sums do not match (bogus != {actual})"))
    );
    // Vector agentupdate-valid-md5, in either case.
    assert_eq!(verify(actual, None, &downloaded(actual, "00")), Ok(()));
    assert_eq!(
        verify(&actual.to_uppercase(), None, &downloaded(actual, "00")),
        Ok(())
    );
}

#[test]
fn the_sha256_pin_must_match_too() {
    let sha = "ab".repeat(32);
    let pin = "cd".repeat(32);
    assert_eq!(
        verify("ff", Some(&pin), &downloaded("ff", &sha)),
        Err(format!(
            "SHA-256 does not match the pinned sha256 ({pin} != {sha})"
        ))
    );
    assert_eq!(verify("ff", Some(&sha), &downloaded("ff", &sha)), Ok(()));
    // The MD5 is checked first, as the seed did.
    assert!(verify("ee", Some(&pin), &downloaded("ff", &sha))
        .unwrap_err()
        .starts_with("MD5"));
}

#[test]
fn settings_default_and_are_checked() {
    let defaults = settings("{}").unwrap();
    assert_eq!(defaults, Settings::default());
    assert!(!defaults.require_https);
    assert_eq!(defaults.sha256, None);
    assert_eq!(defaults.max_size, 67_108_864);
    assert_eq!(defaults.timeout, 300);
    assert_eq!(defaults.binary, "/usr/sbin/nova-agent");
    assert_eq!(defaults.plugin_dir, "/usr/lib/nova-agent/plugins");
    assert_eq!(defaults.service, "nova-agent");
    assert_eq!(defaults.staging_dir, "/var/lib/nova-agent/update");
    assert_eq!(defaults.unpack_cap(), 4 * 67_108_864);

    let pinned = settings(&format!(
        r#"{{"require_https": true, "sha256": "{}", "max_size": 10, "timeout": 5, "service": "nova-agent@x.service"}}"#,
        "AB".repeat(32)
    ))
    .unwrap();
    assert_eq!(pinned.sha256, Some("ab".repeat(32)));

    for (json, error) in [
        (r#"{"bogus": 1}"#, "bogus: unknown field `bogus`"),
        (
            r#"{"sha256": "abc"}"#,
            "sha256: must be 64 hexadecimal digits",
        ),
        (r#"{"max_size": 0}"#, "max_size: must be at least 1"),
        (r#"{"max_size": -1}"#, "max_size: invalid value"),
        (r#"{"timeout": 0}"#, "timeout: must be at least 1"),
        (
            r#"{"binary": "usr/sbin/nova-agent"}"#,
            "binary: refusing path",
        ),
        (
            r#"{"plugin_dir": "/usr/../lib"}"#,
            "plugin_dir: refusing path",
        ),
        (r#"{"staging_dir": ""}"#, "staging_dir: refusing path"),
        (
            r#"{"binary": "/usr/sbin/"}"#,
            "binary: \"/usr/sbin/\" does not name a file",
        ),
        (
            r#"{"service": "--now"}"#,
            "service: \"--now\" is not a systemd unit name",
        ),
        (r#"{"service": "a b"}"#, "is not a systemd unit name"),
    ] {
        let message = settings(json).unwrap_err().message().to_owned();
        assert!(message.starts_with("[plugins.update]"), "{json}: {message}");
        assert!(message.contains(error), "{json}: {message}");
    }
}

#[test]
fn the_restart_is_decided_from_files() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(restart::detect(root.path(), "nova-agent"), None);

    write(root.path(), "etc/nova-agent.init", b"", 0o755);
    write(root.path(), "etc/rc.d/nova-agent", b"", 0o755);
    assert_eq!(
        restart::detect(root.path(), "nova-agent"),
        Some(Method::Script {
            guest: "/etc/rc.d/nova-agent",
            path: root.path().join("etc/rc.d/nova-agent"),
        })
    );
    write(root.path(), "etc/init.d/nova-agent", b"", 0o755);
    assert!(matches!(
        restart::detect(root.path(), "nova-agent"),
        Some(Method::Script {
            guest: "/etc/init.d/nova-agent",
            ..
        })
    ));

    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    assert_eq!(
        restart::detect(root.path(), "agent.service"),
        Some(Method::Systemd {
            service: "agent.service".to_owned()
        })
    );
}

/// An executable stub at `<dir>/<name>` that appends its arguments to
/// `<dir>/<name>.log` and exits with `code`.
fn stub(dir: &Path, name: &str, code: i32) -> String {
    let path = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexit {code}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn stub_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn restarts_run_systemctl_without_blocking_or_the_init_script() {
    let bin = tempfile::tempdir().unwrap();
    let programs = Programs {
        systemctl: stub(bin.path(), "systemctl", 0),
        sh: "sh".to_owned(),
    };
    let runner = Runner::new(true);
    let systemd = Method::Systemd {
        service: "nova-agent".to_owned(),
    };
    assert_eq!(systemd.run(&runner, &programs), Ok(()));
    assert_eq!(
        stub_log(bin.path(), "systemctl"),
        "--no-block restart nova-agent\n"
    );

    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("restarted");
    write(
        root.path(),
        "etc/init.d/nova-agent",
        format!("echo \"$1\" > '{}'\n", marker.display()).as_bytes(),
        0o644,
    );
    let script = restart::detect(root.path(), "nova-agent").unwrap();
    assert_eq!(script.run(&runner, &programs), Ok(()));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "restart\n");

    // apply = false: nothing runs.
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(script.run(&Runner::new(false), &programs), Ok(()));
    assert!(!marker.exists());
}

#[test]
fn a_failed_restart_answers_its_exit_code() {
    let bin = tempfile::tempdir().unwrap();
    let programs = Programs {
        systemctl: stub(bin.path(), "systemctl", 5),
        sh: "sh".to_owned(),
    };
    let systemd = Method::Systemd {
        service: "nova-agent".to_owned(),
    };
    assert_eq!(
        systemd.run(&Runner::new(true), &programs),
        Err("Couldn't restart the agent: 5".to_owned())
    );
    let missing = Programs {
        systemctl: bin.path().join("absent").display().to_string(),
        sh: "sh".to_owned(),
    };
    let message = systemd.run(&Runner::new(true), &missing).unwrap_err();
    assert!(
        message.starts_with("Couldn't restart the agent: cannot run "),
        "{message}"
    );
}

/// An updater for `root` (settings `extra` as JSON fields), its restart
/// through a stub systemctl in `bin`.
fn updater(root: &Path, bin: &Path, apply: bool, extra: &str) -> Updater {
    let settings = settings(&format!("{{{extra}}}")).unwrap();
    let paths = Paths::new(root, &settings).unwrap();
    let mut updater = Updater::new(settings, paths, Runner::new(apply), "test".to_owned());
    updater.programs = Programs {
        systemctl: stub(bin, "systemctl", 0),
        sh: "sh".to_owned(),
    };
    updater
}

/// The downloaded file, as the download leaves it in a staging directory.
fn staged(updater: &Updater, bytes: &[u8]) -> Staging {
    let staging = Staging::create(&updater.paths.staging_dir).unwrap();
    std::fs::write(staging.path.join("package.tar.gz"), bytes).unwrap();
    staging
}

fn install(updater: &Updater, bytes: &[u8]) -> Result<(), Failure> {
    let staging = staged(updater, bytes);
    updater.install_archive(&staging.path.join("package.tar.gz"), &staging.path)
}

/// The root's files but the staging directory's.
fn install_snapshot(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
    snapshot(root)
        .into_iter()
        .filter(|f| !f.0.starts_with("var/"))
        .collect()
}

#[test]
fn a_verified_package_is_installed_and_the_agent_restarted_with_apply_on() {
    let root = root_with_old_install();
    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let updater = updater(root.path(), bin.path(), true, "");

    assert_eq!(install(&updater, &good_package()), Ok(()));

    let plugins = root.path().join("usr/lib/nova-agent/plugins");
    let binary = root.path().join("usr/sbin/nova-agent");
    assert_eq!(std::fs::read(&binary).unwrap(), NEW_BINARY);
    assert_eq!(
        std::fs::metadata(&binary).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(std::fs::read(plugins.join("x.so")).unwrap(), NEW_PLUGIN);
    assert_eq!(std::fs::read(plugins.join("z.so")).unwrap(), OTHER_PLUGIN);
    assert_eq!(std::fs::read(plugins.join("y.so")).unwrap(), KEPT_PLUGIN);
    assert_eq!(
        stub_log(bin.path(), "systemctl"),
        "--no-block restart nova-agent\n"
    );
    // The staging directory is cleaned.
    let staging = root.path().join("var/lib/nova-agent/update");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
}

#[test]
fn with_apply_off_the_package_is_verified_and_nothing_is_installed_or_run() {
    let root = root_with_old_install();
    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    let before = install_snapshot(root.path());
    let bin = tempfile::tempdir().unwrap();
    let updater = updater(root.path(), bin.path(), false, "");

    assert_eq!(install(&updater, &good_package()), Ok(()));
    assert_eq!(install_snapshot(root.path()), before);
    assert_eq!(stub_log(bin.path(), "systemctl"), "");

    // The checks still run: a bad package is refused.
    let bad = tarball(&[Member::Symlink("nova-agent-1/bin/nova-agent", "/bin/sh")]);
    assert_eq!(
        install(&updater, &bad),
        Err(Failure::from(
            "refusing package member 'nova-agent-1/bin/nova-agent': it is a symbolic link"
        ))
    );
}

#[test]
fn without_a_way_to_restart_nothing_is_installed_and_the_answer_is_404() {
    let root = root_with_old_install();
    let before = install_snapshot(root.path());
    let bin = tempfile::tempdir().unwrap();
    let updater = updater(root.path(), bin.path(), true, "");

    assert_eq!(
        install(&updater, &good_package()),
        Err(Failure {
            kind: ErrorKind::NotFound,
            message: "No init script found to restart".to_owned()
        })
    );
    assert_eq!(install_snapshot(root.path()), before);
}

#[test]
fn a_refused_package_leaves_the_install_byte_identical_and_staging_clean() {
    let root = root_with_old_install();
    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    let before = install_snapshot(root.path());
    let bin = tempfile::tempdir().unwrap();
    let updater = updater(root.path(), bin.path(), true, "");
    let traversal = tarball(&[
        Member::File("nova-agent-1/bin/nova-agent", b"x"),
        Member::File("nova-agent-1/../../usr/sbin/nova-agent", b"evil"),
    ]);

    let failure = install(&updater, &traversal).unwrap_err();
    assert_eq!(failure.kind, ErrorKind::Failed);
    assert_eq!(
        failure.message,
        "refusing package member 'nova-agent-1/../../usr/sbin/nova-agent': it has a '..' component"
    );
    assert_eq!(install_snapshot(root.path()), before);
    assert_eq!(stub_log(bin.path(), "systemctl"), "");
    let staging = root.path().join("var/lib/nova-agent/update");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
}

#[test]
fn staging_removes_what_an_earlier_update_left() {
    let root = tempfile::tempdir().unwrap();
    let dir = GuestPath::new(root.path(), "/var/lib/nova-agent/update").unwrap();
    write(
        root.path(),
        "var/lib/nova-agent/update/nova-agent-update.1.0/package.tar.gz",
        b"x",
        0o600,
    );
    write(
        root.path(),
        "var/lib/nova-agent/update/unrelated",
        b"kept",
        0o600,
    );
    let staging = Staging::create(&dir).unwrap();
    let mode = std::fs::metadata(&staging.path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let mut names: Vec<String> = std::fs::read_dir(&dir.real)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2);
    assert_eq!(names[1], "unrelated");
    assert!(names[0].starts_with("nova-agent-update."));
    assert_ne!(names[0], "nova-agent-update.1.0");
    drop(staging);
    assert_eq!(std::fs::read_dir(&dir.real).unwrap().count(), 1);
}

#[test]
fn requests_are_refused_before_any_download() {
    let root = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let strict = updater(root.path(), bin.path(), false, r#""require_https": true"#);
    let fail = |updater: &Updater, value: &str| updater.update(value).unwrap_err().message;
    assert_eq!(
        fail(&strict, r#""http://127.0.0.1:9/p.tar.gz,ff""#),
        HTTP_REFUSED
    );
    assert_eq!(
        fail(&strict, r#""ftp://h/p.tar.gz,ff""#),
        "unsupported URL scheme 'ftp': only http and https are supported"
    );
    assert_eq!(fail(&strict, r#"{"url": "x"}"#), MISSING_IN_DICT);
    assert_eq!(fail(&strict, r#""no comma""#), NO_COMMA);
    // Nothing was staged for any of them.
    assert!(!root.path().join("var").exists());

    // One update at a time.
    let _held = strict.busy_for_test();
    assert_eq!(fail(&strict, r#""https://h/p.tar.gz,ff""#), BUSY);
}

#[test]
fn the_plugin_checks_its_table_at_init_and_answers_by_kind() {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};
    use nova_agent_plugin_api::CommandError;

    let root = tempfile::tempdir().unwrap();
    let host = || TestHost::new(root.path().display().to_string());
    let refused = TestAgent::new(host())
        .with_plugin(crate::init, serde_json::json!({"timeout": "5"}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.update] timeout: invalid type: string \"5\", expected u64"
    );
    let agent = TestAgent::new(host())
        .with_plugin(crate::init, serde_json::json!({}))
        .unwrap();
    assert_eq!(
        agent.run("agentupdate", r#""no comma""#).result,
        Err(CommandError::failed(NO_COMMA))
    );
    // The one answer that is not a plain failure.
    let no_restart = Failure {
        kind: ErrorKind::NotFound,
        message: restart::NO_INIT_SCRIPT.to_owned(),
    };
    assert_eq!(
        CommandError::from(no_restart),
        CommandError::not_found("No init script found to restart")
    );
}
