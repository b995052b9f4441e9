//! The `[plugins.file-inject]` table.

use nova_agent_plugin_api::PluginError;
use nova_agent_support::config::{parse_table, table_error};
use serde::Deserialize;
use serde_json::Value;

use crate::path::{GuestPath, Target};

const PLUGIN: &str = "file-inject";

/// The plugin's settings. Parsing touches nothing on disk.
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// `allow`, each prefix as its components; `None`: any path.
    allow: Option<Vec<Vec<String>>>,
}

/// The table as written, before the checks serde cannot express.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    allow: Option<Vec<String>>,
}

impl Config {
    /// Checks the table (`{}` when the config has none).
    pub(crate) fn parse(table: Value) -> Result<Config, PluginError> {
        let raw: RawConfig = parse_table(PLUGIN, table)?;
        let allow = match raw.allow {
            None => None,
            Some(prefixes) => Some(
                prefixes
                    .iter()
                    .map(|prefix| allow_prefix(prefix))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Config { allow })
    }

    /// Whether the path asked for is under an `allow` prefix.
    pub(crate) fn check_allowed(&self, path: &GuestPath) -> Result<(), String> {
        if self.allows(&path.components) {
            Ok(())
        } else {
            Err(format!(
                "Path {} is not in [plugins.file-inject] allow",
                path.text
            ))
        }
    }

    /// Whether the path a request leads to, its links followed, is under an
    /// `allow` prefix too.
    pub(crate) fn check_resolved(&self, target: &Target) -> Result<(), String> {
        if self.allows(&target.components) {
            Ok(())
        } else {
            Err(format!(
                "Path {} leads to {}, which is not in [plugins.file-inject] allow",
                target.asked, target.guest
            ))
        }
    }

    fn allows<S: PartialEq<str>>(&self, components: &[S]) -> bool {
        let Some(allow) = &self.allow else {
            return true;
        };
        allow.iter().any(|prefix| {
            prefix.len() <= components.len()
                && prefix.iter().zip(components).all(|(p, c)| *c == **p)
        })
    }
}

/// One `allow` entry as its components: absolute, no `..`; `.`, repeated and
/// trailing slashes do not matter.
fn allow_prefix(prefix: &str) -> Result<Vec<String>, PluginError> {
    let refuse = |why: &str| Err(table_error(PLUGIN, &format!("allow: {prefix:?} {why}")));
    if !prefix.starts_with('/') {
        return refuse("is not an absolute path");
    }
    if prefix.contains('\0') {
        return refuse("contains a NUL byte");
    }
    let components: Vec<String> = prefix
        .split('/')
        .filter(|c| !matches!(*c, "" | "."))
        .map(str::to_owned)
        .collect();
    if components.iter().any(|c| c == "..") {
        return refuse("has a `..` component");
    }
    Ok(components)
}
