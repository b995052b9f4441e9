//! One initialised generation of one plugin: the objects its `init` returned,
//! where its code came from, and what it has served.
//!
//! A generation is shared (`Arc`) by every registry that serves it and by
//! every channel running its exchange; the agent retires it (runs its
//! `shutdown`) only once it holds the last reference, so no request is still
//! inside its code.
//!
//! Architecture invariant: `shutdown` runs at most once per instance, and
//! never while a request may be inside its code: once nothing references it,
//! or, for a plugin that provides only exchanges, once its channels stopped.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use nova_agent_plugin_api::abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use nova_agent_plugin_api::ffi::{CommandBox, ExchangeBox, LifecycleBox, ParserBox, PluginRootRef};

use crate::config::Config;
use crate::host::AgentHost;
use crate::loader::{FileId, Manifest};

/// Where an instance's code is mapped from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The path in the plugin directory.
    pub file: PathBuf,
    /// The file as it was when it was copied and opened.
    pub id: FileId,
    /// Bytes of the process's address space the opened copy maps.
    pub mapped_bytes: u64,
}

pub struct Instance {
    /// The module it came from (never unloaded).
    pub root: PluginRootRef,
    pub manifest: Manifest,
    pub exchanges: Vec<(String, Arc<ExchangeBox>)>,
    pub parsers: Vec<(String, Arc<ParserBox>)>,
    pub commands: Vec<(String, Arc<CommandBox>)>,
    pub origin: Origin,
    /// 1 for the first load of this plugin name in this process.
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub served: AtomicU64,
    pub failed: AtomicU64,
    lifecycle: LifecycleBox,
    retired: AtomicBool,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Runs the plugin's `init` with its config table and checks that it
    /// provides exactly what its manifest declares. The error is one line.
    pub fn init(
        root: PluginRootRef,
        manifest: Manifest,
        origin: Origin,
        generation: u64,
        config: &Config,
        host: &AgentHost,
    ) -> Result<Instance, String> {
        let json = config.plugin_json(&manifest.name);
        let provided = match (root.init())(host.to_ffi(), RStr::from_str(json)) {
            RResult::ROk(provided) => provided,
            RResult::RErr(e) => return Err(format!("init failed: {e}")),
        };
        let mismatch = [
            ("exchanges", names(&provided.exchanges), &manifest.exchanges),
            ("parsers", names(&provided.parsers), &manifest.parsers),
            ("commands", names(&provided.commands), &manifest.commands),
        ]
        .into_iter()
        .find(|(_, got, declared)| !same_names(got, declared));
        if let Some((kind, got, declared)) = mismatch {
            provided.lifecycle.shutdown();
            return Err(format!(
                "init provided {kind} [{}] but the manifest declares [{}]",
                got.join(", "),
                declared.join(", ")
            ));
        }
        Ok(Instance {
            root,
            manifest,
            exchanges: objects(provided.exchanges),
            parsers: objects(provided.parsers),
            commands: objects(provided.commands),
            origin,
            generation,
            loaded_at: SystemTime::now(),
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lifecycle: provided.lifecycle,
            retired: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Counts one request this instance's code handled.
    pub fn count(&self, ok: bool) {
        self.served.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn requests(&self) -> (u64, u64) {
        (
            self.served.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Tells the plugin this instance is retired; only the first call
    /// reaches it.
    pub fn shutdown(&self) {
        if !self.retired.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                plugin = %self.manifest.name,
                "shutting down generation {}",
                self.generation
            );
            self.lifecycle.shutdown();
        }
    }
}

fn objects<T>(list: RVec<Tuple2<RString, T>>) -> Vec<(String, Arc<T>)> {
    list.into_iter()
        .map(|t| (t.0.into_string(), Arc::new(t.1)))
        .collect()
}

fn names<T>(list: &RVec<Tuple2<RString, T>>) -> Vec<String> {
    list.iter().map(|t| t.0.to_string()).collect()
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
