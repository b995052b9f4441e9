//! The serving agent, `nova-agent run`:
//!
//! - [`run`]: start-up, signals, stop;
//! - [`swap`]: the running agent's plugins, (re)loaded from the plugin
//!   directories without a restart, and the channels restarted when their
//!   exchange changed;
//! - [`channels`]: the configured channels, their threads and the request
//!   loop;
//! - [`control`]: the control socket `plugins list` and `plugins reload`
//!   use;
//! - [`service`]: systemd notify and watchdog, `--daemonize`, `--pidfile`.

pub(crate) mod channels;
pub(crate) mod control;
pub(crate) mod run;
pub(crate) mod service;
pub(crate) mod swap;
