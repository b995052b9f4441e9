//! From plugin directories to checked, opened plugins: scan, trust check,
//! `dlopen`, ABI check, manifest. Nothing here calls a plugin's `init`.
//!
//! Architecture invariant: no file is opened with `dlopen` before the trust
//! check passed (when running as root).

mod load;
mod scan;
mod trust;

use std::path::PathBuf;

use nova_agent_plugin_api::ffi::PluginRootRef;
use serde::Serialize;

pub use load::{error_chain, Manifest};
pub use scan::is_candidate_name;

/// The state of one file, as `plugins list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Loaded,
    Error,
    Refused,
    Disabled,
}

impl State {
    /// The name `plugins list` prints, in text and JSON alike.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Loaded => "loaded",
            State::Error => "error",
            State::Refused => "refused",
            State::Disabled => "disabled",
        }
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One file in a plugin directory and what became of it.
#[derive(Debug, Clone)]
pub struct PluginRecord {
    /// The path in the plugin directory (never a resolved or staged copy).
    pub file: PathBuf,
    /// For a file that is not a loadable plugin, only `name` is set: its stem.
    pub manifest: Manifest,
    pub state: State,
    pub error: Option<String>,
}

impl PluginRecord {
    fn failed(file: PathBuf, state: State, error: String) -> Self {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        PluginRecord {
            file,
            manifest: Manifest {
                name: stem,
                ..Manifest::default()
            },
            state,
            error: Some(error),
        }
    }

    pub fn set_error(&mut self, error: String) {
        self.state = State::Error;
        self.error = Some(error);
    }
}

/// Every candidate file's record, with the root module of those that opened.
pub struct Inspection {
    pub records: Vec<PluginRecord>,
    /// `(index into records, root module)` for each plugin that opened.
    pub opened: Vec<(usize, PluginRootRef)>,
    /// Plugin directories that could not be read: `(dir, message)`.
    pub dir_problems: Vec<(PathBuf, String)>,
}

/// Scans `plugin_dirs` and opens every trusted candidate.
pub fn inspect(plugin_dirs: &[PathBuf]) -> Inspection {
    let (files, problems) = scan::scan(plugin_dirs);
    let enforce_trust = trust::required();
    let mut records = Vec::new();
    let mut opened = Vec::new();
    for file in files {
        let load_path = if enforce_trust {
            match trust::check(&file, plugin_dirs) {
                Ok(path) => path,
                Err(reason) => {
                    tracing::warn!(file = %file.display(), "plugin refused: {reason}");
                    records.push(PluginRecord::failed(file, State::Refused, reason));
                    continue;
                }
            }
        } else {
            file.clone()
        };
        match load::open(&load_path) {
            Ok((root, manifest)) => {
                if let Some(first) = records
                    .iter()
                    .find(|r| r.state == State::Loaded && r.manifest.name == manifest.name)
                {
                    let reason = format!(
                        "plugin '{}' is already loaded from {}",
                        manifest.name,
                        first.file.display()
                    );
                    tracing::warn!(file = %file.display(), "plugin skipped: {reason}");
                    records.push(PluginRecord {
                        file,
                        manifest,
                        state: State::Error,
                        error: Some(reason),
                    });
                    continue;
                }
                opened.push((records.len(), root));
                records.push(PluginRecord {
                    file,
                    manifest,
                    state: State::Loaded,
                    error: None,
                });
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), "plugin skipped: {}", e.reason);
                if let Some(detail) = &e.detail {
                    tracing::debug!(file = %file.display(), "abi_stable's report:\n{detail}");
                }
                records.push(PluginRecord::failed(file, State::Error, e.reason));
            }
        }
    }
    Inspection {
        records,
        opened,
        dir_problems: problems.into_iter().map(|p| (p.dir, p.message)).collect(),
    }
}
