//! `guest-get-osinfo`, `guest-get-host-name` and `guest-get-load`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::utsname::uname;
use nova_agent_plugin_api::{Call, Command, CommandError, Provides};
use serde_json::{json, Map, Value};

use crate::{no_arguments, number, os_release, System};

pub(crate) fn provide(provides: Provides, root: &Path, system: &Arc<System>) -> Provides {
    provides
        .command(
            "guest-get-osinfo",
            OsInfo {
                root: root.to_path_buf(),
            },
        )
        .command("guest-get-host-name", HostName)
        .command(
            "guest-get-load",
            Load {
                system: Arc::clone(system),
            },
        )
}

/// `guest-get-osinfo`: the live kernel's uname, and the os-release file of
/// the root; keys the file lacks are left out.
struct OsInfo {
    root: PathBuf,
}

/// The os-release keys qemu-ga reports, and their names in the answer.
const OS_RELEASE_KEYS: [(&str, &str); 7] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PRETTY_NAME", "pretty-name"),
    ("VERSION", "version"),
    ("VERSION_ID", "version-id"),
    ("VARIANT", "variant"),
    ("VARIANT_ID", "variant-id"),
];

impl Command for OsInfo {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let kernel =
            uname().map_err(|e| CommandError::failed(format!("uname failed: {}", e.desc())))?;
        let mut info = Map::new();
        info.insert("kernel-release".into(), text(kernel.release()));
        info.insert("kernel-version".into(), text(kernel.version()));
        info.insert("machine".into(), text(kernel.machine()));
        if let Some(keys) = os_release::read(&self.root) {
            for (key, name) in OS_RELEASE_KEYS {
                if let Some(value) = keys.get(key) {
                    info.insert(name.into(), json!(os_release::unquote(value)));
                }
            }
        }
        Ok(Value::Object(info))
    }
}

fn text(value: &OsStr) -> Value {
    json!(value.to_string_lossy())
}

/// `guest-get-host-name`: the kernel's host name, read at each call.
struct HostName;

impl Command for HostName {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let name = nix::unistd::gethostname()
            .map_err(|e| CommandError::failed(format!("cannot get hostname: {}", e.desc())))?;
        Ok(json!({ "host-name": name.to_string_lossy() }))
    }
}

/// `guest-get-load`: the 1, 5 and 15 minute load averages, as QEMU 10's
/// qemu-ga reads them (glibc's getloadavg, which reads /proc/loadavg).
struct Load {
    system: Arc<System>,
}

impl Command for Load {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        no_arguments(call)?;
        let failed = |why: String| CommandError::failed(format!("cannot query load average{why}"));
        let text = std::fs::read_to_string(&self.system.loadavg)
            .map_err(|e| failed(format!(": {}", describe(&e))))?;
        let averages = parse_loadavg(&text).ok_or_else(|| {
            tracing::warn!(
                "{}: unexpected content {text:?}",
                self.system.loadavg.display()
            );
            failed(String::new())
        })?;
        Ok(json!({
            "load1m": number(averages[0]),
            "load5m": number(averages[1]),
            "load15m": number(averages[2]),
        }))
    }
}

/// The first three fields of /proc/loadavg (`0.42 0.30 0.25 1/123 4567`).
pub(crate) fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    let mut take = || fields.next().flatten().filter(|v| v.is_finite());
    Some([take()?, take()?, take()?])
}

/// `e` as strerror words it, without std's " (os error N)".
pub(crate) fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}

#[cfg(test)]
#[path = "os_tests.rs"]
mod tests;
