//! Raw DEFLATE per message (RFC 7692 §7.2).
//!
//! Both objects are meant to live per thread and be reused for every
//! connection that negotiated no context takeover: they reset after each
//! message and only their buffers' capacity survives between messages.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with (RFC 7692 §7.2.1).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output grows in steps of at most this much, so a small compressed input
/// cannot make us allocate far beyond what it actually inflates to.
const MAX_GROWTH: usize = 64 * 1024;

/// zlib cannot build a raw deflate stream with a 256-byte window and uses 512
/// instead; its deflater then never emits distances above 250, so the
/// output stays readable with a 256-byte window. flate2 mirrors that by
/// refusing 8, so 8 is mapped to 9 here. Inflating with a larger window than
/// negotiated is always safe.
fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compression failed; zlib only reports this for a corrupted stream state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deflate failed: {0}")]
pub struct DeflateError(String);

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The inflated message would exceed the size limit (close with 1009).
    #[error("inflated message exceeds {limit} bytes")]
    TooBig {
        /// The maximum message size, in bytes.
        limit: usize,
    },
    /// Not a valid DEFLATE stream (close with 1007, as `ws` does).
    #[error("invalid compressed data")]
    Corrupt,
}

/// Compresses whole messages for permessage-deflate frames, with the window and context
/// takeover the handshake negotiated.
pub struct Deflater {
    inner: Compress,
    no_context_takeover: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// `level` 0–9 (larger values are clamped), `window_bits` as negotiated
    /// (8–15). With `no_context_takeover` every message starts from an
    /// empty window, which makes the output independent of earlier messages
    /// and lets one deflater serve many connections.
    pub fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Deflater {
        Deflater {
            inner: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                zlib_window_bits(window_bits),
            ),
            no_context_takeover,
            scratch: Vec::new(),
        }
    }

    /// Compresses one message. The returned slice lives in an internal
    /// buffer reused by the next call; the trailing `00 00 ff ff` is
    /// already removed.
    pub fn compress(&mut self, payload: &[u8]) -> Result<&[u8], DeflateError> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let result = self.compress_into(payload, &mut out);
        self.scratch = out;
        result?;
        Ok(&self.scratch)
    }

    /// Compresses one message, appending to `out`.
    pub fn compress_into(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let result = self.sync_flush(payload, out);
        if result.is_err() || self.no_context_takeover {
            self.inner.reset();
        }
        result
    }

    fn sync_flush(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let start_len = out.len();
        let start_in = self.inner.total_in();
        loop {
            let consumed =
                usize::try_from(self.inner.total_in() - start_in).unwrap_or(payload.len());
            let rest = payload.get(consumed..).unwrap_or_default();
            out.reserve(rest.len() / 2 + 64);
            let before_out = out.len();
            self.inner
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|e| DeflateError(e.to_string()))?;
            let now = usize::try_from(self.inner.total_in() - start_in).unwrap_or(payload.len());
            let room_left = out.len() < out.capacity();
            // zlib has flushed everything once it stops with room to spare.
            if now >= payload.len() && room_left {
                break;
            }
            if room_left && now == consumed && out.len() == before_out {
                return Err(DeflateError("deflate made no progress".into()));
            }
        }
        if out.len() < start_len + TRAILER.len() || !out.ends_with(&TRAILER) {
            return Err(DeflateError(
                "sync flush did not end with an empty stored block".into(),
            ));
        }
        out.truncate(out.len() - TRAILER.len());
        Ok(())
    }
}

