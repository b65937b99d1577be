//! Arbitrary messages from a peer into the default parser's `JsonDecoder`, the way the server
//! drives it: one decoder for the whole connection, text and binary messages in any order.
//!
//! The input is split at 0x00 bytes into messages; a message starting with `B` is binary (the
//! rest of it), any other is text (invalid UTF-8 replaced, as it never reaches the decoder).
//! The first byte chooses the attachment limit.
//!
//! Checked: no panic; every decoded packet encodes, and what it encodes to decodes to an equal
//! packet that encodes to the same messages.
#![no_main]

use ignis_proto::socketio::{JsonDecoder, Packet, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [limit, messages @ ..] = data else {
        return;
    };
    let mut decoder = JsonDecoder::with_max_attachments(usize::from(limit % 16));
    for message in messages.split(|&b| b == 0) {
        let result = match message.strip_prefix(b"B") {
            Some(binary) => decoder.decode_binary(binary.to_vec().into()),
            None => decoder.decode_text(&String::from_utf8_lossy(message)),
        };
        if let Ok(Some(packet)) = result {
            check_round_trip(&packet);
        }
    }
});

fn check_round_trip(packet: &Packet) {
    let encoded = encode(packet).expect("a decoded packet encodes");
    let mut decoder = JsonDecoder::with_max_attachments(usize::MAX);
    let mut again = decoder
        .decode_text(&encoded.text)
        .expect("re-encoded text decodes");
    for attachment in &encoded.attachments {
        assert!(
            again.is_none(),
            "packet complete before its last attachment"
        );
        again = decoder
            .decode_binary(attachment.clone())
            .expect("re-encoded attachment decodes");
    }
    let again = again.expect("packet complete after its last attachment");
    assert_eq!(&again, packet);
    assert_eq!(encode(&again).expect("encodes again"), encoded);
}
