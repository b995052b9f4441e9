//! The manifest a plugin file carries in an ELF section, so the agent can
//! know a plugin (who it is, which ABI it was built against, what it
//! provides) without mapping or running any of its code. Part of the ABI.
//!
//! [`export_plugin!`](crate::export_plugin) writes the section
//! [`SECTION`] at compile time. Its content, format 1:
//!
//! - the magic `NOVA-AGENT-MANIFEST\0`;
//! - then records `key=value\0`, the value running to the NUL (it may hold
//!   `=`; a NUL in a value is a compile-time error):
//!   - `format=1`, the version of this layout;
//!   - `api=`, the version of this crate the plugin was built against;
//!   - `name=`, `version=` (the plugin crate's `CARGO_PKG_VERSION`) and
//!     `description=`;
//!   - `provides=declared` when the plugin declares what it provides, then
//!     one `exchange=`, `parser=`, `command=` or `gate=` record per name.
//!     Without it, what the plugin provides is known only once its `init`
//!     ran.
//!
//! A reader ignores keys it does not know (a newer format 1 may add some)
//! and NUL bytes after the last record (padding). A missing `format`,
//! `api`, `name` or `version`, a bad magic, a record without `=` or a
//! format other than 1 makes the section malformed.

/// The name of the ELF section that holds the manifest.
pub const SECTION: &str = ".nova_agent_manifest";

/// The layout version this crate writes and reads.
pub const FORMAT: &str = "1";

/// The bytes the section starts with.
pub const MAGIC: &[u8] = b"NOVA-AGENT-MANIFEST\0";

/// This crate's version, which `api=` records.
#[doc(hidden)]
pub const API: &str = env!("CARGO_PKG_VERSION");

/// The names of what a plugin declares it provides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declared {
    pub exchanges: Vec<String>,
    pub parsers: Vec<String>,
    pub commands: Vec<String>,
    pub gates: Vec<String>,
}

/// A plugin's manifest, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileManifest {
    /// The version of this crate the plugin was built against.
    pub api: String,
    pub name: String,
    pub version: String,
    pub description: String,
    /// `None`: the plugin did not declare what it provides.
    pub provides: Option<Declared>,
}

/// Reads a manifest section's content. The error is a one-line reason.
pub fn parse(section: &[u8]) -> Result<FileManifest, String> {
    let body = section
        .strip_prefix(MAGIC)
        .ok_or("it does not start with the manifest magic")?;
    if !body.is_empty() && body.last() != Some(&0) {
        return Err("its last record is not terminated by a NUL".to_owned());
    }
    let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut format = None;
    let mut api = None;
    let mut name = None;
    let mut version = None;
    let mut description = None;
    let mut provides: Option<Declared> = None;
    for (index, record) in body[..end].split(|&b| b == 0).enumerate() {
        let record = std::str::from_utf8(record)
            .map_err(|_| format!("record {} is not UTF-8", index + 1))?;
        let (key, value) = record
            .split_once('=')
            .ok_or_else(|| format!("record {} has no '='", index + 1))?;
        let scalar = match key {
            "format" => &mut format,
            "api" => &mut api,
            "name" => &mut name,
            "version" => &mut version,
            "description" => &mut description,
            "provides" if value == "declared" => {
                if provides.replace(Declared::default()).is_some() {
                    return Err("it says provides=declared twice".to_owned());
                }
                continue;
            }
            "provides" => return Err(format!("provides={value} is not understood")),
            "exchange" | "parser" | "command" | "gate" => {
                let declared = provides
                    .as_mut()
                    .ok_or_else(|| format!("a {key}= record comes before provides=declared"))?;
                let names = match key {
                    "exchange" => &mut declared.exchanges,
                    "parser" => &mut declared.parsers,
                    "command" => &mut declared.commands,
                    _ => &mut declared.gates,
                };
                if names.iter().any(|n| n == value) {
                    return Err(format!("{key} {value} is declared twice"));
                }
                names.push(value.to_owned());
                continue;
            }
            _ => continue,
        };
        if scalar.replace(value).is_some() {
            return Err(format!("it has two {key}= records"));
        }
    }
    let format = format.ok_or("it has no format= record")?;
    if format != FORMAT {
        return Err(format!(
            "its format {format} is not supported (this reader knows format {FORMAT})"
        ));
    }
    let required = |value: Option<&str>, key: &str| {
        value
            .map(str::to_owned)
            .ok_or_else(|| format!("it has no {key}= record"))
    };
    Ok(FileManifest {
        api: required(api, "api")?,
        name: required(name, "name")?,
        version: required(version, "version")?,
        description: description.unwrap_or_default().to_owned(),
        provides,
    })
}

