//! What a back-end (one distro's way of configuring the network) is given
//! and what it returns: read access to the system's files under the root,
//! a plan of files to write and remove, and the actions its apply sequence
//! may take (write the plan, make a symlink, run a program, set the
//! hostname).

use std::path::{Path, PathBuf};

use nova_agent_support::files::under_root;

use crate::model::{Hostname, Network};

/// Read-only access to the files under the configured root. Paths are
/// absolute, as on the guest (`/etc/rc.conf`).
pub struct System {
    root: PathBuf,
}

impl System {
    pub fn new(root: &Path) -> System {
        System {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of a guest path under the root.
    pub fn path(&self, path: &str) -> PathBuf {
        under_root(&self.root, path).unwrap_or_else(|_| self.root.join("invalid-path"))
    }

    /// A file's text (lossy UTF-8); `None` when it is missing or unreadable.
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read(self.path(path))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Whether anything (a file, directory or symlink) exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.path(path)).is_ok()
    }

    /// Whether `path` is a regular file (not following a symlink).
    pub fn is_file(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.path(path)).is_ok_and(|m| m.is_file())
    }

    pub fn is_dir(&self, path: &str) -> bool {
        std::fs::metadata(self.path(path)).is_ok_and(|m| m.is_dir())
    }

    /// The target of a symlink, as written in the link.
    pub fn read_link(&self, path: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(path)).ok()
    }

    /// The names in a directory, sorted; empty when it is missing.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// The files a back-end writes and removes. Paths are guest paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files to write, in order. A file whose content is unchanged is left
    /// alone.
    pub files: Vec<FileChange>,
    /// Files to move aside (kept as a backup), e.g. stale `ifcfg-eth2`.
    pub remove: Vec<String>,
    /// Whether DNS goes to `/etc/resolv.conf` (through resolvconf or
    /// systemd-resolved where they manage it); `false` when the back-end's
    /// own files carry the nameservers.
    pub resolv_conf: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub content: Vec<u8>,
    /// Mode of a new file (an existing file keeps its mode and owner).
    pub mode: u32,
}

impl Plan {
    /// Adds a file with mode 0644.
    pub fn write(&mut self, path: impl Into<String>, content: impl Into<Vec<u8>>) {
        self.write_mode(path, content, 0o644);
    }

    pub fn write_mode(&mut self, path: impl Into<String>, content: impl Into<Vec<u8>>, mode: u32) {
        self.files.push(FileChange {
            path: path.into(),
            content: content.into(),
            mode,
        });
    }

    /// The content planned for `path`, if any.
    pub fn content(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_slice())
    }
}

/// What an apply sequence may do on the system. With `apply = false` only
/// the file operations happen (writes and symlinks, under the root);
/// programs and sethostname are logged and report success.
pub trait Actions {
    /// Writes the plan's files and moves its removals aside (atomic
    /// replacement, bounded backups). Stops at the first failure.
    fn write(&mut self, plan: &Plan) -> Result<(), String>;
    /// Creates the symlink `link` (a guest path, resolved under the root)
    /// pointing at `target` (written as given, e.g. `net.lo`), unless
    /// something already exists at `link`; a missing directory is created,
    /// as `write` does. A file operation under the root, so it happens
    /// whatever `apply` says. `Err` is the reason, for the caller's message.
    fn symlink(&mut self, target: &str, link: &str) -> Result<(), String>;
    /// Runs a program through the runner; its exit code (0 when not run
    /// because `apply = false`). `Err` when it could not be started (the
    /// message names the program and why) or did not finish in time.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<i32, String>;
    /// sethostname(2); `Err` is the reason, for "Couldn't set hostname: <err>".
    fn set_hostname(&mut self, hostname: &Hostname) -> Result<(), String>;
}

/// One distro's way of configuring the network.
pub trait Backend {
    /// The name in `[plugins.network] backend`, e.g. `ifupdown`.
    fn name(&self) -> &'static str;
    /// The files for `network`; pure, reads only through `system`. `Err` is
    /// the answer's message (e.g. "Multiple IPv4 default routes specified").
    fn render(&self, network: &Network, system: &System) -> Result<Plan, String>;
    /// The seed's sequence for this distro: bring interfaces down, write the
    /// plan (through `actions.write`), set the hostname, restart. `Err` is
    /// the answer's message, e.g. "Couldn't restart network: 1".
    fn apply(
        &self,
        network: &Network,
        system: &System,
        plan: &Plan,
        actions: &mut dyn Actions,
    ) -> Result<(), String>;
}
