//! The agent: configuration, plugin loading, the registry, channels and the
//! command line. The binary (`main.rs`) only parses arguments and calls in.
//!
//! Map (see docs/architecture.md for the invariants):
//! - [`config`]: the TOML file and the embedded development default;
//! - [`loader`]: plugin directories → trusted, ABI-checked, opened plugins;
//! - [`instance`]: one initialised generation of a plugin;
//! - [`registry`]: the serving generations by name, conflicts resolved;
//! - [`swap`]: (re)loading the plugin directories into a running agent, and
//!   restarting the channels whose exchange changed; [`control`]: the
//!   control socket `plugins list` and `plugins reload` use;
//! - [`host`]: what plugins get from the agent; [`dispatch`]: runs commands
//!   and enforces `[commands] deny`;
//! - [`channel`]: exchange + parser threads; [`run`]: start-up, signals, stop;
//!   [`service`]: systemd notify and watchdog, `--daemonize`, `--pidfile`;
//! - [`list`], [`check`], [`call`]: the other subcommands;
//! - [`logging`]: stderr, and the plugins' log bridge.
//!
//! This crate does not know any protocol: response formats belong to parser
//! plugins, transports to exchange plugins.

pub mod call;
pub mod channel;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod host;
pub mod instance;
pub mod list;
pub mod loader;
pub mod logging;
pub mod registry;
pub mod reset;
pub mod run;
pub mod service;
pub mod swap;
