//! A path from the host: the lexical checks, then its resolution under the
//! root, following symbolic links only while they stay under it (see the
//! crate documentation).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use nova_agent_support::files::under_root;

/// The most symbolic links followed for one path, as Linux's MAXSYMLINKS.
pub(crate) const MAX_LINKS: usize = 40;

/// A path that passed the lexical checks: absolute, normalised, naming a file.
#[derive(Debug)]
pub(crate) struct GuestPath {
    /// `/etc/x`, normalised.
    pub(crate) text: String,
    pub(crate) components: Vec<String>,
}

/// Where a path leads under the root, every symbolic link on the way followed.
#[derive(Debug)]
pub(crate) struct Target {
    /// The path asked for, normalised.
    pub(crate) asked: String,
    /// Where it leads, as the guest sees it (`asked` when no link was met).
    pub(crate) guest: String,
    /// `guest`'s components; each existing one a real directory (the last
    /// one a regular file or missing).
    pub(crate) components: Vec<OsString>,
    /// `guest` under the root: the file to write.
    pub(crate) host: PathBuf,
}

/// The checks that need no filesystem: the path is absolute, has no `..`
/// component and names a file; `.` components and repeated slashes are
/// normalised away.
pub(crate) fn check(raw: &str) -> Result<GuestPath, String> {
    let refuse = |why: &str| Err(format!("Refusing path {raw}: {why}"));
    if raw.is_empty() {
        return Err("Refusing the path: it is empty".to_owned());
    }
    if raw.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if !raw.starts_with('/') {
        return refuse("it is not absolute");
    }
    if raw.split('/').any(|c| c == "..") {
        return refuse("it contains a .. component");
    }
    if matches!(raw.rsplit('/').next(), Some("" | ".")) {
        return refuse("it names a directory, not a file");
    }
    // The lexical normalisation every plugin shares; relative to an empty
    // root it gives the path's components.
    let relative = under_root(Path::new(""), raw).map_err(|e| format!("Refusing the path: {e}"))?;
    let components: Vec<String> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => name.to_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    Ok(GuestPath {
        text: format!("/{}", components.join("/")),
        components,
    })
}

/// Resolves `guest` under `root` component by component, following each
/// symbolic link only while it stays under `root` (an absolute target must
/// lie under `root`, a relative one may not climb above it; otherwise the
/// path is refused), and checks what it leads to: no
/// component on the way but a directory (or a missing one), a last component
/// that is a regular file or missing. Reads the filesystem, changes nothing.
pub(crate) fn resolve(root: &Path, guest: &GuestPath) -> Result<Target, String> {
    let refuse = |why: String| format!("Refusing path {}: {why}", guest.text);
    let mut pending: VecDeque<OsString> = guest.components.iter().map(OsString::from).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // Only from a link's target (the path itself has no `..`).
            if resolved.pop().is_none() {
                return Err(refuse(format!(
                    "a symbolic link on the way leads above {}",
                    root.display()
                )));
            }
            continue;
        }
        let host = host_path(root, &resolved).join(&name);
        match fs::symlink_metadata(&host) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(refuse("too many levels of symbolic links".to_owned()));
                }
                let link = fs::read_link(&host).map_err(|e| {
                    let at = guest_text(resolved.iter().chain([&name]));
                    format!("Could not read the symbolic link {at}: {e}")
                })?;
                let link = if link.has_root() {
                    // An absolute target is a path on this machine: followed
                    // only where it stays under the root.
                    match link.strip_prefix(root) {
                        Ok(inside) => {
                            resolved.clear();
                            inside.to_path_buf()
                        }
                        Err(_) => {
                            let at = guest_text(resolved.iter().chain([&name]));
                            return Err(refuse(format!(
                                "the symbolic link {at} leads outside the root, to {}",
                                link.display()
                            )));
                        }
                    }
                } else {
                    link
                };
                for component in link.components().rev() {
                    match component {
                        Component::Normal(part) => pending.push_front(part.to_owned()),
                        Component::ParentDir => pending.push_front(OsString::from("..")),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
            }
            Ok(metadata) if metadata.is_dir() || pending.is_empty() => resolved.push(name),
            Ok(_) => {
                let at = guest_text(resolved.iter().chain([&name]));
                return Err(refuse(format!("{at} is not a directory")));
            }
            // Created later; whatever follows is missing too, unless a `..`
            // from a link's target climbs back out of it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(name),
            Err(e) => {
                let at = guest_text(resolved.iter().chain([&name]));
                return Err(format!("Could not look up {at}: {e}"));
            }
        }
    }

    let target = Target {
        asked: guest.text.clone(),
        guest: guest_text(&resolved),
        host: host_path(root, &resolved),
        components: resolved,
    };
    let leads = |what: &str| {
        if target.guest == target.asked {
            refuse(format!("it is {what}"))
        } else {
            refuse(format!("it leads to {}, {what}", target.guest))
        }
    };
    if target.components.is_empty() {
        return Err(leads("a directory"));
    }
    match fs::symlink_metadata(&target.host) {
        Ok(metadata) if metadata.is_file() => Ok(target),
        Ok(metadata) if metadata.is_dir() => Err(leads("a directory")),
        Ok(_) => Err(leads("not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(target),
        Err(e) => Err(format!("Could not look up {}: {e}", target.guest)),
    }
}

/// `root` joined with `components`.
pub(crate) fn host_path<'a>(
    root: &Path,
    components: impl IntoIterator<Item = &'a OsString>,
) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(components);
    path
}

/// `/a/b` for the components `a`, `b`; `/` for none.
pub(crate) fn guest_text<'a>(components: impl IntoIterator<Item = &'a OsString>) -> String {
    let mut text = String::new();
    for component in components {
        text.push('/');
        text.push_str(&OsStr::new(component).to_string_lossy());
    }
    if text.is_empty() {
        text.push('/');
    }
    text
}
