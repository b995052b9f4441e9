//! Password hashing through the system's crypt library (libxcrypt on Linux):
//! the hashes it makes are the ones login, su and sshd verify, for every
//! scheme the system supports (yescrypt, SHA-512, SHA-256, bcrypt, MD5).
//!
//! The library is opened at run time, so the crate builds without its
//! development files and reports a clear error where it is missing.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// `sizeof(struct crypt_data)` in libxcrypt (and glibc's older libcrypt).
const CRYPT_DATA_SIZE: usize = 32768;
/// libxcrypt's CRYPT_GENSALT_OUTPUT_SIZE.
const GENSALT_OUTPUT_SIZE: usize = 192;

type CryptRn =
    unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, c_int) -> *mut c_char;
type CryptGensaltRn = unsafe extern "C" fn(
    *const c_char,
    c_ulong,
    *const c_char,
    c_int,
    *mut c_char,
    c_int,
) -> *mut c_char;

struct Library {
    crypt_rn: CryptRn,
    crypt_gensalt_rn: CryptGensaltRn,
}

fn library() -> Result<&'static Library, String> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY.get_or_init(open).as_ref().map_err(Clone::clone)
}

fn open() -> Result<Library, String> {
    let mut problems = Vec::new();
    for name in ["libcrypt.so.1", "libcrypt.so.2", "libcrypt.so"] {
        // SAFETY: libcrypt's initialisers have no preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                // SAFETY: the types match libxcrypt's prototypes in crypt.h.
                let symbols = unsafe {
                    (
                        lib.get::<CryptRn>(b"crypt_rn\0").map(|s| *s),
                        lib.get::<CryptGensaltRn>(b"crypt_gensalt_rn\0").map(|s| *s),
                    )
                };
                match symbols {
                    (Ok(crypt_rn), Ok(crypt_gensalt_rn)) => {
                        // The functions stay valid as long as the library is
                        // mapped: keep it mapped for good.
                        std::mem::forget(lib);
                        return Ok(Library {
                            crypt_rn,
                            crypt_gensalt_rn,
                        });
                    }
                    _ => problems.push(format!("{name} lacks crypt_rn/crypt_gensalt_rn")),
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    Err(format!(
        "the system's crypt library (libxcrypt) is not usable: {}",
        problems.join("; ")
    ))
}

/// A new setting (scheme, parameters and a fresh random salt) for `prefix`
/// such as `$y$` or `$6$`; `count` is the scheme's cost (0: its default).
pub fn gensalt(prefix: &str, count: u64) -> Result<String, String> {
    let lib = library()?;
    let prefix_c = CString::new(prefix).map_err(|_| format!("bad hash prefix {prefix:?}"))?;
    let mut output = [0 as c_char; GENSALT_OUTPUT_SIZE];
    // SAFETY: a NUL-terminated prefix, a null rbytes (the library reads the OS
    // random source itself) and an output buffer of the size we pass.
    let made = unsafe {
        (lib.crypt_gensalt_rn)(
            prefix_c.as_ptr(),
            count as c_ulong,
            std::ptr::null(),
            0,
            output.as_mut_ptr(),
            GENSALT_OUTPUT_SIZE as c_int,
        )
    };
    if made.is_null() {
        return Err(format!(
            "the system's crypt library cannot make a {prefix} setting with cost {count}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: on success the output buffer holds a NUL-terminated string.
    let setting = unsafe { CStr::from_ptr(output.as_ptr()) };
    Ok(setting.to_string_lossy().into_owned())
}

/// `crypt(password, setting)`: a full hash, or an error (never a failure
/// token such as `*0`). The password is bytes: crypt hashes any byte but NUL.
pub fn hash(password: &[u8], setting: &str) -> Result<String, String> {
    let lib = library()?;
    if password.contains(&0) {
        return Err("the password contains a NUL byte".to_owned());
    }
    let mut phrase = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    phrase.extend_from_slice(password);
    phrase.push(0);
    let setting_c = CString::new(setting).map_err(|_| "bad hash setting".to_owned())?;
    // The work area receives a copy of the passphrase: wiped when dropped.
    let mut data = Zeroizing::new(vec![0u8; CRYPT_DATA_SIZE]);
    // SAFETY: NUL-terminated strings and a zeroed work area of the size given.
    let out = unsafe {
        (lib.crypt_rn)(
            phrase.as_ptr().cast(),
            setting_c.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as c_int,
        )
    };
    if out.is_null() {
        return Err(format!(
            "the system's crypt library refused the setting {setting:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: on success `out` points at a NUL-terminated string inside `data`.
    let hashed = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    if !hashed.starts_with('$') || hashed.starts_with('*') {
        return Err(format!("the system's crypt library failed for {setting:?}"));
    }
    Ok(hashed)
}

/// Whether `password` verifies against `hashed`, as login would check it.
pub fn verify(password: impl AsRef<[u8]>, hashed: &str) -> bool {
    hash(password.as_ref(), hashed).is_ok_and(|again| again == hashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_hashes_and_verifies() {
        for (prefix, count) in [
            ("$y$", 0),
            ("$6$", 0),
            ("$6$", 6000),
            ("$5$", 0),
            ("$2b$", 5),
            ("$1$", 0),
        ] {
            let setting = gensalt(prefix, count).unwrap();
            assert!(setting.starts_with(prefix), "{setting}");
            let hashed = hash(b"correct horse", &setting).unwrap();
            assert!(verify("correct horse", &hashed), "{hashed}");
            assert!(!verify("wrong horse", &hashed), "{hashed}");
        }
        assert!(gensalt("$6$", 6000).unwrap().starts_with("$6$rounds=6000$"));
    }

    #[test]
    fn a_bad_setting_is_an_error_not_a_token() {
        assert!(hash(b"x", "$y$").is_err());
        assert!(hash(b"x", "*0").is_err());
        assert!(hash(b"a\0b", "$6$salt").is_err());
        assert!(!verify("x", "!"));
    }
}
