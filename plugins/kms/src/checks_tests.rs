//! Tests of the checks before anything runs: the seed's vector, the value
//! and the OS.

use super::*;

// --- The seed's vector -------------------------------------------------------

#[test]
fn up2date_is_the_seed_vector_byte_for_byte() {
    let domains: Vec<Domain> = vector_domains()
        .iter()
        .map(|d| Domain::parse(d).unwrap())
        .collect();
    assert_eq!(up2date::render(&domains), vector_up2date());
}

#[test]
fn kmsactivate_writes_the_vector_s_file_with_mode_0644() {
    let guest = Guest::rhel(false);
    let domains = serde_json::to_string(&vector_domains()).unwrap();
    let value = format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": {domains}}}"#);
    guest.stub("rhnreg_ks", 0);
    assert_eq!(guest.call(&value), ok());
    assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());
    assert_eq!(guest.mode(UP2DATE), 0o644);
    assert_eq!(guest.file(BACKUP), None, "no previous file, no backup");
}

#[test]
fn one_domain_as_a_string() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    let value =
        format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": "rhn.example.com"}}"#);
    assert_eq!(guest.call(&value), ok());
    let text = guest.file(UP2DATE).unwrap();
    assert!(
        text.contains("\nserverURL=https://rhn.example.com/XMLRPC;\n"),
        "{text}"
    );
    assert!(
        text.contains("\nnoSSLServerURL=http://rhn.example.com/XMLRPC;\n"),
        "{text}"
    );
}

// --- The value -----------------------------------------------------------------

#[test]
fn missing_keys_are_named() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    let cases = [
        (
            r#"{"profile": "p", "domains": "a.example"}"#.to_owned(),
            "activation_key",
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "domains": "a.example"}}"#),
            "profile",
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "p"}}"#),
            "domains",
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": null}}"#),
            "domains",
        ),
    ];
    for (value, key) in cases {
        assert_eq!(
            guest.call(&value),
            error(&format!("Missing '{key}' key")),
            "{value}"
        );
    }
    assert_eq!(missing("org"), "Missing 'org' key");
    assert_eq!(guest.file(UP2DATE), None, "nothing written");
}

#[test]
fn invalid_values_are_refused_before_anything_is_touched() {
    let guest = Guest::rhel(false);
    guest.stub("rhnreg_ks", 0);
    std::fs::write(guest.real(SYSTEMID), "old").unwrap();
    let key_message =
        "Invalid 'activation_key': expected a non-empty string of printable characters";
    let domains_message =
        "Invalid 'domains': expected a host name or a non-empty list of host names";
    let cases: Vec<(String, String)> = vec![
        ("\"\"".to_owned(), NOT_AN_OBJECT.to_owned()),
        ("[1, 2]".to_owned(), NOT_AN_OBJECT.to_owned()),
        ("not json".to_owned(), NOT_AN_OBJECT.to_owned()),
        (
            r#"{"activation_key": "", "profile": "p", "domains": "a"}"#.to_owned(),
            key_message.to_owned(),
        ),
        (
            r#"{"activation_key": 42, "profile": "p", "domains": "a"}"#.to_owned(),
            key_message.to_owned(),
        ),
        (
            r#"{"activation_key": "Sup3r\nS3cret", "profile": "p", "domains": "a"}"#.to_owned(),
            key_message.to_owned(),
        ),
        (
            r#"{"activation_key": "Sup3r\u0000S3cret", "profile": "p", "domains": "a"}"#.to_owned(),
            key_message.to_owned(),
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "a\nb", "domains": "a"}}"#),
            "Invalid 'profile': expected a non-empty string without control characters".to_owned(),
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "", "domains": "a"}}"#),
            "Invalid 'profile': expected a non-empty string without control characters".to_owned(),
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": ["p"], "domains": "a"}}"#),
            "Invalid 'profile': expected a non-empty string without control characters".to_owned(),
        ),
        (
            format!(
                r#"{{"activation_key": "{KEY}", "profile": "p", "domains": "a", "org": "x\u001b[2J"}}"#
            ),
            "Invalid 'org': expected a non-empty string without control characters".to_owned(),
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": []}}"#),
            domains_message.to_owned(),
        ),
        (
            format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": 7}}"#),
            domains_message.to_owned(),
        ),
    ];
    for (value, message) in cases {
        assert_eq!(guest.call(&value), error(&message), "{value}");
    }
    let bad_hosts = [
        "a.example/XMLRPC;http://evil",
        "a.example\nserverURL=x",
        "a b",
        "a_b.example",
        "",
        "a..example",
        ".a.example",
        "a.example.",
        "-a.example",
        "a-.example",
        "exämple.com",
        "a:443",
    ];
    for host in bad_hosts {
        let domains = serde_json::to_string(&["ok.example", host]).unwrap();
        let value =
            format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": {domains}}}"#);
        assert_eq!(
            guest.call(&value),
            error("Invalid 'domains': entry 2 is not a host name (letters, digits, '-' and '.')"),
            "{host:?}"
        );
    }
    let value = format!(r#"{{"activation_key": "{KEY}", "profile": "p", "domains": [1]}}"#);
    assert_eq!(
        guest.failure(&value),
        "Invalid 'domains': entry 1 is not a host name (letters, digits, '-' and '.')"
    );
    assert_eq!(guest.file(UP2DATE), None, "nothing written");
    assert_eq!(
        guest.file(SYSTEMID).as_deref(),
        Some("old"),
        "nothing removed"
    );
}

