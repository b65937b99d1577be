//! The msgpack parser (npm `socket.io-msgpack-parser` 3, built on `notepack.io`): every packet is
//! one binary message holding a msgpack map `{type, data, nsp, id}`. Binary values are msgpack
//! `bin` in place, so there are no BINARY_EVENT / BINARY_ACK packets and no attachments. The
//! values themselves are read and written by [`crate::notepack`].

mod decode;
mod encode;

pub use decode::decode_msgpack;
pub use encode::encode_msgpack;
