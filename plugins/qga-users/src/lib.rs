//! The `qga-users` plugin: QGA's `guest-set-user-password` and
//! `guest-ssh-get-authorized-keys`, `-add-` and `-remove-`, as qemu-ga 7.2
//! does them on Linux, for the accounts of `<root>/etc/passwd`. It takes no
//! config keys.
//!
//! - `password`: the password checks in qemu-ga's words, then the shadow
//!   writer Nova's `password` plugin uses (`nova-agent-shadow`): hash scheme
//!   kept, `/etc/.pwd.lock` taken, one atomic replacement, only the user's
//!   hash field changed; a crypted password installed as it is.
//! - `ssh`: the three key commands on `<root><home>/.ssh/authorized_keys`.
//! - `passwd`: accounts from `<root>/etc/passwd` (not NSS: the root's files
//!   may not be the running system's).
//! - `guest_path` and `glib_base64` are the `qga-file` plugin's files,
//!   included here by path so both plugins resolve paths and read base64
//!   the same way: every path stays inside the root, and base64 is read as
//!   qemu-ga reads it.
//!
//! What it is not: an account manager (it adds and removes no account), a
//! caller of `chpasswd` or `passwd`, or a logger of secrets (neither a
//! password nor a hash is logged at any level; a user name and a count of
//! keys are).

use std::sync::Arc;

use nova_agent_plugin_api::{export_plugin, Host, PluginError, Provides};
use nova_agent_support::config::no_keys;
use nova_agent_support::runner::Runner;
use serde_json::Value;

#[allow(dead_code)] // only decoding is needed here
mod passwd;
mod password;
mod ssh;

#[cfg(test)]
mod tests;

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("qga-users", &config)?;
    let ssh = Arc::new(ssh::Ssh { root: host.root() });
    Ok(Provides::new()
        .command(
            "guest-set-user-password",
            password::SetUserPassword {
                root: host.root(),
                runner: Runner::new(host.apply()),
            },
        )
        .command(
            "guest-ssh-get-authorized-keys",
            ssh::GetKeys(Arc::clone(&ssh)),
        )
        .command(
            "guest-ssh-add-authorized-keys",
            ssh::AddKeys(Arc::clone(&ssh)),
        )
        .command("guest-ssh-remove-authorized-keys", ssh::RemoveKeys(ssh)))
}

export_plugin! {
    name: "qga-users",
    description: "QGA guest-set-user-password and guest-ssh-*-authorized-keys, for the accounts under the agent's root",
    provides: {
        commands: [
            "guest-set-user-password",
            "guest-ssh-get-authorized-keys",
            "guest-ssh-add-authorized-keys",
            "guest-ssh-remove-authorized-keys",
        ],
    },
    init: init,
}
