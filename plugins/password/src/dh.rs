//! Nova's Diffie-Hellman exchange: p = 2^107 − 1, g = 5, keys in decimal.
//!
//! The group is tiny and p − 1 is smooth, so this hides the password from a
//! casual reader of XenStore, nothing more; it is what every Nova host speaks.

use num_bigint::BigUint;
use zeroize::Zeroizing;

/// Bytes of OS randomness in a private key (256 bits).
const PRIVATE_KEY_BYTES: usize = 32;

pub(crate) fn prime() -> BigUint {
    (BigUint::from(1u8) << 107u32) - 1u8
}

const GENERATOR: u8 = 5;

/// Why a host key was refused; the text is the answer's message.
pub(crate) const NOT_A_NUMBER: &str =
    "keyinit needs the host's public key as a decimal integer (a JSON string or number)";
pub(crate) const OUT_OF_RANGE: &str =
    "the host's public key is out of range: 0, 1, p-1 and values >= p are refused";

/// The host's public key from the request's value: a JSON string of decimal
/// digits (surrounding whitespace and Python 2's `L` suffix tolerated, as
/// `long()` did) or a JSON integer; 2 ≤ key ≤ p − 2.
pub(crate) fn parse_host_key(value_json: &str) -> Result<BigUint, &'static str> {
    let text = value_json.trim();
    let digits = if text.starts_with('"') {
        let s = serde_json::from_str::<String>(text).map_err(|_| NOT_A_NUMBER)?;
        let s = s.trim();
        s.strip_suffix(['L', 'l']).unwrap_or(s).to_owned()
    } else if text.len() == 1 || !text.starts_with('0') {
        // The exact JSON text, not a JSON number's value: a number wider
        // than 64 bits (or than a double) keeps its digits.
        text.to_owned()
    } else {
        return Err(NOT_A_NUMBER);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NOT_A_NUMBER);
    }
    let key = KeyDigits::new(&digits)?.value();
    let p = prime();
    if key < BigUint::from(2u8) || key >= &p - 1u8 {
        return Err(OUT_OF_RANGE);
    }
    Ok(key)
}

/// The most significant digits a key in range has: p − 2 has 33.
const MAX_KEY_DIGITS: usize = 33;

/// Decimal digits short enough to be a key in range, leading zeros dropped:
/// the only way to a number, so that a megabyte of digits is refused by its
/// length, never parsed (a big-number parse is quadratic in the digits).
#[derive(Debug, PartialEq, Eq)]
struct KeyDigits<'a>(&'a str);

impl<'a> KeyDigits<'a> {
    /// `digits` (ASCII digits only) as a candidate key, or the out-of-range
    /// error when it has more significant digits than any key in range.
    fn new(digits: &'a str) -> Result<KeyDigits<'a>, &'static str> {
        let significant = digits.trim_start_matches('0');
        if significant.len() > MAX_KEY_DIGITS {
            return Err(OUT_OF_RANGE);
        }
        Ok(KeyDigits(significant))
    }

    fn value(&self) -> BigUint {
        // No digit at all: the digits were zeros.
        BigUint::parse_bytes(self.0.as_bytes(), 10).unwrap_or_default()
    }
}

/// One side of an exchange: a fresh private key and its public value.
pub(crate) struct KeyPair {
    private: BigUint,
    pub(crate) public: BigUint,
}

impl KeyPair {
    /// A private key of 256 bits from the OS random source.
    pub(crate) fn generate() -> Result<KeyPair, String> {
        let mut bytes = Zeroizing::new([0u8; PRIVATE_KEY_BYTES]);
        getrandom::fill(bytes.as_mut())
            .map_err(|e| format!("cannot read the OS random source: {e}"))?;
        Ok(KeyPair::from_private(BigUint::from_bytes_be(
            bytes.as_ref(),
        )))
    }

    pub(crate) fn from_private(private: BigUint) -> KeyPair {
        let public = BigUint::from(GENERATOR).modpow(&private, &prime());
        KeyPair { private, public }
    }

