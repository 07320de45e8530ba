//! Byte sizes as operators write them: `4096`, `"4 KiB"`, `"64MiB"`.
//!
//! Only binary units are accepted. A flash part's geometry is a power of two and the ring's
//! rules (segment a multiple of the erase block, group a multiple of the program unit) are
//! checked exactly, so `"64 MB"` (10^6 or 2^20?) is refused instead of guessed at: a wrong
//! guess would give a segment that is not a multiple of the erase block, or silently a ring a
//! few percent larger than the partition it was sized for.

use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The units accepted after a number, with their multipliers (binary, IEC).
const UNITS: [(&str, u64); 5] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// The accepted units, for error messages.
pub const ACCEPTED_UNITS: &str = "B, KiB, MiB, GiB, TiB";

/// A number of bytes, read from a TOML integer (bytes) or a string `"<number> <unit>"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl From<ByteSize> for u64 {
    fn from(b: ByteSize) -> u64 {
        b.0
    }
}

/// Why a byte-size string was refused. The message says what is accepted, so an operator can
/// fix the file without reading the docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteSizeError(String);

impl fmt::Display for ByteSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ByteSizeError {}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    /// Parses `"<digits> <unit>"` or `"<digits><unit>"` (spaces around are ignored).
    fn from_str(s: &str) -> Result<ByteSize, ByteSizeError> {
        let bad = |why: String| Err(ByteSizeError(why));
        let text = s.trim();
        if text.starts_with('-') {
            return bad(format!("bad size {s:?}: a size cannot be negative"));
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = (&text[..split], text[split..].trim_start());
        if digits.is_empty() {
            return bad(format!(
                "bad size {s:?}: expected a whole number followed by a unit ({ACCEPTED_UNITS}), \
                 e.g. \"64 KiB\", or an integer number of bytes"
            ));
        }
        if unit.is_empty() {
            return bad(format!(
                "bad size {s:?}: missing unit; write e.g. \"{digits} B\" or the integer {digits} \
                 without quotes (accepted units: {ACCEPTED_UNITS})"
            ));
        }
        let Some(&(_, multiplier)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return bad(format!(
                "bad unit {unit:?} in {s:?}: accepted units are {ACCEPTED_UNITS} \
                 (binary: 1 KiB = 1024 B; decimal units like MB are refused on purpose)"
            ));
        };
        let too_large =
            || ByteSizeError(format!("bad size {s:?}: too large (over 2^64 - 1 bytes)"));
        let number: u64 = digits.parse().map_err(|_| too_large())?;
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(too_large)
    }
}

impl fmt::Display for ByteSize {
    /// Uses the largest unit that divides the size exactly, so a displayed size parses back to
    /// the same number: `1048576` shows as `1 MiB`, `1536` as `1536 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, multiplier) = UNITS
            .iter()
            .rev()
            .find(|(_, m)| self.0 != 0 && self.0.is_multiple_of(*m))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{} {}", self.0 / multiplier, name)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a number of bytes, or a string \"<number> <unit>\" with unit one of {ACCEPTED_UNITS}"
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("bad size {v}: a size cannot be negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        size: ByteSize,
    }

    fn from_toml(value: &str) -> Result<u64, String> {
        toml::from_str::<Holder>(&format!("size = {value}"))
            .map(|h| h.size.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_integers_and_binary_units() {
        assert_eq!(from_toml("4096"), Ok(4096));
        assert_eq!(from_toml("0"), Ok(0));
        assert_eq!(from_toml("\"512 B\""), Ok(512));
        assert_eq!(from_toml("\"4 KiB\""), Ok(4096));
        assert_eq!(from_toml("\"64MiB\""), Ok(64 << 20));
        assert_eq!(from_toml("\" 2 GiB \""), Ok(2 << 30));
        assert_eq!(from_toml("\"1 TiB\""), Ok(1 << 40));
        assert_eq!(from_toml("\"3  KiB\""), Ok(3 * 1024));
    }

    #[test]
    fn refuses_other_units_naming_the_accepted_ones() {
        for bad in [
            "\"64 MB\"",
            "\"4k\"",
            "\"1 mb\"",
            "\"1 kib\"",
            "\"1.5 MiB\"",
        ] {
            let e = from_toml(bad).unwrap_err();
            assert!(e.contains(ACCEPTED_UNITS), "{bad}: {e}");
            assert!(e.contains("size"), "{bad}: {e}");
        }
        assert!(from_toml("\"64 MB\"").unwrap_err().contains("bad unit"));
    }

    #[test]
    fn refuses_missing_number_or_unit() {
        assert!(from_toml("\"MiB\"").unwrap_err().contains("whole number"));
        assert!(from_toml("\"\"").unwrap_err().contains("whole number"));
        assert!(from_toml("\"4096\"").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn refuses_negative() {
        assert!(from_toml("-1").unwrap_err().contains("negative"));
        assert!(from_toml("\"-1 KiB\"").unwrap_err().contains("negative"));
    }

    #[test]
    fn refuses_overflow() {
        assert!(
            from_toml("\"16777216 TiB\"")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            from_toml("\"99999999999999999999999 B\"")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(from_toml("\"16777215 TiB\""), Ok(16_777_215 << 40));
    }

    #[test]
    fn refuses_other_types() {
        assert!(from_toml("1.5").is_err());
        assert!(from_toml("true").is_err());
    }

    #[test]
    fn display_round_trips() {
        for n in [0, 1, 512, 1024, 1536, 4 << 20, 3 << 30, 5 << 40, u64::MAX] {
            let shown = ByteSize(n).to_string();
            assert_eq!(shown.parse::<ByteSize>(), Ok(ByteSize(n)), "{shown}");
        }
        assert_eq!(ByteSize(1 << 20).to_string(), "1 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536 B");
        assert_eq!(ByteSize(0).to_string(), "0 B");
    }
}
