//! Session and socket identifiers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// A 20-character identifier made of 15 bytes from the operating system's CSPRNG (through
/// `rand`'s thread-local ChaCha generator), in URL-safe base64: unguessable, and as long as the
/// reference's ids. Stored inline so that it is `Copy` and hashes quickly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; 20]);

impl Sid {
    /// A new random id, unguessable.
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

    /// The id's characters, for comparisons that need not check them again as UTF-8.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id as text (its 20 URL-safe characters).
    pub fn as_str(&self) -> &str {
        // Only built from the base64 alphabet, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A map keyed by session or socket id.
pub type SidMap<V> = HashMap<Sid, V, SidHash>;
/// A set of session or socket ids.
pub type SidSet = HashSet<Sid, SidHash>;

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

/// The hasher of maps keyed by [`Sid`]s (and of other tables whose keys only the server chooses,
/// such as event-handler tables). An id is random: a multiply-and-rotate per word mixes
/// it as well as SipHash would, at a fraction of the cost (a server hashes ids in every map that
/// tracks its connections, several times per connection). The seed is random per process, so
/// that ids a client makes up cannot be aimed at one bucket either.
#[derive(Debug, Clone, Copy)]
pub struct SidHash {
    seed: u64,
}

impl Default for SidHash {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        SidHash {
            seed: *SEED.get_or_init(|| rand::rng().next_u64() | 1),
        }
    }
}

impl BuildHasher for SidHash {
    type Hasher = SidHasher;

    fn build_hasher(&self) -> SidHasher {
        SidHasher(self.seed)
    }
}

/// See [`SidHash`].
#[derive(Debug, Clone)]
pub struct SidHasher(u64);

impl SidHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(31);
    }
}

impl Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        // MurmurHash3's finalizer: every bit of the state reaches the top and bottom bits, which
        // the hash table uses.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
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
    fn sid_hashes_spread_over_buckets() {
        use std::hash::BuildHasher;
        let hash = SidHash::default();
        let a = Sid::generate();
        assert_eq!(hash.hash_one(a), hash.hash_one(a), "stable");
        // 4096 ids over 256 buckets, by the low bits and by the top 7 bits (the two parts a
        // hash table uses): no bucket far from the mean of 16 (or 32 for the 128 tags).
        let ids: Vec<Sid> = (0..4096).map(|_| Sid::generate()).collect();
        let mut low = [0u32; 256];
        let mut top = [0u32; 128];
        for id in &ids {
            let h = hash.hash_one(id);
            low[(h & 0xff) as usize] += 1;
            top[(h >> 57) as usize] += 1;
        }
        assert!(low.iter().all(|&n| (1..=48).contains(&n)), "{low:?}");
        assert!(top.iter().all(|&n| (4..=72).contains(&n)), "{top:?}");
        // Ids that differ in one character hash apart.
        let mut bytes = *b"aaaaaaaaaaaaaaaaaaaa";
        let base = hash.hash_one(Sid::parse("aaaaaaaaaaaaaaaaaaaa").unwrap());
        for i in 0..20 {
            bytes[i] = b'b';
            let other = Sid::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
            assert_ne!(hash.hash_one(other), base);
            bytes[i] = b'a';
        }
    }
}
