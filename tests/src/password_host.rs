//! The host's side of the password exchange, as Nova does it: a
//! Diffie-Hellman key pair in Nova's group (p = 2^107 − 1, g = 5), the
//! password encrypted by the real `openssl enc` command line; and the check
//! a login would make, through the system's crypt library.

use std::io::Write;
use std::process::{Command, Stdio};

use num_bigint::BigUint;

pub fn prime() -> BigUint {
    (BigUint::from(1u8) << 107u32) - 1u8
}

/// The host's key pair for one exchange, from a fixed private key.
pub struct HostKey {
    private: BigUint,
    pub public: BigUint,
}

impl HostKey {
    pub fn new(seed: u64) -> HostKey {
        let private = BigUint::from(seed) * BigUint::from(0x9e37_79b9_7f4a_7c15u64) + 12_345u32;
        let public = BigUint::from(5u8).modpow(&private, &prime());
        HostKey { private, public }
    }

    /// The keyinit value Nova sends: the public key as a JSON string.
    pub fn keyinit_value(&self) -> String {
        format!("\"{}\"", self.public)
    }

    /// The shared secret in decimal, from the agent's keyinit message.
    pub fn shared_secret(&self, agent_public: &str) -> String {
        let agent = BigUint::parse_bytes(agent_public.as_bytes(), 10).expect("a decimal key");
        agent.modpow(&self.private, &prime()).to_string()
    }
}

/// `printf '%s\n' PASSWORD | openssl enc -aes-128-cbc -a -A -nosalt -md MD
/// -pass pass:SECRET`: the password value Nova sends (with `-md`, since
/// Nova's hosts differ in their default).
pub fn openssl_encrypt(password: &str, secret: &str, md: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["enc", "-aes-128-cbc", "-a", "-A", "-nosalt", "-md", md])
        .arg("-pass")
        .arg(format!("pass:{secret}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl (apt-get install openssl)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Whether `password` verifies against `hash` with the system's crypt(3).
pub fn crypt_verifies(password: &str, hash: &str) -> bool {
    type CryptR = unsafe extern "C" fn(
        *const libc::c_char,
        *const libc::c_char,
        *mut libc::c_void,
    ) -> *mut libc::c_char;
    // SAFETY: loading the system's crypt library runs no code we depend on.
    let lib = unsafe { libloading::Library::new("libcrypt.so.1") }.expect("libcrypt.so.1");
    // SAFETY: crypt_r's prototype in crypt.h.
    let crypt_r = unsafe { lib.get::<CryptR>(b"crypt_r\0") }.expect("crypt_r");
    let phrase = std::ffi::CString::new(password).unwrap();
    let setting = std::ffi::CString::new(hash).unwrap();
    let mut data = vec![0u8; 32768]; // sizeof(struct crypt_data)
                                     // SAFETY: NUL-terminated strings and a zeroed struct crypt_data.
    let out = unsafe { crypt_r(phrase.as_ptr(), setting.as_ptr(), data.as_mut_ptr().cast()) };
    // SAFETY: crypt_r returns a NUL-terminated string inside `data`, or null.
    !out.is_null() && unsafe { std::ffi::CStr::from_ptr(out) }.to_bytes() == hash.as_bytes()
}
