//! What became of one file in a plugin directory: its state, its manifest,
//! and the generation it serves.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::plugins::instance::Instance;
use crate::plugins::loader::{FileId, Manifest, Opened, State};
use nova_agent_plugin_api::manifest::Declared;

/// One file in a plugin directory and what became of it.
#[derive(Debug, Clone)]
pub(crate) struct PluginRecord {
    /// The path in the plugin directory (never a resolved or staged copy).
    pub(crate) file: PathBuf,
    /// As read from the file on disk; for a file that is not a loadable
    /// plugin, only `name` is set: its stem (or, while an earlier generation
    /// of it serves, that generation's manifest).
    pub(crate) manifest: Manifest,
    pub(crate) state: State,
    /// Why it is not loaded; for a loaded plugin, why its newest file is not
    /// the one serving.
    pub(crate) error: Option<String>,
    /// The generation serving requests (once initialised).
    pub(crate) instance: Option<Arc<Instance>>,
    /// The module opened from the file's current content while it does not
    /// serve (disabled, a duplicate name, a failed `init`): kept so that it
    /// can serve later without being opened again.
    pub(crate) opened: Option<Opened>,
    /// `opened` failed its `init`.
    pub(crate) init_failed: bool,
    /// The file content this record describes.
    pub(crate) seen: Option<FileId>,
    /// Whether `manifest` was read from the file's current content.
    pub(crate) manifest_from_disk: bool,
    /// Installed: trusted and its manifest section read, its code not
    /// loaded; it loads when one of its objects is first needed.
    pub(crate) dormant: bool,
    /// Its manifest declared what it provides, and loading it failed: its
    /// commands are answered with the failure.
    pub(crate) failed_to_load: bool,
}

impl PluginRecord {
    /// A record with nothing known beyond `file`, `manifest` and `state`.
    fn new(file: PathBuf, manifest: Manifest, state: State) -> Self {
        PluginRecord {
            file,
            manifest,
            state,
            error: None,
            instance: None,
            opened: None,
            init_failed: false,
            seen: None,
            manifest_from_disk: false,
            dormant: false,
            failed_to_load: false,
        }
    }

    /// A file that could not be opened.
    pub(crate) fn failed(file: PathBuf, state: State, error: String) -> Self {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = Manifest {
            name: stem,
            ..Manifest::default()
        };
        PluginRecord {
            error: Some(error),
            ..PluginRecord::new(file, manifest, state)
        }
    }

    /// A file whose new content failed (`error`) while `instance`, an
    /// earlier generation of it, keeps serving.
    pub(crate) fn still_serving(file: PathBuf, instance: &Arc<Instance>, error: String) -> Self {
        PluginRecord {
            error: Some(error),
            instance: Some(Arc::clone(instance)),
            ..PluginRecord::new(file, instance.manifest.clone(), State::Loaded)
        }
    }

    /// A file installed and inspected, not loaded.
    pub(crate) fn dormant(file: PathBuf, manifest: Manifest, seen: FileId) -> Self {
        PluginRecord {
            seen: Some(seen),
            manifest_from_disk: true,
            dormant: true,
            ..PluginRecord::new(file, manifest, State::Loaded)
        }
    }

    /// Whether it takes its plugin name from files later in load order: it
    /// serves, or would at first use.
    pub(crate) fn holds_name(&self) -> bool {
        self.instance.is_some() || self.is_installed()
    }

    /// Installed and free to load at first use (not disabled, its name not
    /// taken).
    pub(crate) fn is_installed(&self) -> bool {
        self.dormant && self.state == State::Loaded
    }

    /// What it provides while not loaded, as its manifest declares: its
    /// commands then load it at first use, or answer its failure.
    pub(crate) fn declared_while_unloaded(&self) -> Option<&Declared> {
        if self.instance.is_some() || !(self.is_installed() || self.failed_to_load) {
            return None;
        }
        self.manifest.declared.as_ref()
    }

    /// A module opened from the file, not initialised yet.
    pub(crate) fn opened(opened: Opened) -> Self {
        let base = PluginRecord::new(
            opened.origin.file.clone(),
            opened.manifest.clone(),
            State::Loaded,
        );
        PluginRecord {
            seen: Some(opened.origin.id),
            opened: Some(opened),
            manifest_from_disk: true,
            ..base
        }
    }

    pub(crate) fn set_error(&mut self, error: String) {
        self.state = State::Error;
        self.error = Some(error);
    }

    /// Marks the plugin disabled when its config says so; `true` if enabled.
    pub(crate) fn enable(&mut self, config: &Config) -> bool {
        let name = &self.manifest.name;
        if config.plugin_enabled(name) {
            return true;
        }
        self.state = State::Disabled;
        self.error = Some(format!("disabled by [plugins.{name}] enabled = false"));
        false
    }
}
