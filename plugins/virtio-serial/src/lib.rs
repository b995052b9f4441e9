//! The `virtio-serial` plugin: exchange `virtio-serial`, the byte stream the
//! QEMU guest agent protocol (QGA) travels on, as qemu-ga opens it.
//!
//! On libvirt/KVM the host reaches the guest through the virtio-serial port
//! `org.qemu.guest_agent.0`; libvirt connects to it once the guest has
//! opened the port, and disconnects and reconnects as it pleases. This
//! exchange keeps that port open for the agent's life and hands the agent
//! what it reads as raw chunks of a stream (`Input::Stream`); the channel's
//! parser (`qga`) frames them into requests, and the answers come back
//! through `respond`, written whole. Three methods, as qemu-ga's `-m`:
//!
//! - `virtio-serial` (default): the character device, opened once
//!   (`O_RDWR|O_NONBLOCK|O_NOCTTY|O_CLOEXEC`) and kept open: closing it
//!   would tell the host the agent went away. Where no udev made the
//!   `/dev/virtio-ports/<name>` link, the port is found in
//!   `/sys/class/virtio-ports/vport*/name` and opened as `/dev/vport<N>p<M>`.
//!   A pty slave behaves the same way, which is how it is tested.
//! - `isa-serial`: a serial line (default `/dev/ttyS0`), set raw at 38400
//!   baud with its pending input flushed; opened again after a hang-up.
//! - `unix-listen`: a unix socket at `path` (mode 0600, never wider), one
//!   client at a time (others wait in the backlog); for tests and local use.
//!
//! The semantics it keeps are those of Linux's virtio console driver
//! (reference/qga-protocol.md §1.2 and §0 rule 13): with no host attached a
//! read gives 0 and poll reports POLLHUP, over and over. That is waiting,
//! never an error, and it does not spin: the port is looked at again every
//! 100 ms while the hang-up lasts, as qemu-ga does. A device that is not
//! there is waited for quietly (one "waiting for" line, a look every
//! second). Each host attachment is one stream, and what a host that went
//! away left behind (half-read input, an answer still being computed) never
//! reaches the next one: see `port`.
//!
//! What it is not: it does not parse (the bytes are opaque; `qga` frames
//! them), it resolves nothing under the agent's root (the port is the
//! host's, not a file a command acts on), and it never logs the bytes it
//! moves, only their counts (they carry passwords).
//!
//! It starts no thread: the agent's workers take the port's roles in turn
//! (one reads, one watches for a hang-up; see `port`).
//! No `unsafe`: the system calls go through nix's safe wrappers.
//!
//! Layout: this file holds the [`Exchange`] object and `init`; `config` the
//! table; `port` the state the workers share (sessions, the one owed item,
//! the roles, waiting) and `port::look` what each role does at the port;
//! `wire` the poll, read and write calls; `device` opening the
//! character device; `listen` making the unix socket; `tests` and
//! `unix_tests` drive the exchange over a pty and a socket, `capture`
//! collects what they log.
//!
//! ```toml
//! [plugins.virtio-serial]
//! path = "/dev/virtio-ports/org.qemu.guest_agent.0"   # the default
//! method = "virtio-serial"   # virtio-serial | isa-serial | unix-listen
//! ```

#![forbid(unsafe_code)]

use nova_agent_plugin_api::{export_plugin, Exchange, Host, Incoming, PluginError, Provides};
use serde_json::Value;

mod config;
mod device;
mod listen;
mod port;
mod wire;

#[cfg(test)]
mod capture;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unix_tests;

pub use config::{DEFAULT_ISA_PATH, DEFAULT_VIRTIO_PATH};

/// The plugin's name, as its config table is named.
const PLUGIN: &str = "virtio-serial";

/// libvirt refuses an agent reply longer than this.
pub const MAX_RESPONSE_LEN: u64 = 10 * 1024 * 1024;

/// The exchange `virtio-serial`.
pub struct VirtioSerialExchange {
    port: port::Port,
}

impl VirtioSerialExchange {
    /// Builds the exchange; opens nothing until `start`.
    fn new(config: config::Config) -> Self {
        Self::with(config, device::Dirs::default(), port::Timing::default())
    }

    fn with(config: config::Config, dirs: device::Dirs, timing: port::Timing) -> Self {
        VirtioSerialExchange {
            port: port::Port::new(config, dirs, timing),
        }
    }
}

impl Exchange for VirtioSerialExchange {
    /// Opens the port, or starts waiting for it; fails only for a socket
    /// that cannot be made.
    fn start(&self) -> Result<(), PluginError> {
        self.port.start().map_err(PluginError::failed)
    }

    fn next(&self) -> Result<Option<Incoming>, PluginError> {
        self.port.next().map_err(PluginError::failed)
    }

    fn respond(&self, id: &str, response: &[u8]) -> Result<(), PluginError> {
        self.port.respond(id, response).map_err(PluginError::failed)
    }

    fn max_response_len(&self) -> Option<u64> {
        Some(MAX_RESPONSE_LEN)
    }

    fn shutdown(&self) {
        self.port.shutdown();
    }
}

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    let config = config::Config::parse(config)?;
    Ok(Provides::new().exchange(PLUGIN, VirtioSerialExchange::new(config)))
}

export_plugin! {
    name: "virtio-serial",
    description: "the QEMU guest agent's byte stream on a virtio-serial port, a serial line or a unix socket",
    provides: { exchanges: [PLUGIN] },
    init: init,
}
