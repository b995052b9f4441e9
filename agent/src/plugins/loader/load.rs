//! Opening one plugin file: `dlopen` with `RTLD_NOW | RTLD_LOCAL`, then
//! abi_stable's header and layout checks, then the manifest.
//!
//! The library is opened by `/proc/self/fd/N` of a descriptor the caller
//! holds (the checked file, or a private copy made from it), so what is
//! mapped is what was checked, whatever a path leads to by then. Never
//! `RootModule::load_from_file`: it caches one module per type in a static,
//! so a second plugin would come back as the first. Libraries are never
//! closed: their code may still be running (hot swap) and abi_stable hands
//! out `'static` references into them.

use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library as Dl, RTLD_LOCAL, RTLD_NOW};

use super::footprint;
use nova_agent_plugin_api::ffi::abi_stable::library::{
    AbiHeaderRef, LibraryError, ROOT_MODULE_LOADER_NAME_WITH_NUL,
};
use nova_agent_plugin_api::ffi::PluginRootRef;
use nova_agent_plugin_api::manifest::Declared;

/// What a plugin says about itself, read before `init`: from its manifest
/// section without running it, or from its root module once opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    /// What it provides, as its manifest section declares; `None`: known
    /// only once its `init` ran (a plugin built before plugin-api 0.2.2, or
    /// one that declares nothing).
    pub(crate) declared: Option<Declared>,
}

/// Why a file could not be loaded: a one-line reason, and abi_stable's full
/// report where it gave one (for the debug log).
#[derive(Debug)]
pub(crate) struct LoadError {
    pub(crate) reason: String,
    pub(crate) detail: Option<String>,
}

impl LoadError {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        LoadError {
            reason: reason.into(),
            detail: None,
        }
    }
}

/// A library opened: its root module, manifest, the bytes it maps, and the
/// descriptor it was opened by (kept open for good, see [`open`]).
pub(crate) struct Library {
    pub(crate) root: PluginRootRef,
    pub(crate) manifest: Manifest,
    pub(crate) mapped: u64,
    pub(crate) descriptor: RawFd,
}

/// Opens the library `file` holds, and returns its root module, manifest,
/// the bytes it maps and its descriptor. `name` is the plugin's path, for
/// messages.
///
/// A descriptor whose library was mapped stays open for good: glibc knows
/// the library by the name `/proc/self/fd/N`, and would hand it back for a
/// later file opened under the same number.
pub(crate) fn open(file: File, name: &Path) -> Result<Library, LoadError> {
    let by_fd = fd_path(&file);
    // SAFETY: loading a library runs its initialisers; the caller has run the
    // trust check on this descriptor, which is all the safety there is for
    // native code.
    let library = unsafe { Dl::open(Some(&by_fd), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        // dlopen's messages name the file it opened: name the plugin's.
        let reason = error_chain(&e).replace(&*by_fd.to_string_lossy(), &name.to_string_lossy());
        LoadError::new(format!("cannot load: {reason}"))
    })?;
    let mapped = footprint::mapped_bytes(&file);
    let descriptor = file.into_raw_fd();
    // Never closed, see the module doc.
    let library: &'static Dl = Box::leak(Box::new(library));

    // SAFETY: abi_stable exports this symbol as a static whose address reads
    // as an `AbiHeaderRef`, exactly as `abi_header_from_raw_library` reads it.
    let header: AbiHeaderRef =
        match unsafe { library.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) } {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(LoadError::new(
                    "not a nova-agent plugin: it exports no abi_stable root module",
                ))
            }
        };
    let root = header
        .upgrade()
        .and_then(|header| header.init_root_module::<PluginRootRef>())
        .map_err(explain)?;
    let manifest = Manifest {
        name: root.name().to_string(),
        version: root.version().to_string(),
        description: root.description().to_string(),
        declared: None,
    };
    if !valid_name(&manifest.name) {
        return Err(LoadError::new(format!(
            "invalid plugin name {:?} in its manifest",
            manifest.name
        )));
    }
    Ok(Library {
        root,
        manifest,
        mapped,
        descriptor,
    })
}

/// Whether a plugin whose manifest section says it was built against
/// plugin-api `api` can be loaded: the rule abi_stable applies to the root
/// module (same major; for 0.x, same minor), applied before any loading.
pub(crate) fn check_api(api: &str) -> Result<(), String> {
    use nova_agent_plugin_api::ffi::abi_stable::library::RootModule;
    let ours = PluginRootRef::VERSION_STRINGS.version.as_str();
    let major_minor = |v: &str| {
        let mut parts = v.split('.').map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
            _ => None,
        }
    };
    let (Some(expected), Some(found)) = (major_minor(ours), major_minor(api)) else {
        return Err(format!(
            "its manifest section names plugin-api version {api:?}, which is not a version"
        ));
    };
    let compatible = expected.0 == found.0 && (expected.0 != 0 || expected.1 == found.1);
    if compatible {
        return Ok(());
    }
    Err(format!(
        "plugin-api {major}.{minor} expected, plugin built against {}.{}; \
         rebuild it against nova-agent-plugin-api {major}.{minor}",
        found.0,
        found.1,
        major = expected.0,
        minor = expected.1,
    ))
}

