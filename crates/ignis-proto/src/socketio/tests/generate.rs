//! A small deterministic generator of packets, for round-trip properties.

use bytes::Bytes;

use crate::socketio::{EventName, Packet, PacketKind};
use crate::value::{Map, Value};

/// xorshift64*: deterministic, so a failure reproduces from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the generated values may contain.
#[derive(Clone, Copy)]
pub(crate) struct Options {
    /// `Value::Bytes` in event and ack arguments.
    pub binary: bool,
    /// NaN and infinities.
    pub non_finite: bool,
}

const STRINGS: &[&str] = &[
    "",
    "a",
    "hello",
    "é\u{1F600}",
    "quote\"back\\slash\n",
    "/admin,",
    "_placeholder",
];
const NAMESPACES: &[&str] = &["/", "/admin", "/a/b", "/ünï", "/with space"];

fn string(rng: &mut Rng) -> String {
    if rng.below(4) == 0 {
        "x".repeat(rng.below(300) as usize)
    } else {
        (*rng.pick(STRINGS)).to_owned()
    }
}

pub(crate) fn value(rng: &mut Rng, depth: usize, opts: Options) -> Value {
    let leaf_only = depth == 0;
    match rng.below(if leaf_only { 9 } else { 11 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::Int(*rng.pick(&[0, 1, -1, 127, 128, -33, 65_536, i64::MIN, i64::MAX])),
        3 => Value::Int(rng.next() as i64),
        4 => Value::UInt(rng.next() | (1 << 63)),
        5 => {
            let choices = [0.5, -2.25, 1e300, -0.0, 2.0, f64::NAN, f64::INFINITY];
            let n = if opts.non_finite {
                choices.len()
            } else {
                choices.len() - 2
            };
            Value::Float(choices[rng.below(n as u64) as usize])
        }
        6 | 7 => Value::Str(string(rng)),
        8 if opts.binary => {
            let len = rng.below(40) as usize;
            Value::Bytes(Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()))
        }
        8 => Value::Str(string(rng)),
        9 => {
            let len = rng.below(5);
            Value::Array((0..len).map(|_| value(rng, depth - 1, opts)).collect())
        }
        _ => {
            let len = rng.below(5);
            let mut map = Map::new();
            for _ in 0..len {
                // "_placeholder" is not used as a key: next to binary it is ambiguous on the wire.
                let key = string(rng).replace("_placeholder", "p");
                map.insert(key, value(rng, depth - 1, opts));
            }
            Value::Map(map)
        }
    }
}

fn object(rng: &mut Rng, opts: Options) -> Value {
    let mut map = Map::new();
    for _ in 0..rng.below(4) {
        map.insert(
            string(rng).replace("_placeholder", "p"),
            value(rng, 3, opts),
        );
    }
    Value::Map(map)
}

pub(crate) fn packet(rng: &mut Rng, opts: Options) -> Packet {
    let nsp = (*rng.pick(NAMESPACES)).to_owned();
    let args = |rng: &mut Rng| {
        (0..rng.below(5))
            .map(|_| value(rng, 4, opts))
            .collect::<Vec<_>>()
    };
    let kind = match rng.below(6) {
        0 => PacketKind::Connect(None),
        1 => PacketKind::Connect(Some(object(
            rng,
            Options {
                binary: false,
                ..opts
            },
        ))),
        2 => PacketKind::Disconnect,
        3 => {
            let event = match rng.below(3) {
                0 => EventName::from(rng.next() as i64),
                _ => EventName::new(string(rng)),
            };
            let id = (rng.below(2) == 0).then(|| rng.next() >> rng.below(64));
            PacketKind::Event {
                event,
                args: args(rng),
                id,
            }
        }
        4 => PacketKind::Ack {
            args: args(rng),
            id: rng.next() >> rng.below(64),
        },
        _ => {
            if rng.below(2) == 0 {
                PacketKind::ConnectError(Value::Str(string(rng)))
            } else {
                PacketKind::ConnectError(object(
                    rng,
                    Options {
                        binary: false,
                        ..opts
                    },
                ))
            }
        }
    };
    Packet {
        nsp: nsp.into(),
        kind,
    }
}
