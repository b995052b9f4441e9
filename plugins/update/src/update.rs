//! One `agentupdate`, from the request's value to the restart: parse, check
//! the URL, download into a fresh staging directory, verify, unpack, check
//! the restart and the targets, install, restart. Every step before the
//! install can refuse, and the install itself leaves the old files in place
//! unless it gets to its renames.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};

use nova_agent_plugin_api::{CommandError, ErrorKind};
use nova_agent_support::runner::Runner;

use crate::config::{GuestPath, Paths, Settings};
use crate::download::{self, Downloaded, Limits};
use crate::install;
use crate::location::{Location, Scheme};
use crate::restart::{self, Programs, NO_INIT_SCRIPT};
use crate::unpack;
use crate::value;

pub const BUSY: &str = "another agentupdate is already running";
pub const HTTP_REFUSED: &str = "refusing an http URL: [plugins.update] require_https is set";

/// Staging directories are named `<prefix><pid>.<n>`.
const STAGING_PREFIX: &str = "nova-agent-update.";

/// A refused or failed update: the kind of error answered, and its message.
/// Every step's `String` error converts into a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            kind: ErrorKind::Failed,
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_owned())
    }
}

impl From<Failure> for CommandError {
    fn from(failure: Failure) -> CommandError {
        CommandError::new(failure.kind, failure.message)
    }
}

pub struct Updater {
    pub settings: Settings,
    pub paths: Paths,
    pub runner: Runner,
    pub programs: Programs,
    /// Sent as User-Agent.
    pub user_agent: String,
    /// One update at a time, whichever channel asks.
    busy: Mutex<()>,
}

impl Updater {
    pub fn new(settings: Settings, paths: Paths, runner: Runner, user_agent: String) -> Updater {
        Updater {
            settings,
            paths,
            runner,
            programs: Programs::default(),
            user_agent,
            busy: Mutex::new(()),
        }
    }

    /// Holds the one-update-at-a-time lock, as a running update does.
    #[cfg(test)]
    pub fn busy_for_test(&self) -> std::sync::MutexGuard<'_, ()> {
        self.busy.lock().unwrap()
    }

    /// The whole command, for the request's value (JSON text).
    pub fn update(&self, arguments: &str) -> Result<(), Failure> {
        let _one_at_a_time = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(BUSY.into()),
        };
        let request = value::parse(arguments)?;
        let location = Location::parse(&request.url)?;
        if self.settings.require_https && location.scheme() == Scheme::Http {
            return Err(HTTP_REFUSED.into());
        }
        let staging = Staging::create(&self.paths.staging_dir)?;
        let archive = staging.path.join("package.tar.gz");
        tracing::info!("agentupdate: downloading {location}");
        let limits = Limits {
            max_size: self.settings.max_size,
            timeout: self.settings.timeout(),
            https_only: self.settings.require_https,
        };
        let downloaded = download::fetch(&location, &archive, &limits, &self.user_agent)?;
        tracing::info!(
            "agentupdate: downloaded {} bytes, md5 {}, sha256 {}",
            downloaded.size,
            downloaded.md5,
            downloaded.sha256
        );
        verify(&request.md5, self.settings.sha256.as_deref(), &downloaded)?;
        self.install_archive(&archive, &staging.path)
    }

    /// Everything after the download and its checksums: unpack `archive`
    /// into `staging`, then install and restart (or log both).
    pub fn install_archive(&self, archive: &Path, staging: &Path) -> Result<(), Failure> {
        let unpacked = staging.join("unpacked");
        DirBuilder::new()
            .mode(0o700)
            .create(&unpacked)
            .map_err(|e| format!("cannot create {}: {e}", unpacked.display()))?;
        let package = unpack::unpack(archive, &unpacked, self.settings.unpack_cap())?;
        let version_file = match &package.version_file {
            Some(text) => format!("VERSION {text:?}"),
            None => "no VERSION".to_owned(),
        };
        tracing::info!(
            "agentupdate: package nova-agent-{} ({version_file}) verified: bin/nova-agent and {} plugin(s)",
            package.version,
            package.plugins.len()
        );
        let items = install::plan(&package, &self.paths);
        let method = restart::detect(&self.paths.root, &self.settings.service);
        if !self.runner.apply() {
            // The package verified: that is the answer. What the install and
            // the restart would meet is only logged.
            if let Err(problem) = install::check(&items) {
                tracing::warn!("agentupdate: with apply = true the install would fail: {problem}");
            }
            for item in &items {
                tracing::info!(
                    "agentupdate: would install {} of nova-agent-{} to {} (mode {:04o}; apply = false)",
                    item.member,
                    package.version,
                    item.target.guest,
                    item.mode
                );
            }
            if method.is_none() {
                tracing::warn!(
                    "agentupdate: with apply = true the answer would be 404: {NO_INIT_SCRIPT}"
                );
            }
            return match method {
                Some(method) => method
                    .run(&self.runner, &self.programs)
                    .map_err(Failure::from),
                None => Ok(()),
            };
        }
        // Nothing is installed unless the agent can be restarted onto it.
        let method = method.ok_or(Failure {
            kind: ErrorKind::NotFound,
            message: NO_INIT_SCRIPT.to_owned(),
        })?;
        install::check(&items)?;
        install::install(&items).map_err(|e| e.message())?;
        method.run(&self.runner, &self.programs)?;
        Ok(())
    }
}

/// The host's MD5 (the seed's message), then the configured SHA-256 pin.
pub fn verify(md5: &str, sha256_pin: Option<&str>, downloaded: &Downloaded) -> Result<(), String> {
    if !md5.eq_ignore_ascii_case(&downloaded.md5) {
        return Err(format!(
            "MD5 sums do not match ({md5} != {})",
            downloaded.md5
        ));
    }
    if let Some(pin) = sha256_pin {
        if !pin.eq_ignore_ascii_case(&downloaded.sha256) {
            return Err(format!(
                "SHA-256 does not match the pinned sha256 ({pin} != {})",
                downloaded.sha256
            ));
        }
    }
    Ok(())
}

/// A fresh directory in the staging directory, removed when dropped.
pub struct Staging {
    pub path: PathBuf,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Staging {
    /// Creates the staging directory if needed (mode 0700), removes what
    /// earlier updates left (they are over: updates run one at a time), and
    /// makes a fresh directory in it.
    pub fn create(dir: &GuestPath) -> Result<Staging, String> {
        let cannot =
            |e: std::io::Error| format!("cannot prepare the staging directory {}: {e}", dir.guest);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir.real)
            .map_err(cannot)?;
        let meta = std::fs::symlink_metadata(&dir.real).map_err(cannot)?;
        if !meta.is_dir() {
            return Err(format!(
                "cannot prepare the staging directory {}: it is not a directory",
                dir.guest
            ));
        }
        for entry in std::fs::read_dir(&dir.real).map_err(cannot)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                remove(&entry.path());
            }
        }
        let pid = std::process::id();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.real.join(format!("{STAGING_PREFIX}{pid}.{n}"));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Staging { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(cannot(e)),
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

fn remove(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        tracing::warn!("agentupdate: cannot remove {}: {e}", path.display());
    }
}
