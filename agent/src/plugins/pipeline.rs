//! The loader pipeline: one pass over the plugin files decides which
//! generation serves each file, in load order: scan, trust check, open, the
//! plugin-name rule (the first file in name order wins a name), `enabled =
//! false`, then `init`. The running agent's start-up and every reload are
//! such a pass over what it serves; `plugins list` without an agent, `config
//! check` and `resetnetwork` are one pass over nothing.
//!
//! A file is opened again only when its content changed, or, after a failed
//! open, when asked explicitly (SIGHUP, `plugins reload`): every open maps a
//! new copy that is never unmapped. A module that opened but does not serve
//! (disabled, a duplicate name, a failed `init`) is kept in its record and
//! decided on again without reopening.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::plugins::host::AgentHost;
use crate::plugins::instance::Instance;
use crate::plugins::isolated;
use crate::plugins::loader::{self, Checked, FileId, Manifest, Opened, Origin, Staging, State};
use crate::plugins::record::PluginRecord;
use crate::plugins::registry::{Registry, Superseded};
use crate::plugins::view::ReloadReport;

pub(crate) struct Inputs<'a> {
    pub(crate) config: &'a Config,
    pub(crate) host: &'a AgentHost,
    /// Where private copies are opened from; without it files are opened in
    /// place, once each.
    pub(crate) staging: Option<&'a Staging>,
    /// Whether files whose last load failed are tried again although they
    /// did not change (their `init` may depend on the system).
    pub(crate) retry: bool,
    /// What must be loaded now rather than at first use.
    pub(crate) needed: &'a Needed,
}

/// What a pass loads at once; every other plugin whose manifest section
/// declares what it provides stays installed, and loads at first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Needed {
    /// Every plugin (`config check`, `resetnetwork`).
    pub(crate) everything: bool,
    /// The exchanges and parsers the configured channels name.
    pub(crate) exchanges: BTreeSet<String>,
    pub(crate) parsers: BTreeSet<String>,
    /// Gates recorded closed: their declarations are needed to hold
    /// requests.
    pub(crate) gates: BTreeSet<String>,
}

impl Needed {
    pub(crate) fn everything() -> Needed {
        Needed {
            everything: true,
            ..Needed::default()
        }
    }

    /// What a serving agent loads at start: its channels' exchanges and
    /// parsers, and the plugins that declare a gate recorded closed.
    pub(crate) fn to_serve(config: &Config, closed_gates: Vec<String>) -> Needed {
        Needed {
            everything: false,
            exchanges: config.channels.iter().map(|c| c.exchange.clone()).collect(),
            parsers: config.channels.iter().map(|c| c.parser.clone()).collect(),
            gates: closed_gates.into_iter().collect(),
        }
    }
}

/// What the running agent remembers between passes.
#[derive(Default)]
pub(crate) struct Memory {
    /// The last generation number used, by plugin name.
    pub(crate) generations: HashMap<String, u64>,
    /// Files opened without a staged copy (start-up without a staging
    /// directory): `dlopen` would return their old code if asked again.
    pub(crate) opened_in_place: HashSet<PathBuf>,
    /// The plugins loaded once in this process, by name: a new build of one
    /// loads as soon as it is found (hot swap); others at first use.
    pub(crate) awake: HashSet<String>,
}

/// What one pass found.
pub(crate) struct Found {
    /// The files now in the plugin directories, in load order.
    pub(crate) records: Vec<PluginRecord>,
    pub(crate) report: ReloadReport,
    /// The directories that cannot be read, with the reason.
    pub(crate) dir_problems: Vec<(PathBuf, String)>,
}

/// The records for the files now in the plugin directories, and what
/// changed since `current`. A directory problem is logged when it first
/// appears.
pub(crate) fn pass(current: &Registry, inputs: &Inputs<'_>, memory: &mut Memory) -> Found {
    let (files, problems) = loader::scan(&inputs.config.plugin_dirs);
    let dir_problems: Vec<(PathBuf, String)> =
        problems.into_iter().map(|p| (p.dir, p.message)).collect();
    for (dir, problem) in &dir_problems {
        if !current.dir_problems.iter().any(|(d, _)| d == dir) {
            tracing::warn!("plugin directory {}: {problem}", dir.display());
        }
    }
    let mut pass = Pass::new(inputs, memory);
    let mut records = Vec::new();
    for file in files {
        let previous = current.plugins.iter().find(|r| r.file == file);
        let id = loader::current_id(&file);
        let record = match previous {
            Some(previous) if id.is_some() && previous.seen == id => pass.revisit(previous),
            _ => pass.fresh(file, id, previous),
        };
        pass.take_name(&record);
        records.push(record);
    }
    Found {
        records,
        report: pass.report,
        dir_problems,
    }
}

