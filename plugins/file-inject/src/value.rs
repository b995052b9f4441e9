//! The two value forms, decoded into a path and contents.

use base64::Engine;

use crate::MAX_CONTENTS;

/// The original agent's message for any value it could not base64-decode
/// (a decode error, or a value that is not a string).
pub(crate) const BAD_BASE64: &str = "Error doing base64 decoding of data";
pub(crate) const NO_COMMA: &str =
    "Invalid injectfile data: no comma between the path and the contents";
pub(crate) const BAD_OBJECT: &str =
    "Invalid file_inject data: expected an object with the strings b64_path and b64_file";
pub(crate) const PATH_NOT_UTF8: &str = "Refusing the path: it is not valid UTF-8";

/// A decoded request: the path as the host sent it, and the bytes to write.
pub(crate) struct Injection {
    pub(crate) path: String,
    pub(crate) contents: Vec<u8>,
}

/// `injectfile`'s value: a JSON string, base64 of `"<path>,<contents>"`,
/// split at the first comma.
pub(crate) fn injectfile(value_json: &str) -> Result<Injection, String> {
    let text: String = serde_json::from_str(value_json).map_err(|_| BAD_BASE64.to_owned())?;
    let mut data = decode(&text)?;
    let comma = data
        .iter()
        .position(|&b| b == b',')
        .ok_or_else(|| NO_COMMA.to_owned())?;
    let contents = data.split_off(comma + 1);
    data.truncate(comma);
    injection(data, contents)
}

/// `file_inject`'s value: `{"b64_path": "<base64>", "b64_file": "<base64>"}`.
/// Other keys are ignored.
pub(crate) fn file_inject(value_json: &str) -> Result<Injection, String> {
    let value: serde_json::Value =
        serde_json::from_str(value_json).map_err(|_| BAD_OBJECT.to_owned())?;
    let field = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| BAD_OBJECT.to_owned())
    };
    let (path, file) = (field("b64_path")?, field("b64_file")?);
    injection(decode(path)?, decode(file)?)
}

fn injection(path: Vec<u8>, contents: Vec<u8>) -> Result<Injection, String> {
    if contents.len() > MAX_CONTENTS {
        return Err(format!(
            "Refusing the file: its contents are {} bytes, over the limit of {MAX_CONTENTS} bytes (1 MiB)",
            contents.len()
        ));
    }
    let path = String::from_utf8(path).map_err(|_| PATH_NOT_UTF8.to_owned())?;
    Ok(Injection { path, contents })
}

/// Base64 as hosts send it, line-wrapped or not: whitespace anywhere is
/// ignored, padding may be missing. (Python 2, which the original agent ran
/// on, also skipped any other character outside the alphabet; that is
/// refused here.)
fn decode(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact).map_err(|_| BAD_BASE64.to_owned())
}
