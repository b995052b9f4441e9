//! A plugin's `[plugins.<name>]` table, checked into its settings type, with
//! one error format: `[plugins.<name>] <key path>: <what is wrong>`.

use nova_agent_plugin_api::PluginError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserialises `table` (the JSON object `init` received) into `T`. Errors
/// name the plugin's table and the key path inside it:
/// `[plugins.update] timeout: invalid type: string "x", expected u64`.
/// Give `T` `#[serde(deny_unknown_fields)]` to refuse unknown keys.
pub fn parse_table<T: DeserializeOwned>(plugin: &str, table: Value) -> Result<T, PluginError> {
    // A good table goes through the plain deserializer; only a bad one is
    // read again to find the path to its error. The tracking code then
    // stays out of the way (and out of memory) when the config is right.
    match T::deserialize(&table) {
        Ok(parsed) => Ok(parsed),
        Err(_) => Err(error_with_path::<T>(plugin, table)),
    }
}

/// The error `table` gives `T`, with the key path to it.
#[cold]
fn error_with_path<T: DeserializeOwned>(plugin: &str, table: Value) -> PluginError {
    match serde_path_to_error::deserialize::<_, T>(table) {
        Ok(_) => table_error(plugin, "the table was read differently twice"),
        Err(e) => {
            let path = e.path().to_string();
            let inner = without_position(&e.into_inner());
            if path.is_empty() || path == "." {
                table_error(plugin, &inner)
            } else {
                table_error(plugin, &format!("{path}: {inner}"))
            }
        }
    }
}

/// Refuses any key in `table`, for a plugin that takes none.
pub fn no_keys(plugin: &str, table: &Value) -> Result<(), PluginError> {
    match table.as_object() {
        Some(keys) if keys.is_empty() => Ok(()),
        Some(keys) => {
            let names: Vec<String> = keys.keys().map(|k| format!("'{k}'")).collect();
            Err(table_error(
                plugin,
                &format!("takes no keys; found {}", names.join(", ")),
            ))
        }
        None => Err(table_error(plugin, "must be a table")),
    }
}

/// `[plugins.<plugin>] <message>`: the one format of a config error.
pub fn table_error(plugin: &str, message: &str) -> PluginError {
    PluginError::failed(format!("[plugins.{plugin}] {message}"))
}

/// serde_json's message without " at line 1 column 42": the table is not
/// text the operator wrote, so the position means nothing to them.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        timeout: u64,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        #[serde(default)]
        names: Vec<String>,
    }

    fn message(result: Result<Settings, PluginError>) -> String {
        result.unwrap_err().message().to_owned()
    }

    #[test]
    fn a_good_table_parses() {
        let parsed: Settings = parse_table("x", json!({"timeout": 5})).unwrap();
        assert_eq!(parsed.timeout, 5);
    }

    #[test]
    fn errors_name_the_table_and_the_key_path() {
        assert_eq!(
            message(parse_table("update", json!({"timeout": "5"}))),
            "[plugins.update] timeout: invalid type: string \"5\", expected u64"
        );
        assert_eq!(
            message(parse_table(
                "update",
                json!({"timeout": 1, "nested": {"names": [1]}})
            )),
            "[plugins.update] nested.names[0]: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            message(parse_table("update", json!({}))),
            "[plugins.update] missing field `timeout`"
        );
        let unknown = message(parse_table("update", json!({"timeout": 1, "tmeout": 2})));
        assert!(
            unknown.starts_with("[plugins.update] tmeout: unknown field `tmeout`"),
            "{unknown}"
        );
    }

    #[test]
    fn a_plugin_without_keys_refuses_any() {
        no_keys("core", &json!({})).unwrap();
        assert_eq!(
            no_keys("core", &json!({"a": 1, "b": 2}))
                .unwrap_err()
                .message(),
            "[plugins.core] takes no keys; found 'a', 'b'"
        );
    }
}
