//! From plugin directories to checked, opened plugins: scan, trust check,
//! `dlopen` (of a private copy, see [`stage`]), ABI check, manifest. Nothing
//! here calls a plugin's `init`; the pipeline (`plugins::pipeline`) does.
//!
//! Architecture invariant: no file is opened with `dlopen` before the trust
//! check passed (when running as root), and what is opened is what the
//! check approved: the descriptor it checked, or a copy made from it, by
//! `/proc/self/fd/N`, never a path looked up again.

mod footprint;
mod inspect;
mod load;
mod scan;
mod stage;
mod trust;

use std::fs::File;
use std::path::{Path, PathBuf};

use nova_agent_plugin_api::ffi::PluginRootRef;
use serde::{Deserialize, Serialize};

pub(crate) use footprint::{process_memory, Resident, Smaps};
pub(crate) use inspect::inspect;
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

/// A plugin file that passed the trust check, with what its manifest
/// section says: known without mapping or running any of it.
pub(crate) struct Checked {
    /// The descriptor the trust check approved.
    pub(crate) file: File,
    pub(crate) id: FileId,
    /// `None`: the file has no manifest section (built before plugin-api
    /// 0.2.2); only opening it tells who it is.
    pub(crate) manifest: Option<Manifest>,
}

/// The trust check, then the manifest section read from the checked
/// descriptor and its plugin-api version checked: nothing is mapped or run.
pub(crate) fn check(file: &Path, plugin_dirs: &[PathBuf]) -> Result<Checked, OpenFailure> {
    let checked = trust::open(file, plugin_dirs).map_err(|reason| {
        let state = if trust::required() {
            State::Refused
        } else {
            State::Error
        };
        (state, reason)
    })?;
    let meta = checked
        .metadata()
        .map_err(|e| (State::Error, format!("cannot stat: {e}")))?;
    let id = FileId::from_metadata(&meta);
    let inspected =
        inspect(&checked).map_err(|reason| (State::Error, format!("cannot load: {reason}")));
    let manifest = match inspected? {
        None => None,
        Some(found) => {
            load::check_api(&found.api).map_err(|reason| (State::Error, reason))?;
            if !valid_name(&found.name) {
                return Err((
                    State::Error,
                    format!("invalid plugin name {:?} in its manifest", found.name),
                ));
            }
            Some(Manifest {
                name: found.name,
                version: found.version,
                description: found.description,
                declared: found.provides,
            })
        }
    };
    Ok(Checked {
        file: checked,
        id,
        manifest,
    })
}

/// Opens a checked file for serving: a private copy (see [`Staging`]), or
/// without a staging directory the checked file itself, which only a first
/// load may do. The code's own manifest must be the one its section
/// declared.
pub(crate) fn open_checked(
    checked: Checked,
    file: &Path,
    staging: Option<&Staging>,
) -> Result<Opened, OpenFailure> {
    let failed = |e: load::LoadError| {
        if let Some(detail) = &e.detail {
            tracing::debug!(file = %file.display(), "abi_stable's report:\n{detail}");
        }
        (State::Error, e.reason)
    };
    let Checked {
        file: source,
        id,
        manifest: declared,
    } = checked;
    let library = match staging {
        Some(staging) => staging.open(source, file).map_err(failed)?,
        None => load::open(source, file).map_err(failed)?,
    };
    let mut manifest = library.manifest;
    if let Some(declared) = declared {
        let (section, code) = (
            (&declared.name, &declared.version, &declared.description),
            (&manifest.name, &manifest.version, &manifest.description),
        );
        if section != code {
            return Err((
                State::Error,
                format!(
                    "its manifest section says {} {} but its code says {} {}; rebuild it",
                    section.0, section.1, code.0, code.1
                ),
            ));
        }
        manifest.declared = declared.declared;
    }
    Ok(Opened {
        root: library.root,
        manifest,
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
