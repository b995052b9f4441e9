//! The `[plugins.file-inject]` table.

use nova_agent_plugin_api::PluginError;
use serde::Deserialize;

use crate::path::{GuestPath, Target};

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
    /// Parses the table's JSON (`{}` or `""` when the config has none).
    pub(crate) fn parse(config_json: &str) -> Result<Config, PluginError> {
        let json = match config_json.trim() {
            "" => "{}",
            json => json,
        };
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| {
            PluginError::failed(format!("[plugins.file-inject]: {}", without_position(&e)))
        })?;
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
    let refuse = |why: &str| {
        Err(PluginError::failed(format!(
            "[plugins.file-inject] allow: {prefix:?} {why}"
        )))
    };
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

/// serde_json's message without its " at line 1 column 6" (the JSON is the
/// agent's rendering of a TOML table, so its positions mean nothing to people).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if e.line() == 0 {
        return message;
    }
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}