/// The section's length for `records` (`(key, value)` pairs, in order).
#[doc(hidden)]
pub const fn encoded_len(records: &[(&str, &str)]) -> usize {
    let mut len = MAGIC.len();
    let mut i = 0;
    while i < records.len() {
        len += records[i].0.len() + 1 + records[i].1.len() + 1;
        i += 1;
    }
    len
}

/// The section's content for `records`; `N` must be
/// [`encoded_len`]`(records)`. Panics (a compile error, in a static) on a
/// NUL in a key or value, or on a key that is empty or holds `=`.
#[doc(hidden)]
pub const fn encode<const N: usize>(records: &[(&str, &str)]) -> [u8; N] {
    assert!(
        N == encoded_len(records),
        "the manifest's length is not encoded_len(records)"
    );
    let mut out = [0u8; N];
    let mut at = put(&mut out, 0, MAGIC);
    let mut i = 0;
    while i < records.len() {
        let (key, value) = (records[i].0.as_bytes(), records[i].1.as_bytes());
        assert!(
            !key.is_empty() && !contains(key, b'=') && !contains(key, 0),
            "a plugin manifest key is empty or holds '=' or a NUL"
        );
        assert!(
            !contains(value, 0),
            "a plugin manifest value (name, description, provided name) holds a NUL byte"
        );
        at = put(&mut out, at, key);
        at = put(&mut out, at, b"=");
        at = put(&mut out, at, value);
        at += 1; // the NUL `out` already holds
        i += 1;
    }
    out
}

const fn put<const N: usize>(out: &mut [u8; N], mut at: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        out[at] = bytes[i];
        at += 1;
        i += 1;
    }
    at
}

const fn contains(bytes: &[u8], byte: u8) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == byte {
            return true;
        }
        i += 1;
    }
    false
}

/// Writes a manifest section by hand, with any values: `export_plugin!`
/// uses it, and a test fixture can make a file whose manifest disagrees
/// with its code. With lists, or a `provides: { ... }` block like
/// `export_plugin!`'s, it says `provides=declared`.
///
/// ```text
/// nova_agent_plugin_api::__manifest_section! {
///     api: "0.2.2", name: "x", version: "1", description: "d", commands: ["a"]
/// }
/// ```
///
/// A NUL in a value does not compile:
///
/// ```compile_fail
/// nova_agent_plugin_api::__manifest_section! {
///     api: "0.2.2", name: "x\0y", version: "1", description: "d"
/// }
/// # fn main() {}
/// ```
///
/// It defines `pub static __NOVA_AGENT_MANIFEST` (`#[used]`), one per library.
/// A release build with LTO drops it unless live code refers to it, as
/// `export_plugin!`'s root module does.
#[doc(hidden)]
#[macro_export]
macro_rules! __manifest_section {
    (
        api: $api:expr,
        name: $name:expr,
        version: $version:expr,
        description: $description:expr $(,)?
    ) => {
        $crate::__manifest_section!(@static [
            ("format", $crate::manifest::FORMAT),
            ("api", $api),
            ("name", $name),
            ("version", $version),
            ("description", $description),
        ]);
    };
    (
        api: $api:expr,
        name: $name:expr,
        version: $version:expr,
        description: $description:expr,
        provides: {
            $(exchanges: [$($exchange:expr),* $(,)?] $(,)?)?
            $(parsers: [$($parser:expr),* $(,)?] $(,)?)?
            $(commands: [$($command:expr),* $(,)?] $(,)?)?
            $(gates: [$($gate:expr),* $(,)?] $(,)?)?
        } $(,)?
    ) => {
        $crate::__manifest_section!(@static [
            ("format", $crate::manifest::FORMAT),
            ("api", $api),
            ("name", $name),
            ("version", $version),
            ("description", $description),
            ("provides", "declared"),
            $($(("exchange", $exchange),)*)?
            $($(("parser", $parser),)*)?
            $($(("command", $command),)*)?
            $($(("gate", $gate),)*)?
        ]);
    };
    (
        api: $api:expr,
        name: $name:expr,
        version: $version:expr,
        description: $description:expr,
        $($lists:tt)+
    ) => {
        $crate::__manifest_section! {
            api: $api,
            name: $name,
            version: $version,
            description: $description,
            provides: { $($lists)+ }
        }
    };
    (@static [$($record:expr,)*]) => {
        #[doc(hidden)]
        const __NOVA_AGENT_MANIFEST_RECORDS: &[(&str, &str)] = &[$($record,)*];
        #[doc(hidden)]
        #[used]
        #[link_section = ".nova_agent_manifest"]
        pub static __NOVA_AGENT_MANIFEST: [u8; $crate::manifest::encoded_len(
            __NOVA_AGENT_MANIFEST_RECORDS,
        )] = $crate::manifest::encode(__NOVA_AGENT_MANIFEST_RECORDS);
    };
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