    /// The shared secret with `host_key`, in decimal: the password OpenSSL's
    /// key derivation is fed.
    pub(crate) fn shared_secret(&self, host_key: &BigUint) -> Zeroizing<String> {
        Zeroizing::new(host_key.modpow(&self.private, &prime()).to_str_radix(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> BigUint {
        BigUint::parse_bytes(s.as_bytes(), 10).unwrap()
    }

    #[test]
    fn the_group_is_nova_s() {
        assert_eq!(prime(), n("162259276829213363391578010288127"));
    }

    /// host-protocol.md §2.5, the worked example.
    #[test]
    fn worked_example() {
        let host = KeyPair::from_private(n("4759477275222530853130"));
        let guest = KeyPair::from_private(n("22690724228668807036942595891182575392"));
        assert_eq!(host.public, n("72934389420761065950890858028106"));
        assert_eq!(guest.public, n("7918748811666487439650754627682"));
        let secret = guest.shared_secret(&host.public);
        assert_eq!(secret.as_str(), "24583874817078912635023085140172");
        assert_eq!(*host.shared_secret(&guest.public), *secret);
    }

    /// host-protocol.md §2.4, from the Rackspace agent's tests.
    #[test]
    fn rackspace_vector() {
        let private = n(concat!(
            "23112120562215754241813840772170184083273863303098366811852003357",
            "72446841869122972713534217535689064137278608958579090107008875567",
            "5269543831650785847026033312",
            "46342023613076766721726"
        ));
        let pair = KeyPair::from_private(private);
        let secret = pair.shared_secret(&n("29146890515040234272807524713655"));
        assert_eq!(secret.as_str(), "27234591073885988013566387861589");
    }

    #[test]
    fn generated_keys_agree() {
        let (a, b) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        assert!(
            a.private.bits() > 200,
            "a 256-bit key, give or take leading zeros"
        );
        assert_ne!(a.public, b.public);
        assert_eq!(*a.shared_secret(&b.public), *b.shared_secret(&a.public));
    }

    #[test]
    fn the_digit_bound_is_that_of_the_largest_key_in_range() {
        let largest = (prime() - 2u8).to_string();
        assert_eq!(largest.len(), MAX_KEY_DIGITS);
        assert_eq!(KeyDigits::new(&largest).unwrap().value(), prime() - 2u8);
        let zeros = format!("{}{largest}", "0".repeat(1000));
        assert_eq!(KeyDigits::new(&zeros), Ok(KeyDigits(largest.as_str())));
        assert_eq!(KeyDigits::new("000").unwrap().value(), BigUint::default());
    }

    #[test]
    fn a_megabyte_of_digits_is_refused_by_its_length_before_any_parse() {
        let huge = "7".repeat(1 << 20);
        // `KeyDigits` is the only way to a number: refusing here means the
        // digits are never parsed.
        assert_eq!(KeyDigits::new(&huge), Err(OUT_OF_RANGE));
        assert_eq!(
            KeyDigits::new(&huge[..MAX_KEY_DIGITS + 1]),
            Err(OUT_OF_RANGE)
        );
        assert_eq!(parse_host_key(&huge), Err(OUT_OF_RANGE));
        assert_eq!(parse_host_key(&format!("\"{huge}\"")), Err(OUT_OF_RANGE));
    }

    #[test]
    fn host_keys_as_strings_or_numbers() {
        let p = prime();
        for (json, key) in [
            (
                "\"72934389420761065950890858028106\"",
                "72934389420761065950890858028106",
            ),
            (
                "72934389420761065950890858028106",
                "72934389420761065950890858028106",
            ),
            ("\" 12345 \"", "12345"),
            ("\"12345L\"", "12345"),
            ("2", "2"),
        ] {
            assert_eq!(parse_host_key(json), Ok(n(key)), "{json}");
        }
        let p_minus_2 = (&p - 2u8).to_string();
        assert!(parse_host_key(&p_minus_2).is_ok());
        for bad in [
            "\"abc\"", "\"\"", "null", "true", "-5", "1.5", "1e3", "[1]", "{}", "\"-5\"",
            "\"1 2\"", "01", "\"1\" 2", "",
        ] {
            assert_eq!(parse_host_key(bad), Err(NOT_A_NUMBER), "{bad}");
        }
        let p_minus_1 = (&p - 1u8).to_string();
        let p_plus = (&p + 5u8).to_string();
        for bad in ["0", "\"1\"", p_minus_1.as_str(), &p.to_string(), &p_plus] {
            assert_eq!(parse_host_key(bad), Err(OUT_OF_RANGE), "{bad}");
        }
    }
}
