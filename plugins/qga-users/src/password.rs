//! `guest-set-user-password {username, password, crypted}`.
//!
//! The checks and their texts are qemu-ga's, in its order: the password is
//! base64 (always, crypted or not), the decoded password may not hold a
//! newline, the user name neither a newline nor a colon. Where qemu-ga
//! then pipes `user:password` into `chpasswd` (`-e` when crypted), the
//! account must be in `<root>/etc/passwd` and the password goes through
//! the shadow writer Nova's `password` uses: a plain password is hashed
//! with the scheme of the hash already on the entry, a crypted one is
//! installed as it is, under the password lock, in one atomic replacement.
//! A NUL byte in the decoded password is refused (qemu-ga would cut the
//! password short there, as C strings end at it).

use std::path::PathBuf;

use nova_agent_plugin_api::{Call, Command, CommandError};
use nova_agent_shadow::{set_password, Editor, NewPassword};
use nova_agent_support::qapi::Args;
use nova_agent_support::runner::Runner;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::passwd;
use nova_agent_support::glib_base64;
use nova_agent_support::guest_path::GuestRoot;

pub(crate) struct SetUserPassword {
    pub(crate) root: PathBuf,
    pub(crate) runner: Runner,
}

impl Command for SetUserPassword {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let username = args.str("username")?;
        let encoded = Zeroizing::new(args.str("password")?);
        let crypted = args.bool("crypted")?;
        args.finish()?;

        let password = Zeroizing::new(glib_base64::decode(&encoded).map_err(CommandError::failed)?);
        if password.contains(&b'\n') {
            return Err(CommandError::failed("forbidden characters in raw password"));
        }
        if username.contains(['\n', ':']) {
            return Err(CommandError::failed("forbidden characters in username"));
        }
        let root = GuestRoot::open(&self.root).map_err(|e| {
            CommandError::failed(format!("cannot open the root {}: {e}", self.root.display()))
        })?;
        passwd::lookup(&root, &username)?;
        let new = match crypted {
            true => NewPassword::Crypted(&password),
            false => NewPassword::Plain(&password),
        };
        set_password(&self.root, &username, new, &self.runner, &Editor::default())
            .map_err(CommandError::failed)?;
        Ok(json!({}))
    }
}