/// Inflates whole messages under a hard size limit.
pub struct Inflater {
    inner: Decompress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// `window_bits` as negotiated for the peer; 15 reads any peer's output,
    /// so a per-thread inflater can simply use 15. With context takeover
    /// (`no_context_takeover == false`) the inflater belongs to one
    /// connection.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        Inflater {
            inner: Decompress::new_with_window_bits(false, zlib_window_bits(window_bits)),
            no_context_takeover,
        }
    }

    /// Inflates one message (all its frames' payloads, concatenated),
    /// appending to `out`. Fails without allocating beyond `limit` (plus one
    /// growth step) when the message inflates to more than `limit` bytes.
    /// After an error the inflater is reset and ready for another message.
    pub fn inflate_into(
        &mut self,
        payload: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let start_len = out.len();
        let result = self.feed(payload, start_len, limit, out).and_then(|ended| {
            if ended {
                Ok(true)
            } else {
                self.feed(&TRAILER, start_len, limit, out)
            }
        });
        match result {
            Ok(ended) => {
                // A final block ends the stream: the next message starts a
                // new one whatever was negotiated.
                if ended || self.no_context_takeover {
                    self.inner.reset(false);
                }
                Ok(())
            }
            Err(e) => {
                self.inner.reset(false);
                out.truncate(start_len);
                Err(e)
            }
        }
    }

    /// Inflates one message into a new buffer.
    pub fn inflate(&mut self, payload: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        self.inflate_into(payload, limit, &mut out)?;
        Ok(out)
    }

    /// Runs `input` through the inflater; `Ok(true)` when the stream ended.
    fn feed(
        &mut self,
        input: &[u8],
        start_len: usize,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, InflateError> {
        let start_in = self.inner.total_in();
        loop {
            let produced = out.len() - start_len;
            if out.len() == out.capacity() {
                // One byte past the limit is enough to detect the overflow.
                let allowed = limit.saturating_add(1).saturating_sub(produced);
                if allowed == 0 {
                    return Err(InflateError::TooBig { limit });
                }
                let step = produced
                    .clamp(256, MAX_GROWTH)
                    .max(input.len().min(MAX_GROWTH));
                out.reserve_exact(step.min(allowed));
            }
            let consumed_before =
                usize::try_from(self.inner.total_in() - start_in).unwrap_or(input.len());
            let rest = input.get(consumed_before..).unwrap_or_default();
            let before_out = out.len();
            let status = self
                .inner
                .decompress_vec(rest, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            if out.len() - start_len > limit {
                return Err(InflateError::TooBig { limit });
            }
            let consumed = usize::try_from(self.inner.total_in() - start_in).unwrap_or(input.len());
            match status {
                Status::StreamEnd => return Ok(true),
                Status::Ok | Status::BufError => {
                    let room_left = out.len() < out.capacity();
                    if consumed >= input.len() && room_left {
                        return Ok(false);
                    }
                    // Neither input taken nor output made despite room:
                    // zlib can go no further with what it was given.
                    if room_left && out.len() == before_out && consumed == consumed_before {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn rfc7692_hello() {
        let mut deflater = Deflater::new(6, 15, true);
        assert_eq!(
            deflater.compress(b"Hello").expect("deflate"),
            &hex("f2 48 cd c9 c9 07 00")[..]
        );
        // Reset between messages: the same bytes again.
        assert_eq!(
            deflater.compress(b"Hello").expect("deflate"),
            &hex("f2 48 cd c9 c9 07 00")[..]
        );
    }

    #[test]
    fn rfc7692_context_takeover() {
        let mut deflater = Deflater::new(6, 15, false);
        assert_eq!(
            deflater.compress(b"Hello").expect("deflate"),
            &hex("f2 48 cd c9 c9 07 00")[..]
        );
        assert_eq!(
            deflater.compress(b"Hello").expect("deflate"),
            &hex("f2 00 11 00 00")[..]
        );

        let mut inflater = Inflater::new(15, false);
        assert_eq!(
            inflater.inflate(&hex("f2 48 cd c9 c9 07 00"), 100),
            Ok(b"Hello".to_vec())
        );
        assert_eq!(
            inflater.inflate(&hex("f2 00 11 00 00"), 100),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn rfc7692_inflate_examples() {
        let cases = [
            ("fixed huffman", "f2 48 cd c9 c9 07 00"),
            ("stored block", "00 05 00 fa ff 48 65 6c 6c 6f 00"),
            ("bfinal set", "f3 48 cd c9 c9 07 00 00"),
            ("two blocks", "f2 48 05 00 00 00 ff ff ca c9 c9 07 00"),
        ];
        let mut inflater = Inflater::new(15, true);
        for (name, input) in cases {
            assert_eq!(
                inflater.inflate(&hex(input), 5),
                Ok(b"Hello".to_vec()),
                "{name}"
            );
        }
    }

    #[test]
    fn bfinal_resets_even_with_context_takeover() {
        let mut inflater = Inflater::new(15, false);
        assert_eq!(
            inflater.inflate(&hex("f3 48 cd c9 c9 07 00 00"), 5),
            Ok(b"Hello".to_vec())
        );
        assert_eq!(
            inflater.inflate(&hex("f2 48 cd c9 c9 07 00"), 5),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn empty_message() {
        let mut deflater = Deflater::new(6, 15, true);
        let compressed = deflater.compress(b"").expect("deflate").to_vec();
        assert_eq!(compressed, vec![0x00]);
        let mut inflater = Inflater::new(15, true);
        assert_eq!(inflater.inflate(&compressed, 0), Ok(Vec::new()));
        assert_eq!(inflater.inflate(&[], 0), Ok(Vec::new()));
    }

    fn sample(len: usize) -> Vec<u8> {
        // Repetitive but not trivial: words with a drifting counter.
        let mut out = Vec::with_capacity(len);
        let mut i = 0u32;
        while out.len() < len {
            out.extend_from_slice(format!("{{\"event\":\"tick\",\"n\":{i}}}").as_bytes());
            i = i.wrapping_mul(31).wrapping_add(7) % 5000;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn round_trip_every_window_size() {
        let payloads = [
            sample(0),
            sample(1),
            sample(300),
            sample(5000),
            sample(200_000),
        ];
        for bits in 8..=15u8 {
            for takeover in [false, true] {
                let mut deflater = Deflater::new(6, bits, !takeover);
                let mut inflater = Inflater::new(bits, !takeover);
                for payload in &payloads {
                    let compressed = deflater.compress(payload).expect("deflate").to_vec();
                    let inflated = inflater
                        .inflate(&compressed, payload.len())
                        .expect("inflate");
                    assert_eq!(&inflated, payload, "bits {bits} takeover {takeover}");
                }
            }
        }
    }

    #[test]
    fn small_window_output_readable_by_any_larger_window() {
        let payload = sample(50_000);
        for bits in 8..=15u8 {
            let compressed = Deflater::new(9, bits, true)
                .compress(&payload)
                .expect("deflate")
                .to_vec();
            for reader in bits.max(9)..=15 {
                let inflated = Inflater::new(reader, true).inflate(&compressed, payload.len());
                assert_eq!(
                    inflated.as_ref(),
                    Ok(&payload),
                    "written {bits} read {reader}"
                );
            }
        }
    }

    #[test]
    fn decompression_bomb_is_an_error() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = Deflater::new(9, 15, true)
            .compress(&zeros)
            .expect("deflate")
            .to_vec();
        assert!(bomb.len() < 16 * 1024);
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        assert_eq!(
            inflater.inflate_into(&bomb, 1024 * 1024, &mut out),
            Err(InflateError::TooBig { limit: 1024 * 1024 })
        );
        assert!(
            out.capacity() <= 1024 * 1024 + 1 + MAX_GROWTH,
            "capacity {}",
            out.capacity()
        );
        // The inflater is usable again.
        assert_eq!(
            inflater.inflate(&hex("f2 48 cd c9 c9 07 00"), 5),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn limit_is_exact() {
        let payload = sample(10_000);
        let compressed = Deflater::new(6, 15, true)
            .compress(&payload)
            .expect("deflate")
            .to_vec();
        let mut inflater = Inflater::new(15, true);
        assert_eq!(
            inflater.inflate(&compressed, 10_000).map(|v| v.len()),
            Ok(10_000)
        );
        assert_eq!(
            inflater.inflate(&compressed, 9_999),
            Err(InflateError::TooBig { limit: 9_999 })
        );
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let cases = [
            ("reserved block type", "ff ff ff"),
            ("bad stored length", "00 05 00 00 00 48"),
        ];
        let mut inflater = Inflater::new(15, true);
        for (name, input) in cases {
            assert_eq!(
                inflater.inflate(&hex(input), 1000),
                Err(InflateError::Corrupt),
                "{name}"
            );
            assert_eq!(
                inflater.inflate(&hex("f2 48 cd c9 c9 07 00"), 5),
                Ok(b"Hello".to_vec()),
                "{name}"
            );
        }
    }

    #[test]
    fn inflate_into_appends_and_truncates_on_error() {
        let mut inflater = Inflater::new(15, true);
        let mut out = b"ab".to_vec();
        inflater
            .inflate_into(&hex("f2 48 cd c9 c9 07 00"), 5, &mut out)
            .expect("inflate");
        assert_eq!(out, b"abHello");
        assert_eq!(
            inflater.inflate_into(&hex("ff ff"), 5, &mut out),
            Err(InflateError::Corrupt)
        );
        assert_eq!(out, b"abHello");
    }
}
