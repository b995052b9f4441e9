//! The `unix-listen` socket, made by `nova_agent_support::socket` as the
//! `unix-socket` exchange makes its own: never reachable with a mode wider
//! than 0600, replacing a stale socket but nothing else, its directory
//! created when missing, and removed at the end only if it is still ours.

pub(crate) use nova_agent_support::socket::{open as listen_at, remove_if_ours};

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    #[test]
    fn listens_with_mode_0600_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let listening = listen_at(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(listening.id, (meta.dev(), meta.ino()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["qga.sock"]);
        UnixStream::connect(&path).unwrap();
        remove_if_ours(&path, listening.id);
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_or_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        drop(UnixListener::bind(&path).unwrap());
        let listening = listen_at(&path).unwrap();
        let in_use = listen_at(&path).err().unwrap();
        assert!(in_use.contains("is in use by another process"), "{in_use}");
        drop(listening);
        let file = dir.path().join("file");
        fs::write(&file, "keep").unwrap();
        assert_eq!(
            listen_at(&file).err().unwrap(),
            format!(
                "{} exists and is not a socket; refusing to replace it",
                file.display()
            )
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
    }

    #[test]
    fn a_replaced_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let listening = listen_at(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, "someone else's").unwrap();
        remove_if_ours(&path, listening.id);
        assert!(path.exists());
    }
}
