//! The request's value: the string `"<url>,<md5hex>"` (split at the first
//! comma, as Nova sends it since 2013) or the older object
//! `{"url": ..., "md5sum": ...}`.

use serde_json::Value;

pub const MISSING_IN_DICT: &str = "Missing URL or MD5 sum in dictionary arguments";
pub const INVALID: &str = "Invalid arguments";
/// The seed leaked Python's "need more than 1 value to unpack" here.
pub const NO_COMMA: &str = "Invalid arguments: the value must be '<url>,<md5sum>'";

/// What the host asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    pub url: String,
    /// As the host sent it (hex, compared case-insensitively).
    pub md5: String,
}

/// The value's JSON text, as the request carried it.
pub fn parse(value_json: &str) -> Result<UpdateRequest, &'static str> {
    match serde_json::from_str::<Value>(value_json) {
        Ok(Value::String(text)) => {
            let (url, md5) = text.split_once(',').ok_or(NO_COMMA)?;
            let (url, md5) = (url.trim(), md5.trim());
            if url.is_empty() || md5.is_empty() {
                return Err(NO_COMMA);
            }
            Ok(UpdateRequest {
                url: url.to_owned(),
                md5: md5.to_owned(),
            })
        }
        Ok(Value::Object(map)) => match (map.get("url"), map.get("md5sum")) {
            (Some(Value::String(url)), Some(Value::String(md5))) => {
                let (url, md5) = (url.trim(), md5.trim());
                if url.is_empty() || md5.is_empty() {
                    return Err(MISSING_IN_DICT);
                }
                Ok(UpdateRequest {
                    url: url.to_owned(),
                    md5: md5.to_owned(),
                })
            }
            (Some(_), Some(_)) => Err(INVALID),
            _ => Err(MISSING_IN_DICT),
        },
        _ => Err(INVALID),
    }
}
