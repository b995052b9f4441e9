//! A line of a kernel file (`/proc/stat`, `/proc/diskstats`) read as the C
//! library's `sscanf` reads it, conversion by conversion, for the QGA
//! commands that must answer exactly what qemu-ga's C code makes of the
//! same text (its saturation, wrapping and stopping rules included).

/// One line read as glibc's `sscanf` reads it, conversion by conversion:
/// the text ends at a NUL, each conversion skips the blanks before it.
pub struct CScan<'a> {
    rest: &'a [u8],
}

impl<'a> CScan<'a> {
    pub fn new(line: &'a [u8]) -> CScan<'a> {
        let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
        CScan { rest: &line[..end] }
    }

    pub fn skip_blanks(&mut self) {
        let start = self
            .rest
            .iter()
            .position(|b| !is_space(*b))
            .unwrap_or(self.rest.len());
        self.rest = &self.rest[start..];
    }

    /// `%s`: the next word, `None` at the end of the text.
    pub fn word(&mut self) -> Option<&'a [u8]> {
        self.skip_blanks();
        let end = self
            .rest
            .iter()
            .position(|b| is_space(*b))
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        (!word.is_empty()).then_some(word)
    }

    /// `%lu`: `None` where the conversion fails (no digits); else the
    /// number as `strtoul` gives it, saturated at `ULONG_MAX`, a negative
    /// one wrapped.
    pub fn ulong(&mut self) -> Option<u64> {
        self.skip_blanks();
        let (negative, magnitude) = self.sign_and_digits()?;
        Some(match u64::try_from(magnitude) {
            Err(_) => u64::MAX,
            Ok(n) if negative => n.wrapping_neg(),
            Ok(n) => n,
        })
    }

    /// An optional sign and at least one digit, consumed; the magnitude
    /// saturates above `u64::MAX`.
    pub fn sign_and_digits(&mut self) -> Option<(bool, u128)> {
        let (negative, after_sign) = match self.rest.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };
        let digits = self.rest[after_sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let end = after_sign + digits;
        let magnitude = self.rest[after_sign..end].iter().fold(0u128, |n, d| {
            (n * 10 + u128::from(d - b'0')).min(u128::from(u64::MAX) + 1)
        });
        self.rest = &self.rest[end..];
        Some((negative, magnitude))
    }
}

/// C's `isspace` in the C locale.
fn is_space(byte: u8) -> bool {
    b" \t\n\x0b\x0c\r".contains(&byte)
}
