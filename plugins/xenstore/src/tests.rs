//! Unit tests: the settings and name rules. The exchange against a XenStore
//! daemon is tested in `live_tests`.

use serde_json::{json, Value};

use crate::settings::{check_key, check_path, Settings, MAX_ID_LEN, PAYLOAD_MAX};

fn defaults() -> Settings {
    Settings::parse(json!({})).unwrap()
}

#[test]
fn defaults_are_nova_s_paths() {
    let settings = defaults();
    assert_eq!(settings.request_path, "data/host");
    assert_eq!(settings.response_path, "data/guest");
    assert_eq!(settings.request("abc"), "data/host/abc");
    assert_eq!(settings.response("abc"), "data/guest/abc");
}

#[test]
fn the_response_limit_leaves_room_for_the_path_of_any_id_served() {
    let settings = defaults();
    let longest_path = settings.response(&"x".repeat(MAX_ID_LEN));
    assert_eq!(
        longest_path.len() + 1 + settings.max_response_len(),
        PAYLOAD_MAX
    );
}

#[test]
fn bad_settings_are_refused_with_the_key_named() {
    let cases: [(Value, &str); 8] = [
        (
            json!({"request_path": ""}),
            "[plugins.xenstore] request_path: \"\" must name a node",
        ),
        (
            json!({"request_path": "data//host"}),
            "[plugins.xenstore] request_path: \"data//host\" has an empty component",
        ),
        (
            json!({"response_path": "data/gu est"}),
            "[plugins.xenstore] response_path: \"data/gu est\" may hold only",
        ),
        (
            json!({"response_path": "data/host"}),
            "must not contain each other",
        ),
        (
            json!({"response_path": "data/host/out"}),
            "must not contain each other",
        ),
        (
            json!({"request_path": "data/guest/in"}),
            "must not contain each other",
        ),
        (
            json!({"request_pat": "x"}),
            "[plugins.xenstore] request_pat: unknown field `request_pat`",
        ),
        (
            json!({"request_path": 5}),
            "[plugins.xenstore] request_path: invalid type",
        ),
    ];
    for (json, needle) in cases {
        let error = Settings::parse(json.clone()).unwrap_err().to_string();
        assert!(error.contains(needle), "{json}: {error}");
        assert!(error.starts_with("[plugins.xenstore] "), "{error}");
        assert!(!error.contains(" at line "), "{error}");
    }
    let absolute = Settings::parse(json!({"request_path": "/local/domain/7/data/host"})).unwrap();
    assert_eq!(absolute.request_path, "/local/domain/7/data/host");
}

#[test]
fn only_direct_children_of_the_request_path_are_requests() {
    let settings = defaults();
    assert_eq!(settings.request_id("data/host/1-2-3"), Some("1-2-3"));
    assert_eq!(settings.request_id("data/host"), None);
    assert_eq!(settings.request_id("data/host/"), None);
    assert_eq!(settings.request_id("data/host/a/b"), None);
    assert_eq!(settings.request_id("data/hostile/a"), None);
    assert_eq!(settings.request_id("/local/domain/0/data/host/a"), None);
}

#[test]
fn paths_and_keys_follow_xenstore_s_name_rules() {
    for good in [
        "data/host",
        "/local/domain/0/data",
        "vm-data/networking/BC764E000001",
        "@x_y-z",
    ] {
        assert!(check_path(good).is_ok(), "{good}");
    }
    for bad in ["", "/", "a//b", "a/", "a/b c", "a/../b", "a/b.c", "é"] {
        assert!(check_path(bad).is_err(), "{bad}");
    }
    assert!(check_key("vm-data/hostname").is_ok());
    let error = check_key("/local/domain/0/vm-data")
        .unwrap_err()
        .to_string();
    assert!(error.contains("must be relative"), "{error}");
    assert!(check_key("vm-data/../x").is_err());
}

#[test]
fn a_taken_marker_is_named_by_a_plain_id_inside_its_directory_only() {
    use crate::taken::Taken;
    use std::path::Path;
    let taken = Taken::new(Path::new("/state"));
    assert_eq!(
        taken.marker("0b1c-2d_@x").as_deref(),
        Some(Path::new("/state/xenstore/taken/0b1c-2d_@x"))
    );
    let long = "x".repeat(MAX_ID_LEN + 1);
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "../x",
        "/x",
        "a.b",
        "a\0b",
        long.as_str(),
    ] {
        assert_eq!(taken.marker(bad), None, "{bad:?}");
    }
    assert_eq!(Taken::new(Path::new("")).marker("abc"), None);
    assert_eq!(Taken::new(Path::new("state")).marker("abc"), None);
}
