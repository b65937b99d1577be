//! Session and socket identifiers.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// A 20-character identifier made of 15 bytes from the operating system's CSPRNG (through
/// `rand`'s thread-local ChaCha generator), in URL-safe base64: unguessable, and as long as the
/// reference's ids. Stored inline so that it is `Copy` and hashes quickly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; 20]);

impl Sid {
    pub fn generate() -> Sid {
        let mut raw = [0u8; 15];
        rand::rng().fill_bytes(&mut raw);
        let mut out = [0u8; 20];
        // 15 bytes always encode to exactly 20 characters.
        let written = URL_SAFE_NO_PAD.encode_slice(raw, &mut out).unwrap_or(0);
        debug_assert_eq!(written, 20);
        Sid(out)
    }

    /// Parses an id received from a client; `None` unless it has the exact shape of ours.
    pub fn parse(s: &str) -> Option<Sid> {
        let bytes: [u8; 20] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .then_some(Sid(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only built from the base64 alphabet, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

impl serde::Serialize for Sid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_parse_back() {
        let a = Sid::generate();
        let b = Sid::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 20);
        assert_eq!(Sid::parse(a.as_str()), Some(a));
        assert_eq!(Sid::parse("short"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaa!"), None);
    }
}
