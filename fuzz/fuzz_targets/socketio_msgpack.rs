//! Arbitrary binary messages from a peer into `decode_msgpack`.
//!
//! Checked: no panic; every decoded packet encodes, and what it encodes to decodes to an equal
//! packet that encodes to the same bytes.
#![no_main]

use ignis_proto::socketio::{decode_msgpack, encode_msgpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = decode_msgpack(&data.to_vec().into()) else {
        return;
    };
    let encoded = encode_msgpack(&packet).expect("a decoded packet encodes");
    let again = decode_msgpack(&encoded).expect("re-encoded packet decodes");
    assert_eq!(again, packet);
    assert_eq!(encode_msgpack(&again).expect("encodes again"), encoded);
});
