//! The request's value, checked: `{"activation_key": str, "profile": str,
//! "domains": str | [str], "org": str}`. Every value that lands in a file or
//! on a command line is checked here, before anything is touched; messages
//! name the key and never repeat the activation key.

use std::fmt;

use serde_json::{Map, Value};

/// The activation key: never shown (no `Display`; `Debug` masks it).
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationKey(String);

impl ActivationKey {
    /// The key itself, for `Arg::secret` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActivationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationKey(<secret>)")
    }
}

/// A host name of the RHN servers (or proxies): dot-separated labels of
/// ASCII letters, digits and `-`, each 1 to 63 long and not starting or
/// ending with `-`; 253 characters at most. IPv4 addresses fit too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    pub fn parse(text: &str) -> Option<Domain> {
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        (text.len() <= 253 && text.split('.').all(label_ok)).then(|| Domain(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The checked value. Which keys are required depends on the tool that
/// registers ([`Request::for_rhn`], [`Request::org_for_subscription_manager`]),
/// so only the activation key is required here; every key present is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub key: ActivationKey,
    pub profile: Option<String>,
    pub domains: Option<Vec<Domain>>,
    pub org: Option<String>,
}

pub const NOT_AN_OBJECT: &str = "Invalid value: expected a JSON object";

/// `Missing '<key>' key`: the seed answered Python's KeyError text, `'<key>'`.
pub fn missing(key: &str) -> String {
    format!("Missing '{key}' key")
}

impl Request {
    /// Parses and checks the value's JSON text; the error is the answer's
    /// message.
    pub fn parse(value_json: &str) -> Result<Request, String> {
        let value: Value = serde_json::from_str(value_json).map_err(|_| NOT_AN_OBJECT)?;
        let Value::Object(map) = value else {
            return Err(NOT_AN_OBJECT.to_owned());
        };
        let key = match map.get("activation_key") {
            None => return Err(missing("activation_key")),
            Some(Value::String(key)) if !key.is_empty() && printable(key) => {
                ActivationKey(key.clone())
            }
            Some(_) => {
                return Err("Invalid 'activation_key': expected a non-empty string \
                            of printable characters"
                    .to_owned())
            }
        };
        Ok(Request {
            key,
            profile: text(&map, "profile")?,
            domains: domains(&map)?,
            org: text(&map, "org")?,
        })
    }

    /// What `rhnreg_ks` needs besides the key: the profile and the domains.
    pub fn for_rhn(&self) -> Result<(&str, &[Domain]), String> {
        let profile = self.profile.as_deref().ok_or_else(|| missing("profile"))?;
        let domains = self.domains.as_deref().ok_or_else(|| missing("domains"))?;
        Ok((profile, domains))
    }

    /// What `subscription-manager` needs besides the key: the organization.
    pub fn org_for_subscription_manager(&self) -> Result<&str, String> {
        self.org.as_deref().ok_or_else(|| missing("org"))
    }
}

/// No control characters (C0, DEL, C1): nothing that could break a line of
/// a log, a file or a command's own parsing.
fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// An optional non-empty printable string. `null` counts as absent.
fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() && printable(text) => Ok(Some(text.clone())),
        Some(_) => Err(format!(
            "Invalid '{key}': expected a non-empty string without control characters"
        )),
    }
}

/// `domains`: one host name, or a non-empty list of them.
fn domains(map: &Map<String, Value>) -> Result<Option<Vec<Domain>>, String> {
    let invalid = "Invalid 'domains': expected a host name or a non-empty list of host names";
    let texts: Vec<&Value> = match map.get("domains") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(one @ Value::String(_)) => vec![one],
        Some(_) => return Err(invalid.to_owned()),
    };
    let mut domains = Vec::with_capacity(texts.len());
    for (n, text) in texts.into_iter().enumerate() {
        let domain = text.as_str().and_then(Domain::parse).ok_or_else(|| {
            format!(
                "Invalid 'domains': entry {} is not a host name \
                 (letters, digits, '-' and '.')",
                n + 1
            )
        })?;
        domains.push(domain);
    }
    Ok(Some(domains))
}
