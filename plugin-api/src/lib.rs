//! The stable ABI between `nova-agent` and its plugins, and the plain Rust
//! API plugin authors write against.
//!
//! A plugin is a `cdylib` the agent loads from its plugin directory. It
//! provides any number of three kinds of object, each by name:
//!
//! - a [`Command`] does one named job (`version`, `guest-ping`, ...): JSON
//!   arguments in, a JSON value or a [`CommandError`] out;
//! - a [`Parser`] speaks one host protocol (Nova's JSON, QEMU's guest agent
//!   protocol): it decodes input into [`ParsedCall`]s and encodes each
//!   [`Outcome`] into a response;
//! - an [`Exchange`] moves input in and responses out (XenStore, a unix
//!   socket, a serial port).
//!
//! The agent drives every request in one straight line: the exchange yields
//! input, the parser decodes it, the agent's dispatcher runs the command,
//! the parser encodes the outcome, the exchange sends it. Nothing calls back
//! into the agent mid-way.
//!
//! This crate is the contract vendors build against, and nothing else: no
//! helpers for files, processes or config parsing live here (those belong in
//! ordinary crates the plugins depend on).
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
//! nova-agent-plugin-api = "0.2.2"
//! serde_json = "1"
//! tracing = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use nova_agent_plugin_api::{export_plugin, Call, Command, CommandError, Host, PluginError, Provides};
//! use serde_json::{json, Value};
//!
//! struct Hello {
//!     host: Host,
//! }
//!
//! impl Command for Hello {
//!     fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
//!         // `tracing` works as usual: events reach the agent's log.
//!         tracing::info!(channel = %call.channel(), "saying hello");
//!         let name: String = call.parse_arguments()?;
//!         Ok(json!(format!("hello {name}, from agent {}", self.host.agent_version())))
//!     }
//! }
//!
//! fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
//!     // `config` is this plugin's `[plugins.hello]` table.
//!     if config != json!({}) {
//!         return Err(PluginError::failed("[plugins.hello] takes no keys"));
//!     }
//!     Ok(Provides::new().command("hello", Hello { host }))
//! }
//!
//! export_plugin! {
//!     name: "hello",
//!     description: "answers `hello`",
//!     // Every object `init` returns, by name (see below).
//!     provides: { commands: ["hello"] },
//!     init: init,
//! }
//!
//! #[cfg(test)]
//! mod tests {
//!     use nova_agent_plugin_api::testing::{TestAgent, TestHost};
//!     use nova_agent_plugin_api::ErrorKind;
//!     use serde_json::json;
//!
//!     #[test]
//!     fn hello_greets_by_name() {
//!         let agent = TestAgent::new(TestHost::new("/tmp/guest"))
//!             .with_plugin(super::init, json!({}))
//!             .unwrap();
//!         let outcome = agent.run("hello", r#""Ada""#);
//!         assert_eq!(outcome.result, Ok(r#""hello Ada, from agent test""#.to_owned()));
//!         let outcome = agent.run("hello", "42");
//!         assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::BadArguments);
//!     }
//! }
//! # fn main() {
//! #     use nova_agent_plugin_api::testing::{TestAgent, TestHost};
//! #     let agent = TestAgent::new(TestHost::new("/tmp/guest")).with_plugin(init, json!({})).unwrap();
//! #     assert_eq!(agent.run("hello", r#""Ada""#).result, Ok(r#""hello Ada, from agent test""#.to_owned()));
//! #     assert!(agent.run("hello", "42").result.is_err());
//! #     assert!(TestAgent::new(TestHost::new("/")).with_plugin(init, json!({"x": 1})).is_err());
//! #     // What the agent does after dlopen: check the ABI, read who it is.
//! #     let root = __NOVA_AGENT_PLUGIN_HEADER
//! #         .init_root_module::<nova_agent_plugin_api::ffi::PluginRootRef>()
//! #         .unwrap();
//! #     assert_eq!(root.name().as_str(), "hello");
//! # }
//! ```
//!
//! `cargo build --release` leaves `target/release/libnova_agent_plugin_hello.so`;
//! copy it into the agent's plugin directory, owned by root, mode 0644.
//! `cargo test` runs the test above: [`testing::TestAgent`] loads the plugin
//! through its exported `init`, as the agent does, and also drives a
//! parser end to end (bytes in, bytes out).
//!
//! `provides` lists what `init` returns (`exchanges`, `parsers`, `commands`
//! and `gates`, each optional, in that order). `export_plugin!` writes it
//! into the file's manifest section ([`manifest`]), which the agent reads
//! without running any of the plugin's code: it loads a plugin only when
//! one of its objects is first needed, which keeps the code of idle plugins
//! out of memory. The agent refuses a plugin whose `init` provides other
//! names than it declared.
//!
//! # Rules of the ABI
//!
//! - The agent refuses a plugin built against an incompatible version of this
//!   crate (`0.x`: the same minor or a newer one) or whose types differ, with
//!   a one-line reason.
//! - A plugin file carries its manifest (name, version, the version of this
//!   crate it was built against, what it provides) in the ELF section
//!   [`manifest::SECTION`], in the format [`manifest`] documents.
//! - `init` receives the [`Host`] and the plugin's config table. It must not
//!   open a transport or touch the system: the agent also loads plugins just to
//!   check their config. It runs when the plugin is first needed (a
//!   command's first call), not necessarily at the agent's start.
//! - Every method of every object may be called from several threads at once.
//! - A panic never crosses the boundary: each entry point runs under
//!   `catch_unwind`, and a panicking command is answered as a failure
//!   ([`ErrorKind::Panicked`]). Plugins must be built with `panic = "unwind"`,
//!   the default.
//! - Inside a plugin, `tracing` events are forwarded to the agent's log and a
//!   panic message is logged through it too. Never log a secret (password,
//!   ciphertext, key, activation key) at any level.
//! - A library is never unloaded; a replaced plugin's code stays mapped.
//!
//! # What the host guarantees
//!
//! - [`Host::root`] is the filesystem root every path a command touches must be
//!   resolved under, and [`Host::apply`] says whether system actions may run.
//! - A command receives its arguments as the parser found them, as JSON
//!   text, and reads metadata (`vm-data/...`) through the exchange the
//!   request arrived on.
//! - Policy is the agent's: a command that `[commands] deny` names, or that a
//!   closed [`Gate`] holds, is never called; it is answered
//!   [`ErrorKind::Disabled`].
//!
//! Modules: [`testing`] holds the stand-ins for the agent; [`ffi`] is the raw
//! ABI and [`manifest`] the manifest section's format, which only the agent
//! needs.

// The crate doc shows a plugin's tests beside the plugin, as its author writes them.
#![allow(clippy::test_attr_in_doctest)]

mod author;
mod export;
pub mod ffi;
mod guard;
mod log;
pub mod manifest;
mod provides;
pub mod testing;
mod types;

pub use author::{Call, Command, Exchange, Host, Parser, StreamDecoder};
pub use provides::AuthorInit;
pub use provides::Provides;
pub use types::{
    CommandError, CommandInfo, Decoded, ErrorKind, Gate, Incoming, Input, LogLevel, Outcome,
    ParsedCall, PluginError,
};

/// The JSON crate the API speaks, for authors who want the same version.
pub use serde_json;

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{root_module, Manifest};
    pub use crate::provides::run_init;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
    pub use abi_stable::std_types::RStr;
}

/// The README's plugin snippet compiles against this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
