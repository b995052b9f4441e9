//! The node tree: absolute path -> value and children (in insertion order).

use std::collections::HashMap;

/// Domain 0's home: relative paths resolve under it.
pub const HOME: &str = "/local/domain/0";
/// XENSTORE_ABS_PATH_MAX.
const ABS_PATH_MAX: usize = 3072;

pub type Errno = &'static str;

#[derive(Default)]
struct Node {
    value: Vec<u8>,
    children: Vec<String>,
    /// Changes whenever `children` does: DIRECTORY_PART's generation.
    generation: u64,
}

pub struct Store {
    nodes: HashMap<String, Node>,
    generations: u64,
}

impl Store {
    pub fn new() -> Store {
        let mut store = Store {
            nodes: HashMap::from([("/".to_owned(), Node::default())]),
            generations: 0,
        };
        store.write(&format!("{HOME}/name"), b"Domain-0");
        store
    }

    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    pub fn read(&self, path: &str) -> Option<&[u8]> {
        self.nodes.get(path).map(|n| n.value.as_slice())
    }

    pub fn children(&self, path: &str) -> Option<&[String]> {
        self.nodes.get(path).map(|n| n.children.as_slice())
    }

    pub fn generation(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(|n| n.generation)
    }

    /// Sets the value, creating the node and its missing parents (empty).
    pub fn write(&mut self, path: &str, value: &[u8]) {
        self.create(path);
        self.nodes.get_mut(path).expect("just created").value = value.to_vec();
    }

    /// Creates the node (empty) and its missing parents; false if it existed.
    pub fn create(&mut self, path: &str) -> bool {
        if self.exists(path) {
            return false;
        }
        let (parent, name) = split(path);
        self.create(parent);
        self.generations += 1;
        let parent = self.nodes.get_mut(parent).expect("just created");
        parent.children.push(name.to_owned());
        parent.generation = self.generations;
        self.nodes.insert(path.to_owned(), Node::default());
        true
    }

    /// Removes the node and its subtree; false if it did not exist.
    pub fn remove(&mut self, path: &str) -> bool {
        let Some(node) = self.nodes.remove(path) else {
            return false;
        };
        for child in node.children {
            self.remove(&join(path, &child));
        }
        if path != "/" {
            let (parent, name) = split(path);
            self.generations += 1;
            if let Some(parent) = self.nodes.get_mut(parent) {
                parent.children.retain(|c| c != name);
                parent.generation = self.generations;
            }
        }
        true
    }
}

/// `(parent, last component)` of an absolute path other than `/`.
pub fn split(path: &str) -> (&str, &str) {
    let slash = path.rfind('/').expect("absolute path");
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    (parent, &path[slash + 1..])
}

pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The absolute form of a client's path (relative ones resolve under HOME),
/// or EINVAL for what the C xenstored rejects: characters outside
/// `A-Za-z0-9-/_@`, `//`, a trailing `/` (except the root), `@` names
/// (special watch paths are only valid in WATCH/UNWATCH), over-long paths.
pub fn canonical(path: &str) -> Result<String, Errno> {
    let abs = if path.starts_with('/') {
        path.to_owned()
    } else if path.starts_with('@') {
        return Err("EINVAL");
    } else {
        format!("{HOME}/{path}")
    };
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "-/_@".contains(c);
    if !abs.chars().all(valid_char)
        || abs.contains("//")
        || (abs.ends_with('/') && abs != "/")
        || abs.len() > ABS_PATH_MAX
    {
        return Err("EINVAL");
    }
    Ok(abs)
}

/// Whether `node` is `ancestor` or lies below it.
pub fn is_under(node: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || node == ancestor
        || (node.starts_with(ancestor) && node.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        assert_eq!(canonical("data/x").unwrap(), "/local/domain/0/data/x");
        assert_eq!(canonical("/").unwrap(), "/");
        assert_eq!(canonical("/a-b_c@1").unwrap(), "/a-b_c@1");
        for bad in ["", "/a/", "a//b", "/a b", "/a.b", "@introduceDomain", "/é"] {
            assert_eq!(canonical(bad), Err("EINVAL"), "{bad:?}");
        }
    }

    #[test]
    fn is_under_respects_component_boundaries() {
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(is_under("/a", "/"));
        assert!(!is_under("/ab", "/a"));
        assert!(!is_under("/a", "/a/b"));
    }

    #[test]
    fn write_creates_parents_and_remove_takes_the_subtree() {
        let mut store = Store::new();
        store.write("/a/b/c", b"v");
        assert_eq!(store.read("/a/b"), Some(&b""[..]));
        store.write("/a/d", b"");
        assert_eq!(store.children("/a").unwrap(), ["b", "d"]);
        assert!(store.remove("/a/b"));
        assert!(!store.exists("/a/b/c"));
        assert_eq!(store.children("/a").unwrap(), ["d"]);
        assert!(!store.remove("/a/b"));
        assert_eq!(store.read("/local/domain/0/name"), Some(&b"Domain-0"[..]));
    }
}
