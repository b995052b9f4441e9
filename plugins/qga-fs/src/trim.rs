//! `guest-fstrim`: FITRIM on every mount, as qemu-ga 7.2's
//! `qmp_guest_fstrim` does. A mount that cannot be trimmed gets an `error`
//! instead of `trimmed` and `minimum`; the answer lists the mounts last
//! mounted first.
//!
//! With `apply = false` nothing is trimmed: each mount is answered as a
//! FITRIM that found nothing to discard would be (`trimmed: 0`, the
//! requested `minimum`), which is true, and keeps the answer's shape.

use nix::errno::Errno;
use nova_agent_plugin_api::CommandError;
use serde_json::{json, Map, Value};

use crate::mounts::{mount_list, Paths};
use crate::ops::{strerror, Failure, Filesystems};

pub(crate) fn fstrim(
    paths: &Paths,
    fs: &dyn Filesystems,
    minimum: Option<i64>,
) -> Result<Value, CommandError> {
    tracing::info!("guest-fstrim called");
    let mounts = mount_list(paths).map_err(CommandError::failed)?;
    // QAPI's int goes into the kernel's u64 as C converts it: -1 is a
    // minimum no filesystem has, and the kernel refuses it.
    let minimum = minimum.unwrap_or(0) as u64;
    let mut paths = Vec::with_capacity(mounts.len());
    for mount in &mounts {
        let mut result = Map::new();
        result.insert("path".into(), json!(mount.shown()));
        match fs.trim(mount, minimum) {
            Ok(trimmed) => {
                result.insert("minimum".into(), json!(trimmed.minimum as i64));
                result.insert("trimmed".into(), json!(trimmed.bytes as i64));
            }
            Err(failure) => {
                result.insert("error".into(), json!(trim_error(failure)));
            }
        }
        paths.push(Value::Object(result));
    }
    paths.reverse();
    Ok(json!({ "paths": paths }))
}

fn trim_error(failure: Failure) -> String {
    match failure {
        Failure::Open(e) => format!("failed to open: {}", strerror(e)),
        Failure::Ioctl(Errno::ENOTTY | Errno::EOPNOTSUPP) => "trim not supported".to_owned(),
        Failure::Ioctl(e) => format!("failed to trim: {}", strerror(e)),
    }
}
