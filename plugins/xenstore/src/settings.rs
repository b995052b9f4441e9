//! The `[plugins.xenstore]` table, and the XenStore name rules every path the
//! exchange builds has to follow.

use nova_agent_plugin_api::PluginError;
use nova_agent_support::config;
use serde::Deserialize;
use serde_json::Value;

/// The plugin's name, as its config table is named.
const PLUGIN: &str = "xenstore";

/// XenStore's payload limit (XENSTORE_PAYLOAD_MAX): a WRITE carries
/// `path\0value` in at most this many bytes.
pub(crate) const PAYLOAD_MAX: usize = 4096;

/// The longest request id served normally. The response limit the agent
/// enforces is computed for ids up to this length, so that limit holds for
/// every response written; Nova's ids are 36-byte UUIDs.
pub(crate) const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Where requests appear, one child per request (relative: under the
    /// domain's home path).
    pub(crate) request_path: String,
    /// Where a response goes, under the request's id.
    pub(crate) response_path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_request_path")]
    request_path: String,
    #[serde(default = "default_response_path")]
    response_path: String,
}

fn default_request_path() -> String {
    "data/host".to_owned()
}

fn default_response_path() -> String {
    "data/guest".to_owned()
}

impl Settings {
    /// Checks the `[plugins.xenstore]` table.
    pub(crate) fn parse(table: Value) -> Result<Settings, PluginError> {
        let raw: RawSettings = config::parse_table(PLUGIN, table)?;
        for (key, path) in [
            ("request_path", &raw.request_path),
            ("response_path", &raw.response_path),
        ] {
            check_path(path).map_err(|problem| {
                config::table_error(PLUGIN, &format!("{key}: {path:?} {problem}"))
            })?;
        }
        let (request, response) = (&raw.request_path, &raw.response_path);
        if request == response || is_below(response, request) || is_below(request, response) {
            return Err(config::table_error(
                PLUGIN,
                &format!(
                    "request_path {request:?} and response_path {response:?} \
                     must not contain each other: responses would be read as requests"
                ),
            ));
        }
        Ok(Settings {
            request_path: raw.request_path,
            response_path: raw.response_path,
        })
    }

    pub(crate) fn request(&self, id: &str) -> String {
        format!("{}/{id}", self.request_path)
    }

    pub(crate) fn response(&self, id: &str) -> String {
        format!("{}/{id}", self.response_path)
    }

    /// The largest response that fits one WRITE for any id up to
    /// [`MAX_ID_LEN`] bytes.
    pub(crate) fn max_response_len(&self) -> usize {
        PAYLOAD_MAX - (self.response_path.len() + 1 + MAX_ID_LEN) - 1
    }

    /// The request id a watch event's path names, if it names a request node
    /// itself (not the directory, not something below a request).
    pub(crate) fn request_id<'a>(&self, event_path: &'a str) -> Option<&'a str> {
        let id = event_path
            .strip_prefix(self.request_path.as_str())?
            .strip_prefix('/')?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

fn is_below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The longest path taken: xenstored's limit for a relative path
/// (XENSTORE_REL_PATH_MAX). It also keeps [`Settings::max_response_len`]
/// well above zero.
const PATH_MAX: usize = 2048;

/// A XenStore path as xenstored accepts it: absolute or relative to the
/// domain's home, components of `A-Za-z0-9-_@`, no empty component, at most
/// [`PATH_MAX`] bytes.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    if relative.is_empty() {
        return Err("must name a node");
    }
    if path.len() > PATH_MAX {
        return Err("is longer than 2048 bytes");
    }
    if relative.split('/').any(str::is_empty) {
        return Err("has an empty component");
    }
    if !relative.bytes().all(|b| b == b'/' || is_name_byte(b)) {
        return Err("may hold only letters, digits, '-', '_', '@' and '/'");
    }
    Ok(())
}

/// A metadata key: a relative XenStore path (`vm-data/hostname`).
pub(crate) fn check_key(key: &str) -> Result<(), PluginError> {
    if key.starts_with('/') {
        return Err(PluginError::failed(format!(
            "metadata key {key:?} must be relative"
        )));
    }
    check_path(key)
        .map_err(|problem| PluginError::failed(format!("metadata key {key:?} {problem}")))
}

/// Whether `id` (a child name xenstored listed) can be answered normally.
pub(crate) fn id_fits(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
}

pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@')
}
