//! Tests of `config`.
use super::*;

const MINIMAL: &str = "[[channel]]\nexchange = \"unix-socket\"\nparser = \"json\"\n";

#[test]
fn defaults_follow_the_contract() {
    let c = Config::parse(MINIMAL, "t.toml").unwrap();
    assert_eq!(
        c.plugin_dirs,
        vec![PathBuf::from("/usr/lib/nova-agent/plugins")]
    );
    assert_eq!(c.root, PathBuf::from("/"));
    assert!(c.apply);
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/nova-agent"));
    assert_eq!(c.run_dir, PathBuf::from("/run/nova-agent"));
    assert_eq!(c.log_level, "info");
    assert_eq!(c.channels[0].name(), "unix-socket+json");
    assert_eq!(c.plugin_json("anything"), "{}");
}

#[test]
fn the_superseded_warning_threshold_is_in_mib_and_bounded() {
    let c = Config::parse(MINIMAL, "t.toml").unwrap();
    assert_eq!(c.warn_superseded_bytes, 64 << 20);
    let c = Config::parse(
        &format!("{MINIMAL}[reload]\nwarn_superseded_mib = 8\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.warn_superseded_bytes, 8 << 20);
    for bad in ["0", "-1", "2000000"] {
        let text = format!("{MINIMAL}[reload]\nwarn_superseded_mib = {bad}\n");
        let e = Config::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("warn_superseded_mib must be between 1 and 1048576"),
            "{e}"
        );
    }
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let text = format!("root = \"/\"\nplugin_dirr = \"/x\"\n{MINIMAL}");
    let e = Config::parse(&text, "/etc/a.toml").unwrap_err().to_string();
    assert!(
        e.starts_with("/etc/a.toml:2:1: unknown field `plugin_dirr`"),
        "{e}"
    );
}

#[test]
fn bad_toml_names_its_place() {
    let e = Config::parse("root = \n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.toml:1:"), "{e}");
}

#[test]
fn unknown_key_in_a_channel_is_an_error() {
    let text = "[[channel]]\nexchange = \"a\"\nparser = \"b\"\nparsr = \"c\"\n";
    let e = Config::parse(text, "a.toml").unwrap_err().to_string();
    assert!(e.starts_with("a.toml:4:1: unknown field `parsr`"), "{e}");
}

