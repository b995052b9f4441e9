//! The `file-inject` plugin: commands `injectfile` and `file_inject`, which
//! write a file the host sends (Nova's SSH key injection, an image's
//! personality files) under the configured root.
//!
//! Values: `injectfile` takes a JSON string, the base64 of
//! `"<path>,<contents>"`, split at the **first** comma (the contents may hold
//! commas and any bytes, the path no comma); `file_inject` takes the object
//! `{"b64_path": "<base64>", "b64_file": "<base64>"}`. Both answer `"0"` with
//! an empty message, or `"500"` with the reason.
//!
//! Paths. A path must be absolute; `.` components and repeated slashes are
//! normalised away, a `..` component is refused, and so is a path that does
//! not name a file (`/`, `/etc/`). It is then resolved under the root
//! (`<root>/etc/x` for `/etc/x`) component by component, and a symbolic
//! link met on the way, the last component included, is followed **only
//! while it stays under the root**: a relative target may not climb above the
//! root, an absolute target must lie under the root's path (in production the
//! root is `/`, so every absolute target does, as with the kernel); a link
//! that leads outside is refused, and after 40 links the path is refused. So
//! no link (`<root>/etc/x -> /somewhere/else`, `../../../..`) makes a write
//! land outside the root, and such a request writes nothing. A component on
//! the way that is not a directory, or a last component that is not a regular
//! file, is refused. The resolution reads the filesystem just before the write; it does
//! not guard against a process in the guest swapping a directory for a link
//! in between.
//!
//! Writes. Missing parent directories are created, mode 0755 whatever the
//! umask. A new file gets mode 0644 and the agent's owner (root); an existing
//! one keeps its mode, owner, group and SELinux label, and is replaced
//! atomically (`nova_agent_support::files::replace_file`). One backup is
//! kept: the file being replaced becomes `<file>.bak` (a hard link to the old
//! file, taken and renamed into place before the write), replacing the
//! previous backup; a new file makes no backup. Contents over 1 MiB are
//! refused. Injections run one at a time.
//!
//! Config, optional:
//!
//! ```toml
//! [plugins.file-inject]
//! allow = ["/root/.ssh/", "/etc/ssh/"]
//! ```
//!
//! `allow` lists path prefixes, absolute and matched component by component
//! (`/etc` allows `/etc/x`, not `/etcetera`). When set, both the path asked
//! for and the path it resolves to must fall under one of them; an empty list
//! refuses every path. Without it any path is allowed, as in the original
//! agent.
//!
//! What it is not: it never logs the contents (they may be a key or a
//! password), only the path and the size; it does not expand `~`, and it runs
//! nothing.
//!
//! Layout: `config` the `[plugins.file-inject]` table, `value` the two value
//! forms, `path` the checks and the resolution under the root, `write` the
//! directories, the backup and the write.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::sync::lock;
use serde_json::{json, Value};

mod config;
mod path;
mod value;
mod write;

#[cfg(test)]
mod tests;

use config::Config;
use value::Injection;

/// The largest contents accepted: the unix-socket channel carries up to 1 MiB
/// per request line, XenStore far less.
pub(crate) const MAX_CONTENTS: usize = 1 << 20;

struct State {
    root: PathBuf,
    config: Config,
    /// Held for a whole injection, so that two at once cannot interleave
    /// their backup and write.
    busy: Mutex<()>,
}

impl State {
    fn new(root: PathBuf, config: Config) -> State {
        State {
            root,
            config,
            busy: Mutex::new(()),
        }
    }

    /// Checks, resolves and writes; the answer of either command.
    fn inject(
        &self,
        command: &str,
        injection: Result<Injection, String>,
    ) -> Result<Value, CommandError> {
        let injection = match injection {
            Ok(injection) => injection,
            Err(message) => {
                tracing::warn!("{command}: refused: {message}");
                return Err(CommandError::failed(message));
            }
        };
        let size = injection.contents.len();
        let _busy = lock(&self.busy);
        let target = match path::check(&injection.path)
            .and_then(|guest| self.config.check_allowed(&guest).map(|()| guest))
            .and_then(|guest| path::resolve(&self.root, &guest))
            .and_then(|target| self.config.check_resolved(&target).map(|()| target))
        {
            Ok(target) => target,
            Err(message) => {
                tracing::warn!(
                    "{command}: refused {:?} ({size} bytes): {message}",
                    injection.path
                );
                return Err(CommandError::failed(message));
            }
        };
        match write::inject(&self.root, &target, &injection.contents) {
            Ok(outcome) => {
                tracing::info!(
                    "{command}: wrote {:?} ({size} bytes{}{})",
                    target.guest,
                    if target.guest == target.asked {
                        String::new()
                    } else {
                        format!(", asked for {:?}", target.asked)
                    },
                    if outcome.backed_up {
                        ", the old file kept as .bak"
                    } else {
                        ", a new file"
                    },
                );
                Ok(json!(""))
            }
            Err(message) => {
                tracing::warn!("{command}: {message}");
                Err(CommandError::failed(message))
            }
        }
    }
}

/// `injectfile`: base64 of `"<path>,<contents>"`.
struct InjectFile(Arc<State>);

impl Command for InjectFile {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let injection = value::injectfile(call.arguments());
        self.0.inject("injectfile", injection)
    }
}

/// `file_inject`: `{"b64_path": .., "b64_file": ..}`.
struct FileInject(Arc<State>);

impl Command for FileInject {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let injection = value::file_inject(call.arguments());
        self.0.inject("file_inject", injection)
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    let config = Config::parse(config)?;
    Ok(provides(State::new(host.root(), config)))
}

fn provides(state: State) -> Provides {
    let state = Arc::new(state);
    Provides::new()
        .command("injectfile", InjectFile(Arc::clone(&state)))
        .command("file_inject", FileInject(state))
}

export_plugin! {
    name: "file-inject",
    description: "files from the host (ssh keys, personality files), written under the root",
    provides: { commands: ["injectfile", "file_inject"] },
    init: init,
}
