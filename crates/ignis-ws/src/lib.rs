//! WebSocket framing (RFC 6455), the opening handshake and permessage-deflate
//! (RFC 7692), as pure functions over bytes: no I/O, no runtime.
//!
//! Why not an existing WebSocket crate: the Engine.IO server needs
//!
//! * broadcast frames built **once** and the same bytes written to thousands
//!   of sockets. Server frames are unmasked, so a pre-built frame
//!   ([`server_frame`], [`server_frame_compressed`]) is shareable as [`bytes::Bytes`];
//! * tiny per-connection state (the budget is 4 KiB of RSS per idle
//!   connection): the [`Decoder`] holds no read buffer, only a few words
//!   plus a heap block while a fragmented message is in flight, and the
//!   [`Deflater`]/[`Inflater`] live per thread, not per connection;
//! * permessage-deflate negotiated exactly like the Node `ws` library, which
//!   Socket.IO's Node server uses.
//!
//! ```
//! use ignis_ws::{Decoder, Message, OpCode, Role, encode_frame, server_frame};
//!
//! // Server side: a pre-built frame for every recipient of a broadcast.
//! let frame = server_frame(OpCode::Text, b"Hello");
//! assert_eq!(&frame[..], b"\x81\x05Hello");
//!
//! // A client's masked frame, decoded by the server.
//! let incoming = encode_frame(OpCode::Text, b"Hello", false, Some([0x37, 0xfa, 0x21, 0x3d]));
//! let mut decoder = Decoder::new(Role::Server, 1 << 20);
//! let decoded = decoder.decode(&incoming)?;
//! assert_eq!(decoded.consumed, incoming.len());
//! assert_eq!(decoded.message, Some(Message::Text("Hello".into())));
//!
//! // An incomplete frame consumes nothing: keep the bytes and read more.
//! let decoded = decoder.decode(&incoming[..4])?;
//! assert_eq!((decoded.consumed, decoded.message), (0, None));
//! # Ok::<(), ignis_ws::ProtocolError>(())
//! ```
//!
//! Compression with the settings the Ignis server uses:
//!
//! ```
//! use ignis_ws::deflate::{DeflateConfig, accept_offer};
//! use ignis_ws::{Decoder, Message, OpCode, Role, encode_frame, server_frame_compressed};
//!
//! let config = DeflateConfig::stateless();
//! let accepted = accept_offer(b"permessage-deflate; client_max_window_bits", &config)
//!     .expect("valid header")
//!     .expect("client offered permessage-deflate");
//! assert_eq!(
//!     accepted.header,
//!     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
//! );
//!
//! // Per thread, shared by every connection with these parameters.
//! let mut deflater = accepted.params.deflater(Role::Server, config.level);
//! let mut inflater = accepted.params.inflater(Role::Server);
//! let frame = server_frame_compressed(OpCode::Text, b"Hello", &mut deflater).expect("deflate");
//! assert_eq!(&frame[..], b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00");
//!
//! // The client's compressed message arrives still compressed.
//! let mut client_deflater = accepted.params.deflater(Role::Client, 6);
//! let compressed = client_deflater.compress(b"Hi there").expect("deflate").to_vec();
//! let incoming = encode_frame(OpCode::Text, &compressed, true, Some([1, 2, 3, 4]));
//! let mut decoder = Decoder::new(Role::Server, 1 << 20).with_compression(true);
//! let Some(Message::Compressed(message)) = decoder.decode(&incoming)?.message else {
//!     panic!("expected a compressed message");
//! };
//! assert_eq!(message.inflate(&mut inflater)?, Message::Text("Hi there".into()));
//! # Ok::<(), ignis_ws::ProtocolError>(())
//! ```

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod frame;
pub mod handshake;

pub use close::{CloseCode, CloseFrame, encode_close};
pub use decoder::{CompressedMessage, Decoded, Decoder, Message, ProtocolError, Role};
pub use deflate::{DeflateConfig, Deflater, Inflater, Negotiated};
pub use frame::{OpCode, encode_frame, encode_frame_header, server_frame, server_frame_compressed};
pub use handshake::{HandshakeError, accept_key, generate_key, validate_request, verify_accept};
