//! The stable ABI between `nova-agent` and its plugins.
//!
//! A plugin is a `cdylib` the agent loads from its plugin directory. It
//! provides any number of three kinds of object, each by name:
//!
//! - an [`Exchange`] moves raw requests in and raw responses out (XenStore, a
//!   unix socket);
//! - a [`Parser`] turns a raw request into a command call and the reply into a
//!   raw response (the Nova JSON protocol);
//! - a [`Command`] does one named job (`version`, `password`, ...).
//!
//! This crate is the contract vendors build against, and nothing else: no
//! helpers for files, processes or config parsing live here (those belong in
//! ordinary crates the plugins depend on). It depends only on `abi_stable`
//! and `tracing-core`.
//!
//! Modules: [`ffi`] is the raw ABI the agent uses; [`testing`] holds
//! stand-ins for the agent ([`testing::TestHost`], [`testing::TestCall`])
//! for a plugin's unit tests.
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "nova-agent-plugin-hello"
//! version = "1.0.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! nova-agent-plugin-api = "0.1"
//! tracing = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use nova_agent_plugin_api::{export_plugin, Call, Command, Host, PluginError, Provides, Reply};
//!
//! struct Hello {
//!     host: Host,
//! }
//!
//! impl Command for Hello {
//!     fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
//!         // `tracing` works as usual: events reach the agent's log.
//!         tracing::info!(channel = %call.channel(), "saying hello");
//!         Ok(Reply::ok(format!("hello from agent {}", self.host.agent_version())))
//!     }
//! }
//!
//! fn init(host: Host, config_json: &str) -> Result<Provides, PluginError> {
//!     // `config_json` is this plugin's `[plugins.hello]` table as JSON.
//!     if config_json != "{}" {
//!         return Err(PluginError::failed("[plugins.hello] takes no keys"));
//!     }
//!     Ok(Provides::new().command("hello", Hello { host }))
//! }
//!
//! export_plugin! {
//!     name: "hello",
//!     description: "answers `hello`",
//!     exchanges: [],
//!     parsers: [],
//!     commands: ["hello"],
//!     init: init,
//! }
//! # fn main() {
//! #     // What the agent does after dlopen: check the ABI, read the manifest.
//! #     let root = __NOVA_AGENT_PLUGIN_HEADER
//! #         .init_root_module::<nova_agent_plugin_api::ffi::PluginRootRef>()
//! #         .unwrap();
//! #     assert_eq!(root.name().as_str(), "hello");
//! #     assert_eq!(root.commands().len(), 1);
//! # }
//! ```
//!
//! `cargo build --release` leaves `target/release/libnova_agent_plugin_hello.so`;
//! copy it into the agent's plugin directory, owned by root, mode 0644.
//!
//! # Rules of the ABI
//!
//! - The agent refuses a plugin built against an incompatible version of this
//!   crate (`0.x`: the same minor or a newer one) or whose types differ, with
//!   a one-line reason.
//! - `init` receives the [`Host`] and the plugin's config table. It must not
//!   open a transport or touch the system: the agent also loads plugins just to
//!   read their manifests and check their config.
//! - Every method of every object may be called from several threads at once.
//! - A panic never crosses the boundary: each entry point runs under
//!   `catch_unwind` ([`guard`]) and a panic becomes [`PluginError::Panicked`]
//!   (answered `"500"` by the agent). Plugins must be built with
//!   `panic = "unwind"`, the default.
//! - Inside a plugin, `tracing` events are forwarded to the agent's log and a
//!   panic message is logged through it too. Never log a secret (password,
//!   ciphertext, key, activation key) at any level.
//! - A library is never unloaded; a replaced plugin's code stays mapped.
//!
//! # What the host guarantees
//!
//! - [`Host::root`] is the filesystem root every path a command touches must be
//!   resolved under, and [`Host::apply`] says whether system actions may run.
//! - A command receives the request's `value` as JSON text, and reads metadata
//!   (`vm-data/...`) through the exchange the request arrived on.
//! - `[commands] deny` is enforced by the agent: a denied command is never
//!   called.

mod author;
mod export;
pub mod ffi;
mod guard;
mod log;
pub mod testing;
mod types;

pub use author::{Call, Command, Dispatch, Exchange, Host, Parser, Provides};
pub use guard::guard;
pub use types::{LogLevel, PluginError, Reply, Request};

/// The abi_stable this ABI is built on, for the agent.
pub use abi_stable;

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{root_module, Manifest};
    pub use crate::guard::run_init;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
    pub use abi_stable::std_types::{RResult, RStr};
}
