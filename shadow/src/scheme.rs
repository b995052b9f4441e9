//! Which hash a new password gets: the scheme and parameters already on the
//! user's entry, or the system's default when the entry has none.

use std::path::Path;

use crate::crypt;

/// The new setting for a password whose old hash field is `old`.
///
/// A `$y$` (yescrypt), `$6$`, `$5$`, `$2b$`/`$2a$`/`$2y$` or `$1$` hash
/// keeps its scheme and parameters (`$6$rounds=N$` keeps N, yescrypt its cost
/// field) with a fresh salt. A locked hash (`!$6$...`) keeps the scheme of the
/// hash behind the `!` (the new password unlocks the account, as `chpasswd`
/// does). Anything else (`!`, `*`, empty, DES) takes the system default.
pub(crate) fn setting_for(old: &str, root: &Path) -> Result<String, String> {
    let old = old.trim_start_matches('!');
    match parameters(old) {
        Some(Kept::Prefix(prefix)) => {
            let fresh = crypt::gensalt(scheme_id(&prefix), 0)?;
            Ok(format!("{prefix}{}", salt_of(&fresh)))
        }
        Some(Kept::Bcrypt { variant, cost }) => crypt::gensalt(&format!("${variant}$"), cost),
        None => {
            let (prefix, count) = system_default(root);
            crypt::gensalt(prefix, count)
        }
    }
}

enum Kept {
    /// Everything before the salt, e.g. `$y$j9T$` or `$6$rounds=10000$`.
    Prefix(String),
    Bcrypt {
        variant: String,
        cost: u64,
    },
}

fn parameters(old: &str) -> Option<Kept> {
    let fields: Vec<&str> = old.split('$').collect();
    // "$id$..." splits into "", id, ...
    if fields.len() < 4 || !fields[0].is_empty() {
        return None;
    }
    let id = fields[1];
    match id {
        "y" if fields.len() == 5 && !fields[2].is_empty() => {
            Some(Kept::Prefix(format!("$y${}$", fields[2])))
        }
        "6" | "5" => match fields[2].strip_prefix("rounds=") {
            Some(rounds) if fields.len() == 5 && rounds.bytes().all(|b| b.is_ascii_digit()) => {
                Some(Kept::Prefix(format!("${id}$rounds={rounds}$")))
            }
            None if fields.len() == 4 => Some(Kept::Prefix(format!("${id}$"))),
            _ => None,
        },
        "1" if fields.len() == 4 => Some(Kept::Prefix("$1$".to_owned())),
        "2b" | "2a" | "2y" if fields.len() == 4 => {
            let cost = fields[2].parse().ok().filter(|c| (4..=31).contains(c))?;
            Some(Kept::Bcrypt {
                variant: id.to_owned(),
                cost,
            })
        }
        _ => None,
    }
}

/// `$y$` of `$y$j9T$`, `$6$` of `$6$rounds=N$`.
fn scheme_id(prefix: &str) -> &str {
    let end = prefix[1..].find('$').map_or(prefix.len(), |i| i + 2);
    &prefix[..end]
}

/// The salt of a fresh setting: its last `$`-separated field.
fn salt_of(setting: &str) -> &str {
    setting.rsplit('$').next().unwrap_or("")
}

/// `ENCRYPT_METHOD` of `<root>/etc/login.defs` (and its cost key), else
/// SHA-512. DES is never chosen: it keeps 8 characters of a password.
fn system_default(root: &Path) -> (&'static str, u64) {
    let defs = std::fs::read_to_string(root.join("etc/login.defs")).unwrap_or_default();
    let value = |key: &str| {
        defs.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(key)).then(|| words.next().unwrap_or("").to_owned())
            })
    };
    let cost = |key: &str| value(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    match value("ENCRYPT_METHOD")
        .map(|m| m.to_ascii_uppercase())
        .as_deref()
    {
        Some("YESCRYPT") => ("$y$", cost("YESCRYPT_COST_FACTOR")),
        Some("SHA256") => ("$5$", cost("SHA_CRYPT_MIN_ROUNDS")),
        Some("MD5") => ("$1$", 0),
        Some("BCRYPT") => ("$2b$", cost("BCRYPT_MIN_ROUNDS")),
        Some("SHA512") => ("$6$", cost("SHA_CRYPT_MIN_ROUNDS")),
        Some(other) => {
            tracing::warn!("login.defs ENCRYPT_METHOD {other:?} is not used; hashing with SHA-512");
            ("$6$", 0)
        }
        None => ("$6$", 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_login_defs(text: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(text) = text {
            std::fs::write(dir.path().join("etc/login.defs"), text).unwrap();
        }
        dir
    }

    #[test]
    fn an_existing_hash_keeps_its_scheme_and_parameters() {
        let root = root_with_login_defs(Some("ENCRYPT_METHOD MD5\n"));
        for (old, starts) in [
            (
                "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
                "$y$j9T$",
            ),
            ("$y$jDT$abc$def", "$y$jDT$"),
            ("$6$rounds=10000$salt$hash", "$6$rounds=10000$"),
            ("$6$saltsalt$hash", "$6$"),
            ("$5$salt$hash", "$5$"),
            (
                "$2b$08$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "$2b$08$",
            ),
            ("$1$abcdefgh$hash", "$1$"),
            ("!$6$salt$hash", "$6$"),
        ] {
            let setting = setting_for(old, root.path()).unwrap();
            assert!(setting.starts_with(starts), "{old} -> {setting}");
            assert!(setting.len() > starts.len() + 4, "a salt: {setting}");
            assert!(crypt::hash(b"pw", &setting).is_ok(), "{setting}");
        }
        let a = setting_for("$6$salt$hash", root.path()).unwrap();
        let b = setting_for("$6$salt$hash", root.path()).unwrap();
        assert_ne!(a, b, "fresh salts");
    }

    #[test]
    fn no_hash_takes_the_system_default() {
        for (defs, starts) in [
            (None, "$6$"),
            (Some("# ENCRYPT_METHOD MD5\n"), "$6$"),
            (Some("ENCRYPT_METHOD YESCRYPT\n"), "$y$"),
            (
                Some("ENCRYPT_METHOD SHA256\nSHA_CRYPT_MIN_ROUNDS 7000\n"),
                "$5$rounds=7000$",
            ),
            (Some("ENCRYPT_METHOD MD5\n"), "$1$"),
            (Some("ENCRYPT_METHOD DES\n"), "$6$"),
        ] {
            let root = root_with_login_defs(defs);
            for old in ["!", "*", "", "!!", "abDESxyz12345"] {
                let setting = setting_for(old, root.path()).unwrap();
                assert!(setting.starts_with(starts), "{defs:?} {old:?} -> {setting}");
            }
        }
    }
}
