//! From plugin directories to checked, opened plugins: scan, trust check,
//! `dlopen`, ABI check, manifest. Nothing here calls a plugin's `init`.
//!
//! Architecture invariant: no file is opened with `dlopen` before the trust
//! check passed (when running as root).

mod load;
mod scan;
mod stage;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nova_agent_plugin_api::ffi::PluginRootRef;
use serde::{Deserialize, Serialize};

pub use load::{error_chain, Manifest};
pub use scan::{is_candidate_name, scan};
pub use stage::{FileId, Staging};

use crate::config::Config;
use crate::instance::{Instance, Origin};

/// The state of one file, as `plugins list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// One file in a plugin directory and what became of it.
#[derive(Debug, Clone)]
pub struct PluginRecord {
    /// The path in the plugin directory (never a resolved or staged copy).
    pub file: PathBuf,
    /// As read from the file on disk; for a file that is not a loadable
    /// plugin, only `name` is set: its stem (or, while an earlier generation
    /// of it serves, that generation's manifest).
    pub manifest: Manifest,
    pub state: State,
    /// Why it is not loaded; for a loaded plugin, why its newest file is not
    /// the one serving.
    pub error: Option<String>,
    /// The generation serving requests (once initialised).
    pub instance: Option<Arc<Instance>>,
    /// The module opened from the file's current content while it does not
    /// serve (disabled, a duplicate name, a failed `init`): kept so that it
    /// can serve later without being opened again (running agent only).
    pub opened: Option<Opened>,
    /// `opened` failed its `init`.
    pub init_failed: bool,
    /// The file content this record describes (running agent only).
    pub seen: Option<FileId>,
    /// Whether `manifest` was read from the file's current content.
    pub manifest_from_disk: bool,
}

impl PluginRecord {
    pub fn failed(file: PathBuf, state: State, error: String) -> Self {
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
            instance: None,
            opened: None,
            init_failed: false,
            seen: None,
            manifest_from_disk: false,
        }
    }

    /// A file whose manifest was read, without its module (offline).
    fn inspected(file: PathBuf, manifest: Manifest) -> Self {
        PluginRecord {
            file,
            manifest,
            state: State::Loaded,
            error: None,
            instance: None,
            opened: None,
            init_failed: false,
            seen: None,
            manifest_from_disk: true,
        }
    }

    /// A module opened for serving, not initialised yet.
    pub fn opened(file: PathBuf, opened: Opened) -> Self {
        let mut record = PluginRecord::inspected(file, opened.manifest.clone());
        record.seen = Some(opened.origin.id);
        record.opened = Some(opened);
        record
    }

    pub fn set_error(&mut self, error: String) {
        self.state = State::Error;
        self.error = Some(error);
    }

    /// Marks the plugin disabled when its config says so; `true` if enabled.
    pub fn enable(&mut self, config: &Config) -> bool {
        let name = &self.manifest.name;
        if config.plugin_enabled(name) {
            return true;
        }
        self.state = State::Disabled;
        self.error = Some(format!("disabled by [plugins.{name}] enabled = false"));
        false
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
                    let mut record = PluginRecord::inspected(file, manifest);
                    record.set_error(reason);
                    records.push(record);
                    continue;
                }
                opened.push((records.len(), root));
                records.push(PluginRecord::inspected(file, manifest));
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

/// A plugin file opened for serving: its root module, manifest and origin.
#[derive(Clone)]
pub struct Opened {
    pub root: PluginRootRef,
    pub manifest: Manifest,
    pub origin: Origin,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("manifest", &self.manifest)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a file could not be opened for serving: the state to record and a
/// one-line reason.
pub type OpenFailure = (State, String);

/// Trust check, then a private copy opened (see [`Staging`]); without a
/// staging directory the file itself is opened, which only a first load may
/// do.
pub fn open_for_serving(
    file: &Path,
    plugin_dirs: &[PathBuf],
    staging: Option<&Staging>,
) -> Result<Opened, OpenFailure> {
    let load_path = if trust::required() {
        trust::check(file, plugin_dirs).map_err(|reason| (State::Refused, reason))?
    } else {
        file.to_path_buf()
    };
    let failed = |e: load::LoadError| {
        if let Some(detail) = &e.detail {
            tracing::debug!(file = %file.display(), "abi_stable's report:\n{detail}");
        }
        (State::Error, e.reason)
    };
    let (root, manifest, id, mapped_bytes) = match staging {
        Some(staging) => staging.open(&load_path).map_err(failed)?,
        None => {
            let id =
                FileId::of(&load_path).map_err(|e| (State::Error, format!("cannot stat: {e}")))?;
            let (root, manifest) = load::open(&load_path).map_err(failed)?;
            let mapped = stage::mapped_bytes(&load_path);
            (root, manifest, id, mapped)
        }
    };
    Ok(Opened {
        root,
        manifest,
        origin: Origin {
            file: file.to_path_buf(),
            id,
            mapped_bytes,
        },
    })
}

/// The identity of what a plugin path leads to now (symlinks followed).
pub fn current_id(file: &Path) -> Option<FileId> {
    FileId::of(file).ok()
}
