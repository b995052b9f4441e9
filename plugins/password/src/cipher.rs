//! Decrypting the host's password: base64, then AES-128-CBC keyed by
//! OpenSSL's `EVP_BytesToKey` over the shared secret in decimal (no salt, one
//! round), with MD5 or SHA-256.
//!
//! Nova runs `openssl enc -aes-128-cbc -nosalt -pass pass:<secret>` without
//! `-md`, so the digest is its host's OpenSSL default: MD5 before 1.1.0,
//! SHA-256 since. A decryption counts only if its PKCS#7 padding is strictly
//! valid and it reads as a password (UTF-8, no control characters but the
//! trailing "\n" hosts add); candidates ending in "\n" are preferred, so a
//! wrong-digest decryption that happens to look valid is practically never
//! taken.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use base64::Engine;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use zeroize::Zeroizing;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyDigest {
    Md5,
    Sha256,
}

impl KeyDigest {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyDigest::Md5 => "MD5",
            KeyDigest::Sha256 => "SHA-256",
        }
    }
}

/// Base64 as hosts send it, line-wrapped or not: whitespace anywhere is
/// ignored, padding may be missing.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact).ok()
}

/// `EVP_BytesToKey(aes-128-cbc, digest, no salt, count 1)` for `secret`.
fn derive(digest: KeyDigest, secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key_iv = Zeroizing::new([0u8; 32]);
    match digest {
        KeyDigest::Md5 => {
            let key = Md5::digest(secret);
            let mut second = Md5::new();
            second.update(key);
            second.update(secret);
            key_iv[..16].copy_from_slice(&key);
            key_iv[16..].copy_from_slice(&second.finalize());
        }
        KeyDigest::Sha256 => key_iv.copy_from_slice(&Sha256::digest(secret)),
    }
    key_iv
}

/// The password in `ciphertext`, without the host's trailing "\n", and the
/// digest that opened it; `None` when no derivation gives a valid one.
pub(crate) fn decrypt(ciphertext: &[u8], secret: &str) -> Option<(Zeroizing<String>, KeyDigest)> {
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return None;
    }
    let candidates: Vec<(KeyDigest, Option<Zeroizing<String>>)> =
        [KeyDigest::Md5, KeyDigest::Sha256]
            .into_iter()
            .map(|digest| (digest, open(digest, ciphertext, secret.as_bytes())))
            .collect();
    let ends_in_newline = |text: &Zeroizing<String>| text.ends_with('\n');
    let chosen = candidates
        .iter()
        .find(|(_, text)| text.as_ref().is_some_and(ends_in_newline))
        .or_else(|| candidates.iter().find(|(_, text)| text.is_some()))?;
    let (digest, Some(text)) = chosen else {
        return None;
    };
    let password = text.strip_suffix('\n').unwrap_or(text);
    (!password.is_empty()).then(|| (Zeroizing::new(password.to_owned()), *digest))
}

/// One derivation's plaintext, if its padding is strictly valid and it reads
/// as a password.
fn open(digest: KeyDigest, ciphertext: &[u8], secret: &[u8]) -> Option<Zeroizing<String>> {
    let key_iv = derive(digest, secret);
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let cipher = Aes128CbcDec::new(key_iv[..16].into(), key_iv[16..].into());
    let plain = cipher.decrypt_padded_mut::<NoPadding>(&mut buffer).ok()?;
    let text = std::str::from_utf8(unpad(plain)?).ok()?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.chars().any(char::is_control) {
        return None;
    }
    Some(Zeroizing::new(text.to_owned()))
}

