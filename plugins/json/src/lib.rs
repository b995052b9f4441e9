//! The `json` plugin: parser `json`, the Nova JSON protocol.
//!
//! A request is `{"name": "<command>", "value": <any JSON>}`; the response is
//! `{"message": "<message>", "returncode": "<code>"}`, byte for byte as the
//! original agent wrote it (see [`encode`]). `decode` finds the command name
//! and hands the request's `value` on as its exact JSON text (never
//! re-serialised: a `keyinit` key may be a number wider than any machine
//! integer); `encode` maps the command's outcome to Nova's codes:
//!
//! - a value: `"0"` (`"D0"` for `keyinit`), the message being a JSON string
//!   as it is, `null` as `""`, anything else as its compact JSON text;
//! - an unknown or denied command: `"404"` `No such agent command '<name>'`;
//!   one a closed gate holds: `"404"` `Command '<name>' is disabled:
//!   <reason>` (the guest's filesystems are frozen, say); a name of more
//!   than 64 characters is echoed as its first 64 and `...`;
//! - not found: `"404"` with its message; any other error: `"500"` with its
//!   message.
//!
//! Every malformed request is answered with code `"500"` by `decode` itself,
//! including valid JSON that is not an object, which the original never
//! answered (bug B-CORE-1).
//!
//! What it is not:
//! - It does not log requests, values or reply messages (they carry passwords
//!   and keys); it only logs, at debug level, which rule a malformed request
//!   broke.
//! - It does not decide policy: a command denied by `[commands] deny` or held
//!   by a closed gate comes back from the dispatcher as disabled, and is
//!   answered `"404"` like an unknown one.
//! - It does not run commands or touch the system itself.

#![forbid(unsafe_code)]

use nova_agent_plugin_api::{
    export_plugin, Decoded, Host, Outcome, ParsedCall, Parser, PluginError, Provides,
};
use nova_agent_support::config;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

mod encode;

use encode::{encode_outcome, encode_response};

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
    // it); a duplicate key's last occurrence wins, as with Python's json.
    // Errors are dropped unlogged: their text can quote the request.
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|_| classify(text))?;
    let name = envelope.name.ok_or(Malformed::MissingName)?;
    Ok(Parsed {
        name: command_name(name)?,
        value_json: envelope.value.map_or(EMPTY_VALUE, RawValue::get),
    })
}

/// The two members of a request that matter, borrowed from its text; any
/// other member is skipped unread, and of a duplicate the last one counts.
struct Envelope<'a> {
    name: Option<&'a RawValue>,
    value: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'de>, M::Error> {
        let mut envelope = Envelope {
            name: None,
            value: None,
        };
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Name => envelope.name = Some(map.next_value()?),
                Member::Value => envelope.value = Some(map.next_value()?),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// A member's key, told apart without allocating (an escaped key is
/// unescaped by serde_json into its scratch buffer).
enum Member {
    Name,
    Value,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(MemberVisitor)
    }
}

struct MemberVisitor;

impl Visitor<'_> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Member, E> {
        Ok(match key {
            "name" => Member::Name,
            "value" => Member::Value,
            _ => Member::Other,
        })
    }
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

/// Decodes one request: the call it names, or the answer to a request that
/// names none.
fn decode_request(request: Result<&[u8], &str>) -> Decoded {
    let bytes = match request {
        Ok(bytes) => bytes,
        Err("") => return Decoded::Answer(encode_response("500", NO_DATA)),
        Err(reason) => return Decoded::Answer(encode_response("500", reason)),
    };
    match parse_request(bytes) {
        Ok(request) => Decoded::Call(ParsedCall {
            command: request.name,
            arguments: request.value_json.to_owned(),
            context: String::new(),
        }),
        Err(malformed) => {
            tracing::debug!(rule = malformed.rule(), "malformed request");
            Decoded::Answer(encode_response("500", malformed.message()))
        }
    }
}

/// Parser `json`.
struct JsonParser;

impl Parser for JsonParser {
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded {
        decode_request(request)
    }

    fn encode(&self, command: &str, _context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        encode_outcome(command, outcome)
    }
}

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    config::no_keys("json", &config)?;
    Ok(Provides::new().parser("json", JsonParser))
}

export_plugin! {
    name: "json",
    description: "the Nova JSON protocol",
    provides: { parsers: ["json"] },
    init: init,
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
