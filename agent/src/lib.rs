//! The agent: configuration, the plugin core, the serving daemon and the
//! command line. The binary (`main.rs`) only parses arguments and calls
//! [`cli::execute`]; the docs generator renders [`cli::Cli`]. Nothing else
//! is public.
//!
//! Map, by role (see docs/architecture.md for the invariants); each module
//! uses only those listed before it, never one after:
//! - `trusted`: sshd's StrictModes for what the agent opens as root (every
//!   directory on the way, as the path is written, and the file by its
//!   descriptor);
//! - `config`: the TOML file and the embedded development default;
//!   `logging`: stderr, journald, the log file, and the receiving end of the
//!   plugins' log bridge;
//! - `plugins`: the plugin core. `loader` (plugin directories → trusted,
//!   ABI-checked, opened modules), `instance` (one initialised generation,
//!   retired when its last reference drops), `record`, `registry` (the
//!   serving generations by name, and the table requests read), `dispatch`
//!   (runs a call; the one place that decides whether a command may run),
//!   `host` (what plugins get from the agent), `view` (what `plugins list`
//!   shows, as data), and `pipeline`, the one loader pipeline behind both the
//!   running agent's reloads and the one-shot commands;
//! - `daemon`: `nova-agent run`. `channels` (exchange + parser threads, and
//!   the request loop: decode, dispatch, encode, respond), `swap` (hot
//!   reloads), `control` (the control socket), `service` (systemd, daemonize,
//!   pidfile), `run` (start-up, signals, stop);
//! - [`cli`]: the command line and the one-shot subcommands (`call`,
//!   `config check`, `plugins list|reload`, `resetnetwork`), which render
//!   what the daemon and the plugin core hand them.
//!
//! This crate does not know any protocol: response formats belong to parser
//! plugins, transports to exchange plugins.

pub mod cli;
mod config;
#[cfg(test)]
mod config_prop_tests;
mod daemon;
mod logging;
mod plugins;
mod trusted;
