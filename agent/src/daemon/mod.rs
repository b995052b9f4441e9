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
//! - [`demo`]: the embedded default's sandbox, created and seeded;
//! - [`service`]: systemd notify and watchdog, `--daemonize`, `--pidfile`.
//! - [`signals`]: the signals `run` waits for: stop, reload, ignored.

pub(crate) mod channels;
pub(crate) mod control;
mod demo;
pub(crate) mod run;
pub(crate) mod service;
pub(crate) mod signals;
pub(crate) mod swap;