/// The name by which this process reaches what `file` holds.
pub(crate) fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// A name the agent accepts for a plugin or for what it provides: not empty,
/// no whitespace or control characters.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The whole chain of an error, outer to inner, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// abi_stable's multi-line reports, reduced to one line each.
fn explain(error: LibraryError) -> LoadError {
    let detail = Some(error.to_string());
    let reason = match &error {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "plugin-api {major}.{minor} expected, plugin built against {}.{}; \
             rebuild it against nova-agent-plugin-api {major}.{minor}",
            actual_version.major,
            actual_version.minor,
            major = expected_version.major,
            minor = expected_version.minor,
        ),
        LibraryError::InvalidAbiHeader(found) => format!(
            "built with an incompatible abi_stable (ABI {}.{})",
            found.abi_major, found.abi_minor
        ),
        LibraryError::AbiInstability(report) => {
            format!(
                "incompatible plugin ABI: {}",
                first_mismatch(&report.to_string())
            )
        }
        LibraryError::RootModule { err, .. } => format!("its root module failed: {err}"),
        other => other
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    LoadError { reason, detail }
}

/// The first mismatch in abi_stable's layout report, on one line:
/// `mismatched package in type PluginRoot (expected a, found b)`.
fn first_mismatch(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let after = |from: usize, label: &str| {
        lines[from..]
            .iter()
            .position(|l| *l == label)
            .and_then(|i| lines.get(from + i + 1))
            .map(|l| l.to_string())
    };
    let Some(at) = lines.iter().position(|l| l.starts_with("Error:")) else {
        return "layout mismatch".to_owned();
    };
    let mut reason = lines[at].trim_start_matches("Error:").trim().to_owned();
    let inside = lines.iter().position(|l| l.ends_with("error(s)inside:"));
    let ty = inside.and_then(|i| lines[i..at].iter().find_map(|l| l.strip_prefix("type:")));
    if let Some(ty) = ty {
        reason = format!("{reason} in type {ty}");
    }
    if let (Some(expected), Some(found)) = (after(at, "Expected:"), after(at, "Found:")) {
        reason = format!("{reason} (expected {expected}, found {found})");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_file_that_is_not_a_library_gets_a_one_line_reason_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libjunk.so");
        std::fs::write(&path, b"this is not an ELF file").unwrap();
        let Err(e) = open(File::open(&path).unwrap(), &path) else {
            panic!("junk loaded")
        };
        assert!(e.reason.starts_with("cannot load: "), "{}", e.reason);
        assert!(!e.reason.contains('\n'), "{}", e.reason);
        assert!(e.reason.contains(&*path.to_string_lossy()), "{}", e.reason);
        assert!(!e.reason.contains("/proc/self/fd/"), "{}", e.reason);
    }

    /// A real shared library whose second copy is harmless in this
    /// process, so `dlopen` succeeds: the math library.
    fn some_library() -> Option<PathBuf> {
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        let mapped = maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .find(|name| name.contains("/libm.so"))
            .map(PathBuf::from);
        let known = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib64/libm.so.6",
            "/usr/lib/libm.so.6",
        ];
        mapped.or_else(|| known.iter().map(PathBuf::from).find(|p| p.exists()))
    }

    #[test]
    fn what_is_loaded_is_what_the_descriptor_holds_not_what_the_path_now_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liba.so");
        let Some(library) = some_library() else {
            eprintln!("skipped: no libm.so.6 found");
            return;
        };
        fs::copy(library, &path).unwrap();
        let checked = File::open(&path).unwrap();
        let ino = checked.metadata().unwrap().ino();
        // Another user's file renamed over the name after the check.
        let hostile = dir.path().join("hostile");
        fs::write(&hostile, b"not even a library").unwrap();
        fs::rename(&hostile, &path).unwrap();
        let Err(e) = open(checked, &path) else {
            panic!("libm has no root module")
        };
        // dlopen mapped the checked library, which exports no root module,
        // rather than failing on the junk the path names now.
        assert_eq!(
            e.reason,
            "not a nova-agent plugin: it exports no abi_stable root module"
        );
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.lines()
                .any(|l| l.split_whitespace().nth(4) == Some(&*ino.to_string())),
            "the checked inode {ino} is not mapped"
        );
    }

    #[test]
    fn layout_reports_reduce_to_their_first_mismatch() {
        let report = "Compared <this>:\n    type:PrefixRef\n\n1 error(s)inside:\n    <other>\n\n    \
            field_name:0\n    type:PluginRoot\n    size:24 align:8\n\nLayout of expected type:\n    \
            type:PluginRoot\n\nError:mismatched package\nExpected:\n    nova-agent-plugin-api\n\
            Found:\n    other-crate\n";
        assert_eq!(
            first_mismatch(report),
            "mismatched package in type PluginRoot (expected nova-agent-plugin-api, found other-crate)"
        );
        assert_eq!(first_mismatch("no marker here"), "layout mismatch");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("core"));
        assert!(valid_name("guest-ping"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name("tab\there"));
        assert!(!valid_name("bell\u{7}"));
    }

    #[test]
    fn a_manifest_sections_api_version_is_checked_as_abi_stable_would() {
        check_api("0.2.0").unwrap();
        check_api("0.2.9").unwrap();
        assert_eq!(
            check_api("0.3.0").unwrap_err(),
            "plugin-api 0.2 expected, plugin built against 0.3; \
             rebuild it against nova-agent-plugin-api 0.2"
        );
        assert!(check_api("1.2.0").is_err());
        assert!(check_api("two").unwrap_err().contains("not a version"));
    }

    #[test]
    fn a_version_mismatch_says_to_rebuild() {
        use nova_agent_plugin_api::ffi::abi_stable::sabi_types::VersionNumber;
        let error = LibraryError::IncompatibleVersionNumber {
            library_name: "nova-agent plugin",
            expected_version: VersionNumber {
                major: 0,
                minor: 2,
                patch: 0,
            },
            actual_version: VersionNumber {
                major: 0,
                minor: 1,
                patch: 3,
            },
        };
        assert_eq!(
            explain(error).reason,
            "plugin-api 0.2 expected, plugin built against 0.1; \
             rebuild it against nova-agent-plugin-api 0.2"
        );
    }
}
