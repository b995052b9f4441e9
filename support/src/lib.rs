//! Code several nova-agent plugins share: files under the configured root,
//! atomic replacement, the runner for system commands, the distro family of
//! a root, config tables, poison-ignoring locks, and (feature `testing`) the
//! log capture of their tests.
//!
//! The agent acts on a configured filesystem root (`/` in production, a
//! temporary directory in tests) and has an `apply` flag (when false, system
//! actions are logged instead of run). So every file a command touches is
//! named through [`files::under_root`] and written with
//! [`files::replace_file`], and every external program goes through a
//! [`runner::Runner`], which masks secret arguments in everything it logs or
//! reports. A plugin's `[plugins.<name>]` table is read with
//! [`config::parse_table`] (or refused whole with [`config::no_keys`]), so
//! every config error reads `[plugins.<name>] <key path>: <problem>`; a
//! mutex shared by requests is taken with [`sync::lock`], which survives a
//! panic caught at the ABI boundary.
//!
//! System calls go through `nix`'s safe wrappers. The one place that needs
//! `unsafe` is the SELinux label (extended attributes, which nix lacks):
//! one small wrapper in `label`.
//!
//! What it is not: a plugin (it is an ordinary library the plugins link
//! statically), part of the ABI (vendors never see it), a sandbox
//! (`under_root` is lexical and does not follow symlinks; callers that care
//! check them), or a logger of command output (output may echo a secret, so
//! callers decide what to show).
//!
//! Layout: `files` holds the root-relative paths and the atomic replacement,
//! `label` the SELinux label copied onto a replacement; `runner` the runner
//! and what a run returns, `arg` the arguments and their masked, shell-quoted
//! rendering, `child` waiting for a started program with a deadline while
//! draining its output; `distro` the distro family; `config` the config
//! tables; `sync` the lock helpers; `qapi` the strict checking of QGA
//! command arguments, in QEMU's words; `socket` a listening unix socket made
//! safely (mode 0600, stale ones replaced, removed only if still ours);
//! `cscan` a kernel file's line read as C's `sscanf` reads it; `echo`
//! request text quoted in an answer or a log line, cut to 64 characters; `guest_path` the paths a QGA host
//! names, resolved under the root without leaving it; `glib_base64` base64
//! as qemu-ga reads and writes it; `testing` the test helpers.

pub mod config;
pub mod cscan;
pub mod distro;
pub mod echo;
pub mod files;
pub mod glib_base64;
pub mod guest_path;
pub mod qapi;
pub mod runner;
pub mod socket;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

mod arg;
mod child;
mod label;

#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod runner_tests;
