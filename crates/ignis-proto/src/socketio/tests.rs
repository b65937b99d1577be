//! Tests of both Socket.IO parsers.

mod generate;
mod json;
mod msgpack;
mod roundtrip;
