//! The `json` plugin: parser `json`, the Nova JSON protocol.
//!
//! A request is `{"name": "<command>", "value": <any JSON>}`; the response is
//! `{"message": "<message>", "returncode": "<code>"}`, byte for byte as the
//! original agent wrote it (see [`encode`]). The parser finds the command
//! name, hands the request's `value` to the agent's dispatcher as its exact
//! JSON text (never re-serialised: a `keyinit` key may be a number wider than
//! any machine integer), and encodes the reply. Every malformed request is
//! answered with code `"500"`, including valid JSON that is not an object,
//! which the original never answered (bug B-CORE-1).
//!
//! What it is not:
//! - It does not log requests, values or reply messages (they carry passwords
//!   and keys); it only logs, at debug level, which rule a malformed request
//!   broke.
//! - It does not decide policy: a command denied by `[commands] deny` comes
//!   back from the dispatcher as unknown, and is answered `"404"` like one.
//! - It does not run commands or touch the system itself.

use std::collections::HashMap;

use nova_agent_plugin_api::{export_plugin, Dispatch, Host, Parser, PluginError, Provides};
use serde_json::value::RawValue;

mod encode;

use encode::encode_response;

/// The message for a request the exchange could not hand over without saying
/// why (the original's message for a request with no data).
const NO_DATA: &str = "Internal error with request";

/// The `value` of a request that has none: the JSON text `""`.
const EMPTY_VALUE: &str = "\"\"";

/// Why a request was rejected before any command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    NotUtf8,
    NotJson,
    NotObject,
    MissingName,
    NameNotString,
}

impl Malformed {
    /// The message sent back (the original's, where it had one).
    fn message(self) -> &'static str {
        match self {
            Malformed::NotUtf8 | Malformed::NotJson | Malformed::NotObject => {
                "Request is malformed"
            }
            Malformed::MissingName => "Request is missing 'name' key",
            Malformed::NameNotString => "Request 'name' must be a string",
        }
    }

    /// The rule broken, for the debug log.
    fn rule(self) -> &'static str {
        match self {
            Malformed::NotUtf8 => "request is not UTF-8",
            Malformed::NotJson => "request is not JSON",
            Malformed::NotObject => "request is not a JSON object",
            Malformed::MissingName => "request has no 'name' key",
            Malformed::NameNotString => "request 'name' is an array or an object",
        }
    }
}

/// A well-formed request: the command name and the value as JSON text.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    name: String,
    value_json: &'a str,
}

/// Splits a raw request into its command name and its value's JSON text.
fn parse_request(body: &[u8]) -> Result<Parsed<'_>, Malformed> {
    let text = std::str::from_utf8(body).map_err(|_| Malformed::NotUtf8)?;
    // One parse of the whole document (empty input and trailing garbage fail
    // it) into a map, so a duplicate key's last occurrence wins, as with
    // Python's json. Errors are dropped unlogged: their text can quote the
    // request.
    let fields: HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|_| classify(text))?;
    let name = fields.get("name").ok_or(Malformed::MissingName)?;
    Ok(Parsed {
        name: command_name(name)?,
        value_json: fields.get("value").map_or(EMPTY_VALUE, |v| v.get()),
    })
}

/// Why a UTF-8 request did not parse as an object (the cold path).
fn classify(text: &str) -> Malformed {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(_) => Malformed::NotObject,
        Err(_) => Malformed::NotJson,
    }
}

/// The command name: a string as is; another scalar as Python 2's `str()`
/// spelled it, since the original looked the name up after `str()`.
fn command_name(raw: &RawValue) -> Result<String, Malformed> {
    let text = raw.get();
    match text {
        "true" => Ok("True".to_owned()),
        "false" => Ok("False".to_owned()),
        "null" => Ok("None".to_owned()),
        _ if text.starts_with('"') => serde_json::from_str(text).map_err(|_| Malformed::NotJson),
        _ if text.starts_with(['[', '{']) => Err(Malformed::NameNotString),
        // A number: its JSON text.
        _ => Ok(text.to_owned()),
    }
}

/// Parser `json`.
struct JsonParser;

impl Parser for JsonParser {
    fn handle(
        &self,
        body: Result<&[u8], &str>,
        dispatch: &Dispatch<'_>,
    ) -> Result<Vec<u8>, PluginError> {
        let bytes = match body {
            Ok(bytes) => bytes,
            Err("") => return Ok(encode_response("500", NO_DATA)),
            Err(reason) => return Ok(encode_response("500", reason)),
        };
        let request = match parse_request(bytes) {
            Ok(request) => request,
            Err(malformed) => {
                tracing::debug!(rule = malformed.rule(), "malformed request");
                return Ok(encode_response("500", malformed.message()));
            }
        };
        Ok(match dispatch.run(&request.name, request.value_json) {
            Some(reply) => encode_response(&reply.code, &reply.message),
            None => encode_response("404", &format!("No such agent command '{}'", request.name)),
        })
    }

    fn error_response(&self, code: &str, message: &str) -> Vec<u8> {
        encode_response(code, message)
    }
}

/// `[plugins.json]` must be an empty table.
fn check_config(config_json: &str) -> Result<(), PluginError> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(config_json) {
        Ok(table) if table.is_empty() => Ok(()),
        _ => Err(PluginError::failed("[plugins.json] takes no keys")),
    }
}

fn init(_host: Host, config_json: &str) -> Result<Provides, PluginError> {
    check_config(config_json)?;
    Ok(Provides::new().parser("json", JsonParser))
}

export_plugin! {
    name: "json",
    description: "the Nova JSON protocol",
    exchanges: [],
    parsers: ["json"],
    commands: [],
    init: init,
}

#[cfg(test)]
mod tests;
