//! The agent: configuration, plugin loading, the registry, channels and the
//! command line. The binary (`main.rs`) only parses arguments and calls in.
//!
//! Map (see docs/architecture.md for the invariants):
//! - [`config`]: the TOML file and the embedded development default;
//! - [`loader`]: plugin directories → trusted, ABI-checked, opened plugins;
//! - [`registry`]: plugins initialised, names resolved, conflicts recorded;
//! - [`host`]: what plugins get from the agent; [`dispatch`]: runs commands
//!   and enforces `[commands] deny`;
//! - [`channel`]: exchange + parser threads; [`run`]: start-up, signals, stop;
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
pub mod dispatch;
pub mod host;
pub mod list;
pub mod loader;
pub mod logging;
pub mod registry;
pub mod reset;
pub mod run;
