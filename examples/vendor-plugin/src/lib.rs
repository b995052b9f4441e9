//! The `ssh-hostkeys` plugin: command `ssh-hostkeys`, the guest's SSH host
//! key fingerprints, for a host that wants to check the keys it will meet
//! when it first connects to the guest.
//!
//! This is a vendor's plugin, built out of tree against the published ABI
//! (`nova-agent-plugin-api` 0.2); nova-agent does not ship it.
//!
//! For each `/etc/ssh/ssh_host_*_key.pub` under the agent's root, in file
//! name order, it prints what `ssh-keygen -l -f <file>` prints, less the
//! comment: `<bits> SHA256:<fingerprint> (<TYPE>)`. The lines are joined by
//! `"; "`, e.g.
//!
//! ```text
//! 256 SHA256:hK5eVVtlKdERJhTtYYpoDK+B1uCPVFgGoJ9DO1noXW0 (ECDSA); 256 SHA256:Xc8y7NLN9LdhbgY3rzh2YNNcZNPwlfgCAPPSpo09mh4 (ED25519)
//! ```
//!
//! Answers: that text as a JSON string (Nova: `"0"`); a not-found error
//! naming the directory looked in, root included, when there is no key file
//! (or no `/etc/ssh`; Nova: `"404"`); a failure naming
//! the file when one cannot be read or is not a valid ed25519, ecdsa, RSA or
//! DSA public key (Nova: `"500"`; one bad file fails the whole answer rather
//! than hiding a key). The request's arguments are ignored.
//!
//! What it is not: it reads public keys only, never a private key, at most
//! 64 KiB of each; it neither creates nor changes keys and runs nothing
//! (`ssh-keygen` included), so `apply` does not concern it. Symbolic links are
//! followed only while they stay under the root. Certificates
//! (`*-cert.pub`) and security-key types are not reported.
//!
//! Layout: `hostkeys` finds and reads the files, `pubkey` parses one key and
//! computes its fingerprint.

use std::path::PathBuf;

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use serde_json::Value;

mod hostkeys;
mod pubkey;

#[cfg(test)]
mod tests;

struct SshHostKeys {
    root: PathBuf,
}

impl Command for SshHostKeys {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        hostkeys::report(&self.root).map(Value::String)
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    if !matches!(&config, Value::Object(table) if table.is_empty()) {
        return Err(PluginError::failed("[plugins.ssh-hostkeys] takes no keys"));
    }
    Ok(Provides::new().command("ssh-hostkeys", SshHostKeys { root: host.root() }))
}

export_plugin! {
    name: "ssh-hostkeys",
    description: "the guest's SSH host key fingerprints, as ssh-keygen -l shows them",
    provides: { commands: ["ssh-hostkeys"] },
    init: init,
}
