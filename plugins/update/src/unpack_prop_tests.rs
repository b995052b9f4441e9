//! Property tests (the fuzz targets of the package unpacker): arbitrary
//! bytes, tarballs of arbitrary members (any type, names built from the
//! parts that matter: the top directory, `bin`, `plugins`, `..`, `/`), and
//! good tarballs with bytes flipped, cut short or gzip'd wrongly. Unpacking
//! never panics, writes nothing outside its staging directory, writes there
//! only what the `Package` it returns names, and fails with a one-line
//! message. A fixed number of cases from a fixed seed; `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` override either for a longer run.

use std::path::{Path, PathBuf};

use nova_agent_support::testing::proptest_config as config;
use proptest::prelude::*;

use crate::testutil::{good_package, gzip, tar, Member};
use crate::unpack::unpack;

/// Where the staging directory sits inside the test's temporary directory,
/// so that an escape would land beside it.
const DEST: &str = "a/b/unpacked";

/// Every path under `dir`, relative, directories included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// Unpacks `bytes` and checks what it left behind.
/// Whether the package was accepted.
fn unpack_checked(bytes: &[u8], cap: u64) -> Result<bool, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("package.tar.gz");
    std::fs::write(&archive, bytes).unwrap();
    let dest = dir.path().join(DEST);
    std::fs::create_dir_all(&dest).unwrap();
    let result = unpack(&archive, &dest, cap);

    for path in tree(dir.path()) {
        let allowed = ["package.tar.gz", "a", "a/b", DEST]
            .iter()
            .any(|p| path == Path::new(p))
            || path.starts_with(DEST);
        prop_assert!(
            allowed,
            "{} written outside the staging directory",
            path.display()
        );
    }
    let mut written: Vec<PathBuf> = tree(&dest).into_iter().map(|p| dest.join(p)).collect();
    match &result {
        Ok(package) => {
            let mut expected = vec![dest.join("plugins"), package.binary.clone()];
            expected.extend(package.plugins.values().cloned());
            expected.sort();
            written.sort();
            prop_assert_eq!(&written, &expected);
            prop_assert_eq!(&package.binary, &dest.join("nova-agent"));
            for (name, path) in &package.plugins {
                prop_assert_eq!(path, &dest.join("plugins").join(name));
                prop_assert!(name.ends_with(".so") && !name.contains('/'), "{name:?}");
            }
            prop_assert!(!package.version.is_empty());
        }
        Err(message) => {
            prop_assert!(!message.is_empty());
            prop_assert!(
                message.starts_with(|c: char| c.is_ascii_lowercase()),
                "{message:?}"
            );
            prop_assert!(!message.contains(['\n', '\r']), "{message:?}");
            // A refused package leaves files in the staging directory, which
            // the caller removes: they are still only its own names.
            for path in &written {
                let name = path.strip_prefix(&dest).unwrap();
                let own = name == Path::new("nova-agent")
                    || name == Path::new("plugins")
                    || name.parent() == Some(Path::new("plugins"));
                prop_assert!(own, "{} written", name.display());
            }
        }
    }
    Ok(result.is_ok())
}

/// A member name from the parts that matter to the unpacker (at most 100
/// bytes: an old-style tar header holds no more).
fn member_name() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        4 => prop::sample::select(vec![
            "nova-agent-1.0", "nova-agent-2.0", "nova-agent-", "bin", "nova-agent", "plugins",
            "x.so", "y.so", ".so", ".hidden.so", "VERSION", "..", ".", "", "etc", "evil",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~\n\t]{1,6}",
    ];
    (
        any::<bool>(),
        prop::collection::vec(part, 1..5),
        any::<bool>(),
    )
        .prop_map(|(absolute, parts, slash)| {
            let mut name = parts.join("/");
            if absolute {
                name.insert(0, '/');
            }
            if slash {
                name.push('/');
            }
            name.truncate(100);
            name
        })
}

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Kind::File),
        3 => Just(Kind::Dir),
        1 => Just(Kind::Symlink),
        1 => Just(Kind::HardLink),
        1 => Just(Kind::Char),
        1 => Just(Kind::Block),
        1 => Just(Kind::Fifo),
    ]
}

fn tar_of(members: &[(String, Kind)]) -> Vec<u8> {
    let members: Vec<Member<'_>> = members
        .iter()
        .map(|(name, kind)| match kind {
            Kind::File(data) => Member::File(name, data),
            Kind::Dir => Member::Dir(name),
            Kind::Symlink => Member::Symlink(name, "/etc/shadow"),
            Kind::HardLink => Member::HardLink(name, "/etc/shadow"),
            Kind::Char => Member::Char(name),
            Kind::Block => Member::Block(name),
            Kind::Fifo => Member::Fifo(name),
        })
        .collect();
    tar(&members)
}

/// A good package's tar, as the base of mutations.
fn good_tar() -> Vec<u8> {
    let binary = b"binary".to_vec();
    tar_of(&[
        ("nova-agent-2.1.0/".to_owned(), Kind::Dir),
        (
            "nova-agent-2.1.0/bin/nova-agent".to_owned(),
            Kind::File(binary),
        ),
        (
            "nova-agent-2.1.0/plugins/x.so".to_owned(),
            Kind::File(b"x".to_vec()),
        ),
        (
            "nova-agent-2.1.0/VERSION".to_owned(),
            Kind::File(b"2.1.0\n".to_vec()),
        ),
    ])
}

/// `bytes` with `flips` (position modulo its length, new byte) applied,
/// then cut to `keep` (a fraction in 1/1000ths, 1000 or more: whole).
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)], keep: u16) -> Vec<u8> {
    if !bytes.is_empty() {
        let len = bytes.len();
        for (at, byte) in flips {
            bytes[at % len] = *byte;
        }
    }
    if keep < 1000 {
        bytes.truncate(bytes.len() * usize::from(keep) / 1000);
    }
    bytes
}

fn cap() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(1024 * 1024), 1 => 0u64..8192]
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512), gzipped: bool) {
        let bytes = if gzipped { gzip(&bytes) } else { bytes };
        prop_assert!(!unpack_checked(&bytes, 1024 * 1024)?);
    }

    #[test]
    fn arbitrary_members_never_escape(
        members in prop::collection::vec((member_name(), kind()), 0..8),
        cap in cap(),
    ) {
        unpack_checked(&gzip(&tar_of(&members)), cap)?;
    }

    #[test]
    fn mutated_tarballs_never_escape(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        keep in 0u16..1500,
        cap in cap(),
    ) {
        unpack_checked(&gzip(&mutate(good_tar(), &flips, keep)), cap)?;
    }

    #[test]
    fn mutated_gzip_streams_never_escape(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        keep in 0u16..1500,
    ) {
        unpack_checked(&mutate(good_package(), &flips, keep), 1024 * 1024)?;
    }
}
