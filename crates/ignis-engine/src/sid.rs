//! Session and socket identifiers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

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

/// A hasher for [`Sid`] keys. Ids come from the CSPRNG, so their bytes are already uniformly
/// spread and nobody can choose the ids a table holds: a keyed hash (SipHash) buys nothing and
/// costs several times more on every lookup of a broadcast. The bytes are folded with a
/// multiply so that every byte reaches the high bits the table uses too.
#[derive(Default, Clone, Copy)]
pub struct SidHasher(u64);

impl Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            hash = (hash.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for &b in chunks.remainder() {
            hash = (hash.rotate_left(23) ^ u64::from(b)).wrapping_mul(SEED);
        }
        self.0 = hash;
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(23) ^ n as u64).wrapping_mul(SEED);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Builds [`SidHasher`]s.
pub type SidBuildHasher = BuildHasherDefault<SidHasher>;
/// A map keyed by session or socket id.
pub type SidMap<V> = HashMap<Sid, V, SidBuildHasher>;
/// A set of session or socket ids.
pub type SidSet = HashSet<Sid, SidBuildHasher>;

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

    #[test]
    fn the_id_hash_spreads_ids_over_low_and_high_bits() {
        use std::hash::BuildHasher;
        let build = SidBuildHasher::default();
        let ids: Vec<Sid> = (0..64_000).map(|_| Sid::generate()).collect();
        let a = ids[0];
        assert_eq!(
            build.hash_one(a),
            build.hash_one(Sid::parse(a.as_str()).unwrap())
        );
        // The table's bucket (low bits) and its control byte (top 7 bits) must both be spread:
        // 64 000 ids in 64 bins, 1 000 expected in each.
        for shift in [0, 57] {
            let mut bins = [0u32; 64];
            for id in &ids {
                bins[((build.hash_one(id) >> shift) & 63) as usize] += 1;
            }
            let (min, max) = (bins.iter().min().unwrap(), bins.iter().max().unwrap());
            assert!(*min > 800 && *max < 1200, "shift {shift}: {min}..{max}");
        }
        let set: SidSet = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|id| set.contains(id)));
    }
}
