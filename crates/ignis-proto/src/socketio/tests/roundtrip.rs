//! decode(encode(p)) == p for generated packets, with both parsers.

use super::generate::{Options, Rng, packet};
use crate::socketio::{JsonDecoder, decode_msgpack, encode, encode_msgpack};

#[test]
fn json_round_trip() {
    let mut decoder = JsonDecoder::with_max_attachments(usize::MAX);
    let opts = Options {
        binary: true,
        non_finite: false,
    };
    let mut binary_packets = 0;
    for seed in 0..3000 {
        let mut rng = Rng::new(seed);
        let original = packet(&mut rng, opts);
        let encoded = encode(&original).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        binary_packets += usize::from(!encoded.attachments.is_empty());
        let mut decoded = decoder.decode_text(&encoded.text).unwrap_or_else(|e| {
            panic!("seed {seed}: {e} in {}", encoded.text);
        });
        for attachment in &encoded.attachments {
            assert!(decoded.is_none(), "seed {seed}");
            decoded = decoder.decode_binary(attachment.clone()).unwrap();
        }
        assert_eq!(
            decoded.as_ref(),
            Some(&original),
            "seed {seed}: {}",
            encoded.text
        );
    }
    assert!(
        binary_packets > 100,
        "only {binary_packets} binary packets generated"
    );
}

#[test]
fn msgpack_round_trip() {
    let opts = Options {
        binary: true,
        non_finite: true,
    };
    for seed in 0..3000 {
        let mut rng = Rng::new(seed);
        let original = packet(&mut rng, opts);
        let encoded = encode_msgpack(&original).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let decoded = decode_msgpack(&encoded).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(decoded, original, "seed {seed}");
        assert_eq!(encode_msgpack(&decoded).unwrap(), encoded, "seed {seed}");
    }
}