#[test]
fn host_names_that_pass() {
    let long_label = "a".repeat(63);
    for host in [
        "rhn.example.com",
        "PROXY-1.Example.NET",
        "localhost",
        "192.0.2.10",
        &long_label,
    ] {
        assert!(Domain::parse(host).is_some(), "{host}");
    }
    assert!(Domain::parse(&"a".repeat(64)).is_none());
    assert!(
        Domain::parse(&["abc"; 64].join(".")).is_none(),
        "over 253 characters"
    );
}

#[test]
fn the_key_is_never_in_a_message_or_debug_output() {
    let value = r#"{"activation_key": "Sup3rS3cret\u0007", "profile": "p", "domains": "a"}"#;
    let message = Request::parse(value).unwrap_err();
    assert!(!message.contains("Sup3rS3cret"), "{message}");
    let request = Request::parse(&value_with("")).unwrap();
    let debug = format!("{request:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("ActivationKey(<secret>)"), "{debug}");
}

#[test]
fn extra_keys_are_ignored_and_null_org_is_absent() {
    let request = Request::parse(&value_with(r#", "org": null, "other": [1]"#)).unwrap();
    assert_eq!(request.org, None);
    assert_eq!(request.profile.as_deref(), Some("web-01"));
    let request = Request::parse(&value_with(r#", "org": "Acme Corp. (ÉU)""#)).unwrap();
    assert_eq!(request.org.as_deref(), Some("Acme Corp. (ÉU)"));
}

// --- The OS --------------------------------------------------------------------

#[test]
fn only_the_red_hat_family_is_supported() {
    for os_release in [
        "ID=debian\n",
        "ID=ubuntu\nID_LIKE=debian\n",
        "ID=\"opensuse-leap\"\n",
        "",
    ] {
        let guest = Guest::new(os_release, false);
        guest.stub("rhnreg_ks", 0);
        assert_eq!(
            guest.call(&value_with("")),
            error(NOT_SUPPORTED),
            "{os_release:?}"
        );
        assert_eq!(guest.file(UP2DATE), None);
    }
    // The OS comes first, as in the seed: even a malformed value gets this.
    let guest = Guest::new("ID=debian\n", false);
    assert_eq!(guest.call("{}"), error(NOT_SUPPORTED));
}

#[test]
fn centos_rocky_and_the_rest_of_the_family_are_accepted() {
    // B-NET-16: the seed accepted "redhat" only.
    for os_release in [
        "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\n",
        "ID=\"rocky\"\n",
        "ID=\"almalinux\"\n",
        "ID=\"rhel\"\n",
        "ID=fedora\n",
        "ID=\"ol\"\n",
        "ID=\"somederivative\"\nID_LIKE=\"rhel centos fedora\"\n",
    ] {
        let guest = Guest::new(os_release, false);
        guest.stub("rhnreg_ks", 0);
        assert_eq!(guest.call(&value_with("")), ok(), "{os_release:?}");
        assert_eq!(guest.file(UP2DATE).unwrap(), vector_up2date());
    }
    let guest = Guest::new("", false);
    std::fs::write(
        guest.real("/etc/redhat-release"),
        "CentOS release 6.10 (Final)\n",
    )
    .unwrap();
    guest.stub("rhnreg_ks", 0);
    assert_eq!(guest.call(&value_with("")), ok());
}

// --- The plugin ------------------------------------------------------------------

#[test]
fn the_plugin_takes_no_config_keys_and_serves_kmsactivate() {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};

    let guest = Guest::new("ID=debian\n", false);
    let host = || TestHost::new(guest.root.display().to_string());
    let refused = TestAgent::new(host())
        .with_plugin(crate::init, json!({"org": "x"}))
        .err()
        .unwrap();
    assert_eq!(
        refused.message(),
        "[plugins.kms] takes no keys; found 'org'"
    );
    let agent = TestAgent::new(host())
        .with_plugin(crate::init, json!({}))
        .unwrap();
    assert_eq!(
        agent.run("kmsactivate", &value_with("")).result,
        Err(CommandError::failed(NOT_SUPPORTED))
    );
}
