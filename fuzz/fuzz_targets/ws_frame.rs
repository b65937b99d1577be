//! Arbitrary bytes from a client, in arbitrary chunks, into a server-role
//! `ignis_ws::Decoder`, the way the engine drives it: append what was read,
//! decode until no progress, keep the rest.
//!
//! Checked: no panic; an incomplete frame consumes nothing and never asks for
//! more than the message limit allows; text is UTF-8; and the messages and
//! the error are the same whatever the chunking.
#![no_main]

use ignis_ws::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use ignis_ws::{Decoder, Inflater, Message, ProtocolError, Role};
use libfuzzer_sys::fuzz_target;

const LIMITS: [usize; 4] = [0, 16, 1024, 64 * 1024];

fuzz_target!(|data: &[u8]| {
    let [settings, seed, stream @ ..] = data else {
        return;
    };
    let compression = settings & 1 != 0;
    let max = LIMITS[usize::from((settings >> 1) & 3)];
    let max_chunk = usize::from(settings >> 3) + 1;

    let whole = run(stream, compression, max, || stream.len().max(1));
    let mut rng = u32::from(*seed) | 0x100;
    let chunked = run(stream, compression, max, || {
        // xorshift32: a cheap deterministic chunking derived from the input.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng as usize % max_chunk + 1
    });
    assert_eq!(whole, chunked);
});

fn run(
    stream: &[u8],
    compression: bool,
    max: usize,
    mut next_chunk: impl FnMut() -> usize,
) -> (Vec<Message>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(Role::Server, max).with_compression(compression);
    let mut inflater = Inflater::new(15, true);
    let mut pending: Vec<u8> = Vec::new();
    let mut input = stream;
    let mut messages = Vec::new();
    while !input.is_empty() {
        let (chunk, rest) = input.split_at(next_chunk().min(input.len()));
        pending.extend_from_slice(chunk);
        input = rest;
        loop {
            let decoded = match decoder.decode(&pending) {
                Ok(decoded) => decoded,
                Err(error) => return (messages, Some(error)),
            };
            assert!(decoded.consumed <= pending.len());
            if decoded.consumed == 0 {
                assert!(decoded.message.is_none());
                assert!(decoded.needed > pending.len());
                assert!(decoded.needed <= max.max(MAX_CONTROL_PAYLOAD) + MAX_HEADER_LEN);
                break;
            }
            pending.drain(..decoded.consumed);
            let Some(message) = decoded.message else {
                continue;
            };
            let message = match message {
                Message::Compressed(compressed) => match compressed.inflate(&mut inflater) {
                    Ok(message) => message,
                    Err(error) => return (messages, Some(error)),
                },
                other => other,
            };
            match &message {
                Message::Text(text) => assert!(std::str::from_utf8(text).is_ok()),
                Message::Binary(data) => assert!(data.len() <= max),
                Message::Close(Some(close)) => assert!(close.code.is_valid_on_wire()),
                _ => {}
            }
            let closed = matches!(message, Message::Close(_));
            messages.push(message);
            if closed {
                return (messages, None);
            }
        }
    }
    (messages, None)
}