/// The pass of a first use: loads the installed plugin `name` (its file
/// checked again, and inspected again if it changed) and leaves every other
/// record as it is.
pub(crate) fn wake(
    current: &Registry,
    inputs: &Inputs<'_>,
    memory: &mut Memory,
    name: &str,
) -> Found {
    memory.awake.insert(name.to_owned());
    let mut pass = Pass::new(inputs, memory);
    let mut records = Vec::new();
    for previous in &current.plugins {
        let record = if previous.is_installed() && previous.manifest.name == name {
            pass.fresh(
                previous.file.clone(),
                loader::current_id(&previous.file),
                Some(previous),
            )
        } else {
            previous.clone()
        };
        pass.take_name(&record);
        records.push(record);
    }
    Found {
        records,
        report: pass.report,
        dir_problems: current.dir_problems.clone(),
    }
}

/// Adds to `superseded` the retired generations, and the modules that opened
/// without serving and are now left behind (their code stays mapped too).
pub(crate) fn count_superseded(
    current: &Registry,
    records: &[PluginRecord],
    retired: &[Arc<Instance>],
) -> BTreeMap<String, Superseded> {
    let mut superseded = current.superseded.clone();
    for gone in retired {
        let entry = superseded.entry(gone.name().to_owned()).or_default();
        let (served, failed) = gone.requests();
        entry.generations += 1;
        entry.mapped_bytes += gone.origin.mapped_bytes;
        entry.served += served;
        entry.failed += failed;
    }
    let still_held = |origin: &Origin| {
        records.iter().any(|r| {
            r.opened.as_ref().is_some_and(|o| o.origin.same_as(origin))
                || r.instance
                    .as_ref()
                    .is_some_and(|i| i.origin.same_as(origin))
        })
    };
    for record in &current.plugins {
        if let Some(opened) = &record.opened {
            if !still_held(&opened.origin) {
                superseded
                    .entry(opened.manifest.name.clone())
                    .or_default()
                    .mapped_bytes += opened.origin.mapped_bytes;
            }
        }
    }
    superseded
}

struct Pass<'a, 'b> {
    inputs: &'a Inputs<'b>,
    memory: &'a mut Memory,
    report: ReloadReport,
    /// Plugin name → the file serving it in this pass (see `name_taken`).
    taken: HashMap<String, PathBuf>,
}

impl<'a, 'b> Pass<'a, 'b> {
    fn new(inputs: &'a Inputs<'b>, memory: &'a mut Memory) -> Self {
        Pass {
            inputs,
            memory,
            report: ReloadReport::default(),
            taken: HashMap::new(),
        }
    }

    /// A file whose content is the one its record describes.
    fn revisit(&mut self, previous: &PluginRecord) -> PluginRecord {
        let retry = self.inputs.retry;
        if previous.dormant {
            return match previous.seen {
                Some(seen) if !self.wanted(&previous.manifest) => {
                    self.installed(previous.file.clone(), previous.manifest.clone(), seen)
                }
                _ => self.fresh(previous.file.clone(), previous.seen, Some(previous)),
            };
        }
        match (&previous.instance, &previous.opened) {
            // A failed init is tried again only when asked.
            (serving, Some(opened)) if !previous.init_failed || retry => {
                self.decide(opened.clone(), serving.clone())
            }
            // The new content failed to open while the old serves: only
            // when asked.
            (Some(_), None) if retry && previous.error.is_some() => {
                self.fresh(previous.file.clone(), previous.seen, Some(previous))
            }
            (Some(instance), _) => match self.name_taken(instance.name(), &previous.file) {
                // An earlier file took the name: that file serves it now.
                Some(reason) => {
                    let mut record = PluginRecord::opened(Opened {
                        root: instance.root,
                        manifest: instance.manifest.clone(),
                        origin: instance.origin.clone(),
                    });
                    record.set_error(reason);
                    record
                }
                None => previous.clone(),
            },
            (None, None) if retry => {
                self.fresh(previous.file.clone(), previous.seen, Some(previous))
            }
            _ => previous.clone(),
        }
    }

