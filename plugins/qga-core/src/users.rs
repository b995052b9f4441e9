//! `guest-get-users`: who is logged in, from `<root>/var/run/utmp` in
//! glibc's x86_64 record layout, read without the C library so that the
//! root is honoured.

use std::path::{Path, PathBuf};

use nova_agent_plugin_api::{Call, Command, CommandError, Provides};
use nova_agent_support::files::under_root;
use serde_json::{json, Value};

use crate::{no_arguments, number};

pub(crate) fn provide(provides: Provides, root: &Path) -> Provides {
    provides.command(
        "guest-get-users",
        Users {
            root: root.to_path_buf(),
        },
    )
}

/// glibc's `_PATH_UTMP`.
pub(crate) const UTMP: &str = "/var/run/utmp";

/// `guest-get-users`: one entry per user with a `USER_PROCESS` record, in
/// the order of their first record, with the earliest login time (seconds
/// since the epoch, as a double). No utmp file means nobody is logged in.
struct Users {
    root: PathBuf,
}

impl Command for Users {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let path = under_root(&self.root, UTMP).map_err(|e| CommandError::failed(e.to_string()))?;
        let records = match std::fs::read(&path) {
            Ok(records) => records,
            Err(e) => {
                // qemu-ga's getutxent answers "nobody" for any unreadable
                // file; only a missing one is unremarkable.
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("guest-get-users: reading {}: {e}", path.display());
                }
                Vec::new()
            }
        };
        let users: Vec<Value> = logins(&records)
            .into_iter()
            .map(|login| json!({ "user": login.user, "login-time": number(login.time) }))
            .collect();
        Ok(json!(users))
    }
}

/// One user's earliest login.
#[derive(Debug, PartialEq)]
pub(crate) struct Login {
    pub user: String,
    /// Seconds since the epoch, with the record's microseconds.
    pub time: f64,
}

/// glibc's `struct utmp` on x86_64 (`bits/utmp.h`, 32-bit `ut_session` and
/// `ut_tv` by `__WORDSIZE_TIME64_COMPAT32`): 384 bytes, little-endian.
const RECORD: usize = 384;
const TYPE: usize = 0;
const USER: std::ops::Range<usize> = 44..76;
const TV_SEC: usize = 340;
const TV_USEC: usize = 344;
/// `ut_type` of a logged-in user's record.
const USER_PROCESS: i16 = 7;

/// The users of the `USER_PROCESS` records in `utmp`, de-duplicated by name
/// keeping the earliest time, in the order of their first record. A trailing
/// partial record is ignored, as glibc ignores it.
pub(crate) fn logins(utmp: &[u8]) -> Vec<Login> {
    let mut logins: Vec<Login> = Vec::new();
    for record in utmp.chunks_exact(RECORD) {
        if i16::from_le_bytes(field(record, TYPE)) != USER_PROCESS {
            continue;
        }
        let name = &record[USER];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let user = String::from_utf8_lossy(name).into_owned();
        let seconds = i32::from_le_bytes(field(record, TV_SEC));
        let micros = i32::from_le_bytes(field(record, TV_USEC));
        let time = f64::from(seconds) + f64::from(micros) / 1_000_000.0;
        match logins.iter_mut().find(|login| login.user == user) {
            Some(login) => login.time = login.time.min(time),
            None => logins.push(Login { user, time }),
        }
    }
    logins
}

/// The `N` bytes at `at` of a whole record.
fn field<const N: usize>(record: &[u8], at: usize) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&record[at..at + N]);
    bytes
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
