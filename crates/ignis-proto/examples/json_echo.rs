//! The JSON codec's share of one echo event of the benchmark, in a loop: run it under
//! `valgrind --tool=callgrind` and divide by the iteration count to compare instruction counts
//! between changes without starting the server.

use std::hint::black_box;

use ignis_proto::Value;
use ignis_proto::socketio::{JsonDecoder, encode_ack_into, encode_event_into};
use ignis_proto::value::Map;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mut decoder = JsonDecoder::new();
    let mut total = 0;
    for _ in 0..rounds {
        let packet = decoder
            .decode_text(black_box(r#"21["echo","hello from ignis-bench"]"#))
            .expect("the echo event decodes");
        total += packet.map_or(0, |p| p.nsp.len());

        let mut response = Map::with_capacity(2);
        response.insert("original", "hello from ignis-bench");
        response.insert("timestamp", "2026-11-26T21:40:00.000Z");
        let mut out = Vec::with_capacity(128);
        encode_event_into(
            &mut out,
            "/",
            black_box("echo:response"),
            &[Value::Map(response)],
            None,
        )
        .expect("the response encodes");
        total += out.len();

        let mut ok = Map::with_capacity(1);
        ok.insert("ok", true);
        let mut out = Vec::with_capacity(128);
        encode_ack_into(&mut out, "/", black_box(1), &[Value::Map(ok)]).expect("the ack encodes");
        total += out.len();
    }
    println!("{total}");
}
