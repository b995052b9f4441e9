//! Property tests (the fuzz target of the config loader): arbitrary text,
//! and TOML built from the config's own keys with values of every type, right
//! and wrong. `Config::parse` never panics; an error is one line naming the
//! file, a line and a column inside the text; an accepted config holds what
//! the loader promises (absolute paths, one channel per exchange, a known log
//! level, plugin tables as JSON objects). A fixed number of cases from a
//! fixed seed; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override either for a
//! longer run.

use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;

use crate::config::{Config, ConfigError};

const SOURCE: &str = "/etc/nova-agent/agent.toml";

/// Parses `text`, checking the error or the config.
fn parse_checked(text: &str) -> Result<(), TestCaseError> {
    match Config::parse(text, SOURCE) {
        Ok(config) => check_config(&config),
        Err(error) => check_error(text, &error),
    }
}

fn check_error(text: &str, error: &ConfigError) -> Result<(), TestCaseError> {
    let message = error.to_string();
    prop_assert!(!message.contains(['\n', '\r']), "not one line: {message:?}");
    let rest = message
        .strip_prefix(SOURCE)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(|| TestCaseError::fail(format!("no file named: {message:?}")))?;
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
    let column: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
    let lines = text.split('\n').count();
    prop_assert!(
        (1..=lines).contains(&line),
        "line {line} of {lines}: {message:?}"
    );
    let width = text.split('\n').nth(line - 1).unwrap_or("").chars().count();
    prop_assert!(
        (1..=width + 1).contains(&column),
        "column {column}: {message:?}"
    );
    let what = parts.next().unwrap_or("");
    prop_assert!(
        what.len() > 1 && what.starts_with(' '),
        "no reason: {message:?}"
    );
    Ok(())
}

fn check_config(config: &Config) -> Result<(), TestCaseError> {
    let paths = config
        .plugin_dirs
        .iter()
        .chain([&config.root, &config.state_dir, &config.run_dir])
        .chain(&config.log_file);
    for path in paths {
        prop_assert!(path.is_absolute(), "{}", path.display());
    }
    prop_assert!(!config.plugin_dirs.is_empty());
    prop_assert!(!config.channels.is_empty());
    for (i, channel) in config.channels.iter().enumerate() {
        prop_assert!(!channel.exchange.is_empty() && !channel.parser.is_empty());
        let twice = config.channels[..i]
            .iter()
            .any(|c| c.exchange == channel.exchange);
        prop_assert!(!twice, "exchange {} serves two channels", channel.exchange);
    }
    prop_assert!(
        ["off", "error", "warn", "info", "debug", "trace"].contains(&config.log_level.as_str())
    );
    let mib = config.warn_superseded_bytes >> 20;
    prop_assert_eq!(mib << 20, config.warn_superseded_bytes);
    prop_assert!((1..=1 << 20).contains(&mib));
    for (name, table) in &config.plugins {
        let json: serde_json::Value = serde_json::from_str(&table.json).unwrap();
        prop_assert!(json.is_object(), "[plugins.{name}] {}", table.json);
        prop_assert!(
            json.get("enabled").is_none(),
            "[plugins.{name}] passes 'enabled'"
        );
    }
    Ok(())
}

/// A TOML value of any type, the kinds the config takes and others; strings
/// that quote anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "\"/usr/lib/nova-agent/plugins\"", "\"relative/dir\"", "\"\"", "\"/\"", "true", "false",
            "0", "1", "-1", "1048577", "9223372036854775807", "1.5", "[]", "[\"/a\", \"b\"]",
            "\"unix-socket\"", "\"xenstore\"", "\"json\"", "\"qga\"", "\"INFO\"", "\"debug\"",
            "{ a = 1 }", "1979-05-27T07:32:00Z", "'literal'", "\"\"\"multi\nline\"\"\"",
            "\"\\u00e9\"", "\"tab\\there\"", "\"new\\nline\"",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>().prop_map(|s| toml_quote(&s)),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// `s` as a TOML basic string.
fn toml_quote(s: &str) -> String {
    // JSON string escapes are a subset of TOML's, except that TOML has no
    // escape for DEL, which it takes as is only outside control characters.
    serde_json::to_string(s)
        .unwrap()
        .replace('\u{7f}', "\\u007f")
}

/// A line of a config file: a header or a key, from the config's own.
fn line() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[[channel]]",
        "[plugins.json]",
        "[plugins.network]",
        "[plugins.\"a b\"]",
        "[commands]",
        "[commands.prefer]",
        "[log]",
        "[reload]",
        "[unknown]",
        "[[channel]",
    ])
    .prop_map(str::to_owned);
    let key = prop::sample::select(vec![
        "plugin_dir",
        "root",
        "apply",
        "state_dir",
        "run_dir",
        "exchange",
        "parser",
        "enabled",
        "deny",
        "level",
        "file",
        "warn_superseded_mib",
        "version",
        "\"quoted key\"",
        "a.b",
    ]);
    prop_oneof![
        1 => header,
        5 => (key, value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "[ -~]{0,12}",
    ]
}

/// A channel that makes the rest of the file count.
const CHANNEL: &str = "[[channel]]\nexchange = \"unix-socket\"\nparser = \"json\"\n";

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_parses_or_fails_cleanly(text in any::<String>()) {
        parse_checked(&text)?;
    }

    #[test]
    fn config_shaped_text_parses_or_fails_cleanly(
        lines in prop::collection::vec(line(), 0..12),
        with_channel: bool,
    ) {
        let body = lines.join("\n");
        let text = if with_channel { format!("{body}\n{CHANNEL}") } else { body };
        parse_checked(&text)?;
    }

    #[test]
    fn top_level_keys_of_any_value_parse_or_fail_cleanly(
        lines in prop::collection::vec(line(), 0..6),
    ) {
        parse_checked(&format!("{}\n{CHANNEL}", lines.join("\n")))?;
    }
}