#[test]
fn plugin_tables_are_passed_as_json_without_enabled() {
    let text = format!(
        "{MINIMAL}[plugins.unix-socket]\npath = \"/run/x.sock\"\n[plugins.kms]\nenabled = false\n"
    );
    let c = Config::parse(&text, "a.toml").unwrap();
    assert_eq!(c.plugin_json("unix-socket"), r#"{"path":"/run/x.sock"}"#);
    assert_eq!(c.plugin_json("kms"), "{}");
    assert!(!c.plugin_enabled("kms"));
    assert!(c.plugin_enabled("unix-socket"));
}

#[test]
fn plugin_dir_may_be_a_list_and_root_must_be_absolute() {
    let text = format!("plugin_dir = [\"/a\", \"/b\"]\n{MINIMAL}");
    let c = Config::parse(&text, "a.toml").unwrap();
    assert_eq!(
        c.plugin_dirs,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
    let e = Config::parse(
        &format!("plugin_dir = [\"/a\", \"b\"]\n{MINIMAL}"),
        "a.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "a.toml:1:14: plugin_dir must be absolute paths");
    let e = Config::parse(&format!("root = \"sandbox\"\n{MINIMAL}"), "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "a.toml:1:8: root must be an absolute path");
}

#[test]
fn channels_are_required_and_an_exchange_serves_one() {
    let e = Config::parse("apply = false\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no [[channel]]"), "{e}");
    let e = Config::parse(&format!("{MINIMAL}{MINIMAL}"), "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("used by two channels"), "{e}");
}

#[test]
fn the_log_file_must_be_absolute() {
    let text = format!("{MINIMAL}[log]\nfile = \"agent.log\"\n");
    let e = Config::parse(&text, "a.toml").unwrap_err().to_string();
    assert!(e.contains("[log] file must be an absolute path"), "{e}");
    let text = format!("{MINIMAL}[log]\nfile = \"/var/log/x.log\"\n");
    let c = Config::parse(&text, "a.toml").unwrap();
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/x.log")));
    assert_eq!(c.daemon_log_file(), PathBuf::from("/var/log/x.log"));
    let c = Config::parse(MINIMAL, "a.toml").unwrap();
    assert_eq!(
        c.daemon_log_file(),
        PathBuf::from("/var/log/nova-agent.log")
    );
}

#[test]
fn log_level_is_checked_and_commands_parsed() {
    let text = format!("{MINIMAL}[log]\nlevel = \"loud\"\n");
    let e = Config::parse(&text, "a.toml").unwrap_err().to_string();
    assert!(e.starts_with("a.toml:5:9: log level 'loud'"), "{e}");
    let text = format!(
        "{MINIMAL}[commands]\ndeny = [\"kmsactivate\"]\nprefer = {{ resetnetwork = \"vendor-net\" }}\n"
    );
    let c = Config::parse(&text, "a.toml").unwrap();
    assert!(c.deny.contains("kmsactivate"));
    assert_eq!(c.prefer["resetnetwork"], "vendor-net");
}

#[test]
fn the_packaged_default_config_parses() {
    let c = Config::parse(include_str!("../../packaging/agent.toml"), "agent.toml").unwrap();
    assert!(c.apply);
    assert_eq!(c.root, PathBuf::from("/"));
    let channels: Vec<String> = c.channels.iter().map(ChannelConfig::name).collect();
    assert_eq!(
        channels,
        ["xenstore+json", "virtio-serial+qga", "unix-socket+json"]
    );
    assert_eq!(
        c.plugin_json("virtio-serial"),
        r#"{"method":"virtio-serial","path":"/dev/virtio-ports/org.qemu.guest_agent.0"}"#
    );
    assert_eq!(
        c.plugin_json("xenstore"),
        r#"{"request_path":"data/host","response_path":"data/guest"}"#
    );
    assert_eq!(
        c.plugin_json("unix-socket"),
        r#"{"path":"/run/nova-agent/agent.sock"}"#
    );
}

#[test]
fn embedded_default_lives_under_the_given_directory() {
    let c = Config::embedded_default_in(Path::new("/work/x \"q\"/target/release")).unwrap();
    assert!(!c.apply);
    assert_eq!(
        c.plugin_dirs,
        vec![PathBuf::from("/work/x \"q\"/target/release")]
    );
    assert!(c.root.starts_with("/work/x \"q\"/target/release"));
    let channels: Vec<String> = c.channels.iter().map(ChannelConfig::name).collect();
    assert_eq!(channels, ["unix-socket+json", "virtio-serial+qga"]);
    assert!(c.plugin_json("unix-socket").contains("target/release"));
    assert!(c.plugin_json("virtio-serial").contains("target/release"));
}

/// A directory of mode `mode`, as root (the agent's real case): the
/// checks apply to root only, so other users skip with a note.
fn root_dir(path: &Path, mode: u32) -> Option<()> {
    use std::os::unix::fs::PermissionsExt;
    if !trusted::required() {
        eprintln!("skipped: the checks apply to root only");
        return None;
    }
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    Some(())
}

#[test]
fn as_root_a_config_others_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let top = tempfile::tempdir().unwrap();
    let Some(()) = root_dir(top.path(), 0o755) else {
        return;
    };
    let path = top.path().join("agent.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let chmod = |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
    chmod(0o644).unwrap();
    Config::read(&path).unwrap();
    chmod(0o666).unwrap();
    let e = Config::read(&path).unwrap_err().to_string();
    let expected = format!(
        "config {}: writable by group or others (mode 0666); \
         the config file must be writable by root only",
        path.display()
    );
    assert_eq!(e, expected);
    chmod(0o644).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
    let e = Config::read(&path).unwrap_err().to_string();
    assert!(e.ends_with(": owned by uid 1000; the config file must be owned by root"));
}

#[test]
fn as_root_state_dir_and_run_dir_must_be_roots_alone() {
    let top = tempfile::tempdir().unwrap();
    let Some(()) = root_dir(top.path(), 0o755) else {
        return;
    };
    let d = top.path().display();
    let text = format!("state_dir = \"{d}/state/x\"\nrun_dir = \"{d}/run\"\n{MINIMAL}");
    let c = Config::parse(&text, "a.toml").unwrap();
    // Neither exists yet (the agent creates them); then sticky on the
    // way is fine, as only root can replace root's entries there.
    c.check_private_dirs().unwrap();
    root_dir(&top.path().join("state"), 0o1777).unwrap();
    c.check_private_dirs().unwrap();
    root_dir(&top.path().join("run"), 0o775).unwrap();
    let e = c.check_private_dirs().unwrap_err().to_string();
    let expected = format!(
        "run_dir {d}/run: directory {d}/run is writable by group or others (mode 0775); \
         it and its parents must be writable by root only"
    );
    assert_eq!(e, expected);
}

#[test]
fn isolation_defaults_and_keys() {
    let c = Config::parse(MINIMAL, "t.toml").unwrap();
    assert_eq!(c.isolation, Isolation::default());
    assert!(c.isolation.of("crash-fixture").is_none());
    assert_eq!(c.isolation.timeout, Duration::from_secs(60));
    assert_eq!(c.isolation.memory_bytes, 256 << 20);

    let text = format!(
        "{MINIMAL}[isolation]\nprocess = [\"crash-fixture\", \"vendor\"]\ntimeout = 0.5\n\
         memory_mib = 64\nuser = \"nobody\"\nno_new_privs = true\nrestart_delay = 0\n\
         restart_delay_max = 30\n"
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    let isolated = c.isolation.of("vendor").unwrap();
    assert_eq!(isolated.timeout, Duration::from_millis(500));
    assert_eq!(isolated.memory_bytes, 64 << 20);
    assert_eq!(isolated.user.as_deref(), Some("nobody"));
    assert!(isolated.no_new_privs);
    assert_eq!(isolated.restart_delay, Duration::ZERO);
    assert_eq!(isolated.restart_delay_max, Duration::from_secs(30));
    assert!(c.isolation.of("core").is_none());

    // `root` is the agent's own user: nothing to switch to.
    let c = Config::parse(
        &format!("{MINIMAL}[isolation]\nuser = \"root\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.isolation.user, None);
}

#[test]
fn bad_isolation_values_name_their_key_and_place() {
    for (body, expected) in [
        (
            "timeout = 0",
            "t.toml:6:11: [isolation] timeout must be between 0.01 and 86400 seconds",
        ),
        ("timeout = \"5s\"", "t.toml:6:11:"),
        (
            "memory_mib = 8",
            "[isolation] memory_mib must be between 16 and 1048576",
        ),
        (
            "user = \"bad user\"",
            "[isolation] user \"bad user\" is not a user name",
        ),
        (
            "process = [\"two words\"]",
            "[isolation] process: \"two words\" is not a plugin name",
        ),
        (
            "restart_delay = -1",
            "[isolation] restart_delay must be between 0 and 3600 seconds",
        ),
        (
            "restart_delay = 10\nrestart_delay_max = 5",
            "[isolation] restart_delay_max must not be less than restart_delay",
        ),
        ("processes = []", "unknown field `processes`"),
    ] {
        let text = format!("{MINIMAL}\n[isolation]\n{body}\n");
        let e = Config::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(expected), "{body}: {e}");
        assert!(e.starts_with("t.toml:"), "{body}: {e}");
    }
}
