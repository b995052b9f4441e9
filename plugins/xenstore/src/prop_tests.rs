//! Property tests (the fuzz targets of XenStore path and value handling):
//! arbitrary paths, short and long, good and bad, as the config's
//! `request_path`/`response_path`, as metadata keys and as watch events.
//! Nothing panics; an accepted path is one xenstored takes; accepted
//! settings keep requests and responses apart, find a request's id in its
//! own event path only, and size responses so that any id served fits one
//! XenStore write. A fixed number of cases from a fixed seed;
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override either for a longer run.

use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;
use serde_json::json;

use crate::settings::{check_key, check_path, id_fits, Settings, MAX_ID_LEN, PAYLOAD_MAX};

/// A path: mostly XenStore names joined by `/`, short or very long,
/// sometimes with an empty component, a bad byte or a leading `/`.
fn path() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        8 => "[A-Za-z0-9_@-]{1,8}",
        1 => Just(String::new()),
        1 => "[ -~]{1,3}",
        1 => any::<String>(),
    ];
    let short = prop::collection::vec(component, 1..5);
    let long = ("[a-z]{1,8}", 100usize..700).prop_map(|(name, n)| vec![name; n]);
    (any::<bool>(), prop_oneof![8 => short, 1 => long]).prop_map(|(absolute, parts)| {
        let path = parts.join("/");
        if absolute {
            format!("/{path}")
        } else {
            path
        }
    })
}

/// A request id as xenstored could list one: a name of any length.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_@-]{1,64}",
        1 => "[A-Za-z0-9_@-]{65,100}",
        1 => "[ -~]{0,70}",
    ]
}

/// What `check_path` promises of a path it accepts.
fn check_accepted_path(path: &str) -> Result<(), TestCaseError> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    prop_assert!(!relative.is_empty(), "{path:?}");
    for component in relative.split('/') {
        prop_assert!(!component.is_empty(), "{path:?}");
        let name_bytes = component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@'));
        prop_assert!(name_bytes, "{path:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn an_accepted_path_is_one_xenstored_takes(path in path()) {
        if check_path(&path).is_ok() {
            check_accepted_path(&path)?;
        }
        if check_key(&path).is_ok() {
            prop_assert!(!path.starts_with('/'), "{path:?}");
            check_accepted_path(&path)?;
        }
    }

    #[test]
    fn accepted_settings_keep_requests_and_responses_apart(
        request in path(),
        response in path(),
        ids in prop::collection::vec(id(), 1..4),
        text in any::<String>(),
    ) {
        let Ok(settings) = Settings::parse(json!({"request_path": request, "response_path": response})) else {
            return Ok(());
        };
        check_accepted_path(&settings.request_path)?;
        check_accepted_path(&settings.response_path)?;
        let limit = settings.max_response_len();
        prop_assert!(limit > 0);
        for id in &ids {
            if id_fits(id) {
                // Any response up to the limit fits one WRITE (path, NUL, value).
                prop_assert!(settings.response(id).len() + 1 + limit <= PAYLOAD_MAX);
            }
            let request_node = settings.request(id);
            let response_node = settings.response(id);
            if !id.is_empty() && !id.contains('/') {
                prop_assert_eq!(settings.request_id(&request_node), Some(id.as_str()));
            }
            prop_assert_eq!(settings.request_id(&response_node), None, "{}", response_node);
            let below = format!("{request_node}/below");
            prop_assert_eq!(settings.request_id(&below), None);
        }
        prop_assert_eq!(settings.request_id(&settings.request_path), None);
        // An arbitrary event path names a request only as its own node.
        if let Some(id) = settings.request_id(&text) {
            prop_assert!(!id.is_empty() && !id.contains('/'));
            prop_assert_eq!(settings.request(id), text.clone());
        }
    }

    #[test]
    fn the_response_limit_leaves_room_for_the_longest_id(request in path(), response in path()) {
        if let Ok(settings) = Settings::parse(json!({"request_path": request, "response_path": response})) {
            let longest = settings.response(&"x".repeat(MAX_ID_LEN));
            prop_assert_eq!(longest.len() + 1 + settings.max_response_len(), PAYLOAD_MAX);
        }
    }
}
