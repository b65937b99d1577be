//! Engine.IO v4 and Socket.IO v5 codecs.
//!
//! Everything in this crate is a pure function (or a small state machine) over bytes: no I/O, no
//! runtime, no clocks. The server (`ignis-engine`, `ignis-socketio`) and the client drive these
//! codecs; tests and fuzzers drive them directly.

pub mod engineio;
pub mod ignis;
pub mod notepack;
pub mod socketio;
pub mod value;

#[cfg(test)]
mod test_rng;

pub use value::Value;
