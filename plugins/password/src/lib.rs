//! The `password` plugin: commands `keyinit` and `password`, which set
//! root's password from the host.
//!
//! `keyinit` runs Nova's Diffie-Hellman exchange (p = 2^107 − 1, g = 5) and
//! answers "D0" with the agent's public key; `password` decrypts the host's
//! AES-128-CBC ciphertext with the shared secret (MD5 or SHA-256 key
//! derivation, whichever the host's OpenSSL used) and sets root's password in
//! `<root>/etc/shadow` (FreeBSD: `<root>/etc/master.passwd` and `pwd_mkdb`),
//! keeping the hash scheme already in use. Keys are kept per channel, and a
//! key is used for one successful password only.
//!
//! What it is not: it never logs a password, ciphertext or shared secret
//! (lengths at most), never calls `passwd`/`chpasswd` (it edits the file as
//! shadow-utils does, under its lock), and changes no account but root's.
//!
//! Layout: `dh` the key exchange, `cipher` decryption; the file edit (the
//! choice of hash, the system's crypt library, the lock and the atomic
//! replacement) is the `nova-agent-shadow` crate's, which `qga-users` shares.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_shadow::{self as shadow, NewPassword};
use nova_agent_support::config::no_keys;
use nova_agent_support::runner::Runner;
use nova_agent_support::sync::lock;
use serde_json::{json, Value};
use zeroize::Zeroizing;

mod cipher;
mod dh;

#[cfg(test)]
mod tests;

const NO_KEY: &str = "Password without key exchange";
const BAD_BASE64: &str = "Couldn't decode base64 data";
const BAD_DATA: &str = "Invalid password data received";

/// The shared secret of each channel's last `keyinit`, until a password
/// uses it: a keyinit on one channel does not disturb an exchange on another.
#[derive(Default)]
struct Keys(Mutex<HashMap<String, Zeroizing<String>>>);

impl Keys {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Zeroizing<String>>> {
        lock(&self.0)
    }
}

struct State {
    keys: Keys,
    root: PathBuf,
    runner: Runner,
    editor: shadow::Editor,
}

/// `keyinit`: the agent's public key, in decimal, as a JSON string (the
/// Nova parser answers it with code "D0").
struct KeyInit(Arc<State>);

impl Command for KeyInit {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let host_key = dh::parse_host_key(call.arguments()).map_err(CommandError::failed)?;
        let pair = dh::KeyPair::generate().map_err(CommandError::failed)?;
        let secret = pair.shared_secret(&host_key);
        self.0.keys.lock().insert(call.channel(), secret);
        tracing::debug!("keyinit: new key for this channel");
        Ok(json!(pair.public.to_str_radix(10)))
    }
}

/// `password`: the base64 ciphertext, as a JSON string.
struct Password(Arc<State>);

impl Command for Password {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let state = &self.0;
        let encoded: Zeroizing<String> = serde_json::from_str::<String>(call.arguments())
            .map(Zeroizing::new)
            .map_err(|_| CommandError::failed(BAD_BASE64))?;
        let ciphertext = cipher::decode_base64(&encoded)
            .map(Zeroizing::new)
            .ok_or_else(|| CommandError::failed(BAD_BASE64))?;
        let channel = call.channel();
        let Some(secret) = state.keys.lock().get(&channel).cloned() else {
            return Err(CommandError::failed(NO_KEY));
        };
        let Some((password, digest)) = cipher::decrypt(&ciphertext, &secret) else {
            tracing::debug!(
                "password: {} bytes of ciphertext open with neither key derivation",
                ciphertext.len()
            );
            return Err(CommandError::failed(BAD_DATA));
        };
        tracing::debug!(
            "password: {} bytes of ciphertext, a {}-character password, {} key derivation",
            ciphertext.len(),
            password.chars().count(),
            digest.name()
        );
        shadow::set_password(
            &state.root,
            "root",
            NewPassword::Plain(password.as_bytes()),
            &state.runner,
            &state.editor,
        )
        .map_err(CommandError::failed)?;
        // One password per key; unless a new keyinit replaced it meanwhile.
        let mut keys = state.keys.lock();
        if keys.get(&channel).is_some_and(|k| **k == *secret) {
            keys.remove(&channel);
        }
        Ok(json!(""))
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("password", &config)?;
    Ok(provides(State {
        keys: Keys::default(),
        root: host.root(),
        runner: Runner::new(host.apply()),
        editor: shadow::Editor::default(),
    }))
}

fn provides(state: State) -> Provides {
    let state = Arc::new(state);
    Provides::new()
        .command("keyinit", KeyInit(Arc::clone(&state)))
        .command("password", Password(state))
}

export_plugin! {
    name: "password",
    description: "root's password from the host: Diffie-Hellman key exchange, then the encrypted password",
    provides: { commands: ["keyinit", "password"] },
    init: init,
}
