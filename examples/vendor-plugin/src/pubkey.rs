//! One OpenSSH public key file, `<type> <base64 blob> [comment]`, and its
//! fingerprint as `ssh-keygen -l` shows it.
//!
//! The blob is the SSH wire encoding (RFC 4253 section 6.6, RFC 5656 section
//! 3.1, RFC 8709 section 4): a sequence of `string`s and `mpint`s, each a
//! 32-bit big-endian length followed by that many bytes. Its first string
//! repeats the key type. The fingerprint is the SHA-256 of the whole blob in
//! base64 without padding; the size is what ssh-keygen prints: 256 for
//! ed25519, the curve's size for ecdsa, the bit length of the modulus for RSA
//! and of `p` for DSA.
//!
//! Errors describe what is wrong and never quote the blob: the one thing
//! quoted back is the type named in the text, when it looks like a type name.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// What ssh-keygen prints for a key, less the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub bits: u32,
    /// Base64 of the SHA-256 of the blob, without padding.
    pub sha256: String,
    /// `ED25519`, `ECDSA`, `RSA` or `DSA`.
    pub label: &'static str,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} SHA256:{} ({})", self.bits, self.sha256, self.label)
    }
}

/// The fingerprint of the one key in `text`. Blank lines and `#` lines are
/// skipped; a host key file holds exactly one key.
pub fn fingerprint(text: &str) -> Result<Fingerprint, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let line = lines.next().ok_or("no key in the file")?;
    let fingerprint = fingerprint_line(line)?;
    if lines.next().is_some() {
        return Err("more than one key in the file".into());
    }
    Ok(fingerprint)
}

fn fingerprint_line(line: &str) -> Result<Fingerprint, String> {
    let mut fields = line.split_ascii_whitespace();
    let key_type = fields.next().ok_or("no key in the file")?;
    let label =
        label(key_type).ok_or_else(|| format!("unsupported key type {}", shown(key_type)))?;
    let encoded = fields.next().ok_or("no base64 key after the key type")?;
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| "the key is not valid base64".to_owned())?;
    let bits = bits(key_type, &blob)?;
    Ok(Fingerprint {
        bits,
        sha256: STANDARD_NO_PAD.encode(Sha256::digest(&blob)),
        label,
    })
}

/// The label ssh-keygen gives a key type, for the types a host key can have.
fn label(key_type: &str) -> Option<&'static str> {
    match key_type {
        "ssh-ed25519" => Some("ED25519"),
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => Some("ECDSA"),
        "ssh-rsa" => Some("RSA"),
        "ssh-dss" => Some("DSA"),
        _ => None,
    }
}

/// The key's size in bits, checking that the blob is a whole key of `key_type`.
fn bits(key_type: &str, blob: &[u8]) -> Result<u32, String> {
    let mut blob = Reader(blob);
    if blob.string()? != key_type.as_bytes() {
        return Err(format!("the key inside is not of type {key_type}"));
    }
    let bits = match key_type {
        "ssh-ed25519" => {
            if blob.string()?.len() != 32 {
                return Err("the ed25519 key is not 32 bytes".into());
            }
            256
        }
        "ssh-rsa" => {
            let _exponent = blob.mpint_bits()?;
            blob.mpint_bits()?
        }
        "ssh-dss" => {
            let p = blob.mpint_bits()?;
            for _q_g_y in 0..3 {
                blob.mpint_bits()?;
            }
            p
        }
        _ => {
            let curve = blob.string()?;
            let bits: usize = match curve {
                b"nistp256" => 256,
                b"nistp384" => 384,
                b"nistp521" => 521,
                _ => return Err("unsupported ecdsa curve".into()),
            };
            if !key_type.as_bytes().ends_with(curve) {
                return Err(format!("the key inside is not of type {key_type}"));
            }
            // An uncompressed point: 0x04, then x and y of the curve's size.
            let point = blob.string()?;
            if point.len() != 1 + 2 * bits.div_ceil(8) || point[0] != 4 {
                return Err("the ecdsa point is malformed".into());
            }
            bits as u32
        }
    };
    if !blob.0.is_empty() {
        return Err("trailing bytes after the key".into());
    }
    if bits == 0 {
        return Err("the key is zero".into());
    }
    Ok(bits)
}

/// Reads the wire encoding front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8], String> {
        const TRUNCATED: &str = "the key is truncated";
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or(TRUNCATED)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| TRUNCATED)?;
        if rest.len() < len {
            return Err(TRUNCATED.into());
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(value)
    }

    /// The bit length of a non-negative `mpint` (two's complement, big-endian,
    /// a leading zero byte when the top bit would be set).
    fn mpint_bits(&mut self) -> Result<u32, String> {
        let bytes = self.string()?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err("the key holds a negative number".into());
        }
        let Some(start) = bytes.iter().position(|&b| b != 0) else {
            return Ok(0);
        };
        let significant = u32::try_from(bytes.len() - start).map_err(|_| "the key is too large")?;
        Ok((significant - 1) * 8 + (8 - bytes[start].leading_zeros()))
    }
}

/// `key_type` quoted when it looks like a key type name, so that a file
/// holding something else entirely is not echoed back.
fn shown(key_type: &str) -> String {
    let plausible = key_type.len() <= 64
        && key_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if plausible {
        format!("{key_type:?}")
    } else {
        "(not a key type name)".into()
    }
}