    /// A new or changed file: checked and inspected; then, when it is
    /// needed now (or tells who it is only once loaded), opened from a
    /// private copy and initialised.
    ///
    /// `previous` is the file's record before: its generation serving keeps
    /// serving if the new content fails, and a manifest read before (from a
    /// file installed or that failed to load) stands for one that can no
    /// longer be read.
    fn fresh(
        &mut self,
        file: PathBuf,
        id: Option<FileId>,
        previous: Option<&PluginRecord>,
    ) -> PluginRecord {
        let serving = previous.and_then(|p| p.instance.clone());
        let checked = match loader::check(&file, &self.inputs.config.plugin_dirs) {
            Ok(checked) => checked,
            Err(failure) => {
                let known = previous
                    .filter(|p| p.dormant || p.failed_to_load)
                    .map(|p| p.manifest.clone());
                return self.not_opened(file, id, serving, failure, known);
            }
        };
        let manifest = checked.manifest.clone();
        if let Some(manifest) = &manifest {
            let enabled = self.inputs.config.plugin_enabled(&manifest.name);
            if serving.is_none() && (!enabled || !self.wanted(manifest)) {
                let record = self.installed(file, manifest.clone(), checked.id);
                if record.is_installed() {
                    self.report.installed.push(format!(
                        "{} {} ({})",
                        manifest.name,
                        manifest.version,
                        record.file.display()
                    ));
                }
                return record;
            }
        }
        let seen = checked.id;
        match self.open(&file, checked) {
            Ok(opened) => self.decide(opened, serving),
            Err(failure) => self.not_opened(file, Some(seen), serving, failure, manifest),
        }
    }

    /// Whether a plugin is loaded now rather than at first use.
    fn wanted(&self, manifest: &Manifest) -> bool {
        let needed = self.inputs.needed;
        let Some(declared) = &manifest.declared else {
            return true;
        };
        needed.everything
            || self.memory.awake.contains(&manifest.name)
            || declared
                .exchanges
                .iter()
                .any(|e| needed.exchanges.contains(e))
            || declared.parsers.iter().any(|p| needed.parsers.contains(p))
            || declared.gates.iter().any(|g| needed.gates.contains(g))
    }

    /// A file left installed, not loaded: under the plugin-name rule and
    /// `enabled` like any other.
    fn installed(&mut self, file: PathBuf, manifest: Manifest, seen: FileId) -> PluginRecord {
        let mut record = PluginRecord::dormant(file, manifest, seen);
        if let Some(reason) = self.name_taken(&record.manifest.name, &record.file) {
            record.set_error(reason);
        } else if let Some(reason) = self.not_isolable(&record.manifest) {
            self.fail(&record.file, &reason);
            record.set_error(reason);
        } else {
            record.enable(self.inputs.config);
        }
        record
    }

    /// A plugin listed in `[isolation] process` whose manifest declares an
    /// exchange or a parser: refused before it is ever loaded.
    fn not_isolable(&self, manifest: &Manifest) -> Option<String> {
        let name = &manifest.name;
        self.inputs.config.isolation.of(name)?;
        let declared = manifest.declared.as_ref()?;
        let exchanges = declared.exchanges.iter().map(|e| ("exchange", e));
        let mut refused = exchanges.chain(declared.parsers.iter().map(|p| ("parser", p)));
        let (kind, object) = refused.next()?;
        Some(isolated::not_isolable(name, kind, object))
    }

    /// A file that could not be checked or opened. While an earlier
    /// generation of it serves, that one keeps serving; a file whose
    /// manifest section declared what it provides keeps that manifest, and
    /// its commands answer the failure.
    fn not_opened(
        &mut self,
        file: PathBuf,
        id: Option<FileId>,
        serving: Option<Arc<Instance>>,
        (state, reason): loader::OpenFailure,
        manifest: Option<Manifest>,
    ) -> PluginRecord {
        self.fail(&file, &reason);
        let mut record = match &serving {
            Some(instance) => {
                PluginRecord::still_serving(file, instance, keeps_serving(&reason, instance))
            }
            None => PluginRecord::failed(file, state, reason),
        };
        record.seen = id;
        if let Some(manifest) = manifest.filter(|m| serving.is_none() && m.declared.is_some()) {
            record.manifest = manifest;
            record.manifest_from_disk = true;
            record.failed_to_load = true;
        }
        record
    }

