//! From plugin directories to checked, opened plugins: scan, trust check,
//! `dlopen` (of a private copy, see [`stage`]), ABI check, manifest. Nothing
//! here calls a plugin's `init`; the pipeline (`plugins::pipeline`) does.
//!
//! Architecture invariant: no file is opened with `dlopen` before the trust
//! check passed (when running as root), and what is opened is what the
//! check approved: the descriptor it checked, or a copy made from it, by
//! `/proc/self/fd/N`, never a path looked up again.

mod footprint;
mod load;
mod scan;
mod stage;
mod trust;

use std::path::{Path, PathBuf};

use nova_agent_plugin_api::ffi::PluginRootRef;
use serde::{Deserialize, Serialize};

pub(crate) use footprint::{process_memory, Resident, Smaps};
pub(crate) use load::{valid_name, Manifest};
pub(crate) use scan::{is_candidate_name, scan};
pub(crate) use stage::{FileId, Staging};

/// The state of one file, as `plugins list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Loaded,
    Error,
    Refused,
    Disabled,
}

impl State {
    /// The name `plugins list` prints, in text and JSON alike.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Loaded => "loaded",
            State::Error => "error",
            State::Refused => "refused",
            State::Disabled => "disabled",
        }
    }
}

/// Where an instance's code is mapped from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The path in the plugin directory.
    pub(crate) file: PathBuf,
    /// The file as it was when it was copied and opened.
    pub(crate) id: FileId,
    /// Bytes of the process's address space the opened copy maps.
    pub(crate) mapped_bytes: u64,
    /// The descriptor the code was opened by, never closed: an isolated
    /// plugin's child process loads the same bytes from it.
    pub(crate) descriptor: Option<std::os::fd::RawFd>,
}

impl Origin {
    /// The same file with the same content.
    pub(crate) fn same_as(&self, other: &Origin) -> bool {
        self.file == other.file && self.id == other.id
    }
}

/// A plugin file opened for serving: its root module, manifest and origin.
#[derive(Clone)]
pub(crate) struct Opened {
    pub(crate) root: PluginRootRef,
    pub(crate) manifest: Manifest,
    pub(crate) origin: Origin,
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
pub(crate) type OpenFailure = (State, String);

/// Trust check, then a private copy opened (see [`Staging`]); without a
/// staging directory the checked file itself is opened, which only a first
/// load may do.
pub(crate) fn open_for_serving(
    file: &Path,
    plugin_dirs: &[PathBuf],
    staging: Option<&Staging>,
) -> Result<Opened, OpenFailure> {
    let checked = trust::open(file, plugin_dirs).map_err(|reason| {
        let state = if trust::required() {
            State::Refused
        } else {
            State::Error
        };
        (state, reason)
    })?;
    let failed = |e: load::LoadError| {
        if let Some(detail) = &e.detail {
            tracing::debug!(file = %file.display(), "abi_stable's report:\n{detail}");
        }
        (State::Error, e.reason)
    };
    let (library, id) = match staging {
        Some(staging) => staging.open(checked, file).map_err(failed)?,
        None => {
            let meta = checked
                .metadata()
                .map_err(|e| (State::Error, format!("cannot stat: {e}")))?;
            let id = FileId::from_metadata(&meta);
            (load::open(checked, file).map_err(failed)?, id)
        }
    };
    Ok(Opened {
        root: library.root,
        manifest: library.manifest,
        origin: Origin {
            file: file.to_path_buf(),
            id,
            mapped_bytes: library.mapped,
            descriptor: Some(library.descriptor),
        },
    })
}

/// Opens the library an agent handed over by descriptor (an isolated
/// plugin's child process): the same `dlopen`, ABI and manifest checks.
/// `name` is the plugin's path, for messages.
pub(crate) fn open_descriptor(
    file: std::fs::File,
    name: &Path,
) -> Result<(PluginRootRef, Manifest), String> {
    let library = load::open(file, name).map_err(|e| e.reason)?;
    Ok((library.root, library.manifest))
}

/// The identity of what a plugin path leads to now (symlinks followed).
pub(crate) fn current_id(file: &Path) -> Option<FileId> {
    FileId::of(file).ok()
}