/// PKCS#7, strictly: the last byte n is 1 to 16 and the last n bytes all
/// equal n.
fn unpad(plain: &[u8]) -> Option<&[u8]> {
    let pad = usize::from(*plain.last()?);
    if !(1..=16).contains(&pad) || pad > plain.len() {
        return None;
    }
    let (text, padding) = plain.split_at(plain.len() - pad);
    padding
        .iter()
        .all(|&b| usize::from(b) == pad)
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

    const SECRET: &str = "24583874817078912635023085140172";

    fn encrypt(digest: KeyDigest, plain: &[u8]) -> Vec<u8> {
        let key_iv = derive(digest, SECRET.as_bytes());
        Aes128CbcEnc::new(key_iv[..16].into(), key_iv[16..].into())
            .encrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(plain)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// host-protocol.md §2.5: keys and ciphertexts from OpenSSL 3.
    #[test]
    fn worked_example() {
        let md5 = derive(KeyDigest::Md5, SECRET.as_bytes());
        assert_eq!(hex(&md5[..16]), "5c0ef6a1aab7a954fe48079556651cc8");
        assert_eq!(hex(&md5[16..]), "f2afb6c99385064b181fb0438db99b75");
        let sha = derive(KeyDigest::Sha256, SECRET.as_bytes());
        assert_eq!(hex(&sha[..16]), "00988c1256f048f9a07eb0111b9110ee");
        assert_eq!(hex(&sha[16..]), "66776ad8690793ab984a886d9c535d80");

        for (b64, digest) in [
            ("dTE4N6erI+1u9FNPFbF3kw==", KeyDigest::Md5),
            ("0FnoLS2XmMBaF6qbqWu3mA==", KeyDigest::Sha256),
        ] {
            let (password, used) = decrypt(&decode_base64(b64).unwrap(), SECRET).unwrap();
            assert_eq!((password.as_str(), used), ("Passw0rd!", digest));
        }
    }

    /// host-protocol.md §2.4: the Rackspace agent's key None vector.
    #[test]
    fn md5_derivation_of_none() {
        let key_iv = derive(KeyDigest::Md5, b"None");
        assert_eq!(
            &key_iv[..16],
            b"j\xdf\x97\xf8:\xcfdS\xd4\xa6\xa4\xb1\x07\x0f7T"
        );
        assert_eq!(&key_iv[16..], b"#d\r\xec6\x8f\xbe\xf3\x03dp\xfcTe\xb8e");
    }

    #[test]
    fn base64_with_line_breaks_and_without_padding() {
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64(" aGVsbG8 ").unwrap(), b"hello");
        assert!(decode_base64("kjadfkjaf").is_none());
        assert!(decode_base64("a*b=").is_none());
    }

    #[test]
    fn both_digests_and_texts_without_newline() {
        for digest in [KeyDigest::Md5, KeyDigest::Sha256] {
            for (plain, expected) in [
                (&b"secret\n"[..], "secret"),
                (b"no newline", "no newline"),
                ("pässwörd €\n".as_bytes(), "pässwörd €"),
                (b"exactly sixteen\n", "exactly sixteen"),
            ] {
                let (password, used) = decrypt(&encrypt(digest, plain), SECRET).unwrap();
                assert_eq!(password.as_str(), expected);
                assert_eq!(used, digest);
            }
        }
    }

    #[test]
    fn invalid_data_is_refused() {
        let good = encrypt(KeyDigest::Md5, b"secret\n");
        assert!(decrypt(&good[..good.len() - 1], SECRET).is_none(), "length");
        assert!(decrypt(&[], SECRET).is_none(), "empty");
        assert!(decrypt(&good, "1234").is_none(), "wrong secret");
        for plain in [
            &b"\n"[..],
            b"",
            b"tab\there\n",
            b"two\nlines\n",
            b"\xff\xfe\n",
        ] {
            assert!(
                decrypt(&encrypt(KeyDigest::Md5, plain), SECRET).is_none(),
                "{plain:?}"
            );
        }
    }

    #[test]
    fn padding_is_checked_strictly() {
        assert_eq!(unpad(b"abc\x01"), Some(&b"abc"[..]));
        assert_eq!(
            unpad(
                &[b'a'; 16]
                    .iter()
                    .chain(&[16u8; 16])
                    .copied()
                    .collect::<Vec<_>>()
            ),
            Some(&[b'a'; 16][..])
        );
        assert_eq!(unpad(b"abc\x00"), None, "a pad byte of 0");
        assert_eq!(unpad(b"ab\x01\x02"), None, "unequal pad bytes");
        assert_eq!(unpad(b"abc\x11"), None, "over 16");
        assert_eq!(unpad(b"\x05\x05"), None, "longer than the text");
    }

    /// A wrong-digest decryption whose last byte alone looks like padding
    /// (about 6 % of them) must not be taken: over many random secrets, the
    /// SHA-256 ciphertext is never opened with MD5 and vice versa.
    #[test]
    fn the_wrong_digest_is_never_taken() {
        for i in 0..2000u32 {
            let secret = format!("{}", 1_000_000_007u64 * u64::from(i + 1));
            for digest in [KeyDigest::Md5, KeyDigest::Sha256] {
                let key_iv = derive(digest, secret.as_bytes());
                let ciphertext = Aes128CbcEnc::new(key_iv[..16].into(), key_iv[16..].into())
                    .encrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(
                    b"Pa55word!\n",
                );
                let (password, used) = decrypt(&ciphertext, &secret).unwrap();
                assert_eq!((password.as_str(), used), ("Pa55word!", digest));
            }
        }
    }
}