    /// The plugin-name rule's bookkeeping: a record serving its name, or
    /// installed to serve it at first use, takes it from later files.
    fn take_name(&mut self, record: &PluginRecord) {
        if record.holds_name() {
            self.taken
                .insert(record.manifest.name.clone(), record.file.clone());
        }
    }

    /// Whether an opened module serves: its name must be free and enabled,
    /// and its `init` succeed. `serving` is the file's current generation.
    fn decide(&mut self, opened: Opened, serving: Option<Arc<Instance>>) -> PluginRecord {
        let file = opened.origin.file.clone();
        let name = opened.manifest.name.clone();
        let mut record = PluginRecord::opened(opened.clone());
        if let Some(reason) = self.name_taken(&name, &file) {
            record.set_error(reason);
            return record;
        }
        if !record.enable(self.inputs.config) {
            return record;
        }
        if let Some(instance) = serving
            .as_ref()
            .filter(|i| i.origin.same_as(&opened.origin))
        {
            // Unchanged and already serving: nothing to do.
            record.instance = Some(Arc::clone(instance));
            record.opened = None;
            return record;
        }
        let generation = self.memory.generations.get(&name).copied().unwrap_or(0) + 1;
        let config_json = self.inputs.config.plugin_json(&name);
        let isolation = self.inputs.config.isolation.of(&name);
        let host = self.inputs.host.to_ffi();
        match Instance::init(opened, generation, config_json, host, isolation) {
            Ok(instance) => {
                self.memory.generations.insert(name.clone(), generation);
                self.memory.awake.insert(name.clone());
                let new = &instance.manifest.version;
                match serving.filter(|old| old.name() == name) {
                    Some(old) => self.report.replaced.push(format!(
                        "{name} {} -> {new} (generation {generation}, {})",
                        old.manifest.version,
                        file.display()
                    )),
                    None => self.report.loaded.push(format!(
                        "{name} {new} (generation {generation}, {})",
                        file.display()
                    )),
                }
                record.instance = Some(Arc::new(instance));
                record.opened = None;
                record
            }
            Err(reason) => {
                self.fail(&file, &reason);
                record.init_failed = true;
                match serving.filter(|old| old.name() == name) {
                    // The manifest shown stays the new file's: its version is
                    // the one on disk.
                    Some(old) => {
                        record.error = Some(keeps_serving(&reason, &old));
                        record.instance = Some(old);
                    }
                    None => {
                        record.failed_to_load = record.manifest.declared.is_some();
                        record.set_error(reason);
                    }
                }
                record
            }
        }
    }

    fn open(&mut self, file: &Path, checked: Checked) -> Result<Opened, loader::OpenFailure> {
        let staging = self.inputs.staging;
        if staging.is_none() && !self.memory.opened_in_place.insert(file.to_path_buf()) {
            return Err((
                State::Error,
                "changed since it was loaded, and without a staging directory under state_dir \
                 the new build cannot be opened; restart the agent"
                    .to_owned(),
            ));
        }
        loader::open_checked(checked, file, staging)
    }

    /// The plugin-name rule, for every path of a pass: a name served by an
    /// earlier file in load order is not served from `file`. The reason,
    /// recorded as a failure, when it is taken.
    fn name_taken(&mut self, name: &str, file: &Path) -> Option<String> {
        let winner = self.taken.get(name)?;
        let reason = format!(
            "plugin '{name}' is already loaded from {}",
            winner.display()
        );
        self.fail(file, &reason);
        Some(reason)
    }

    fn fail(&mut self, file: &Path, reason: &str) {
        self.report
            .failed
            .push(format!("{}: {reason}", file.display()));
    }
}

fn keeps_serving(reason: &str, instance: &Instance) -> String {
    format!(
        "{reason}; generation {} (version {}) keeps serving",
        instance.generation, instance.manifest.version
    )
}
