//! Which files in the plugin directories are candidates.

use std::path::{Path, PathBuf};

/// Suffixes package managers leave while installing or upgrading. None of them
/// ends in `.so`, so the `.so` rule already skips them; they are listed so the
/// rule is explicit and survives a change of the suffix rule.
const PACKAGE_TEMPORARIES: [&str; 4] = [".dpkg-new", ".dpkg-tmp", ".rpmnew", ".rpmsave"];

/// A directory that could not be read.
#[derive(Debug)]
pub(crate) struct ScanProblem {
    pub(crate) dir: PathBuf,
    pub(crate) message: String,
}

/// Regular `*.so` files (a symlink counts by its target), in name order within
/// each directory, directories in the order given.
pub(crate) fn scan(dirs: &[PathBuf]) -> (Vec<PathBuf>, Vec<ScanProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        match scan_dir(dir) {
            Ok(mut found) => files.append(&mut found),
            Err(message) => problems.push(ScanProblem {
                dir: dir.clone(),
                message,
            }),
        }
    }
    (files, problems)
}

fn scan_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| is_candidate_name(&entry.file_name().to_string_lossy()))
        .map(|entry| entry.path())
        .filter(|path| path.metadata().is_ok_and(|m| m.is_file()))
        .collect();
    found.sort();
    Ok(found)
}

pub(crate) fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.')
        && name.ends_with(".so")
        && !PACKAGE_TEMPORARIES
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_regular_so_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libb.so",
            "liba.so",
            ".hidden.so",
            "libc.so.dpkg-new",
            "libd.so.rpmnew",
            "README",
            "libe.so.1",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.so")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("liba.so"), dir.path().join("link.so")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("dangling.so")).unwrap();

        let (files, problems) = scan(&[dir.path().to_path_buf()]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["liba.so", "libb.so", "link.so"]);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_missing_directory_is_a_problem_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("liba.so"), b"x").unwrap();
        let missing = dir.path().join("missing");
        let (files, problems) = scan(&[missing.clone(), dir.path().to_path_buf()]);
        assert_eq!(files.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].dir, missing);
    }
}
