//! Polling payloads and single text packets: decoding never panics, and whatever decodes
//! re-encodes to a payload that decodes to the same packets.
#![no_main]

use ignis_proto::engineio::{self, Packet, Str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(packets) = engineio::decode_payload(body.clone(), 64) {
        let mut out = Vec::new();
        engineio::encode_payload(&packets, &mut out);
        let again = engineio::decode_payload(out.into(), 64).expect("re-encoded payload decodes");
        assert_eq!(packets, again);
    }
    if let Ok(text) = Str::from_utf8(body) {
        let _ = Packet::decode_text(text);
    }
});
