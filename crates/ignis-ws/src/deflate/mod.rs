//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! Negotiation follows the `ws` library's `PerMessageDeflate` so that Node
//! clients and servers see the same answers from us as from a Node peer.
//!
//! The Ignis server keeps no compression state per connection: it runs with
//! both [`DeflateConfig::server_no_context_takeover`] and
//! [`DeflateConfig::client_no_context_takeover`] set. The server may answer
//! `client_no_context_takeover` even when the client did not offer it (RFC
//! 7692 §7.1.1.2) and `ws` does exactly that when configured so; with both
//! flags every message is compressed and inflated from a fresh state, so one
//! [`Deflater`] and one [`Inflater`] per thread serve every connection, and a
//! compressed broadcast frame is built once per distinct negotiated server
//! window size.

mod codec;
mod header;
mod negotiate;

pub use codec::{DeflateError, Deflater, InflateError, Inflater};
pub use negotiate::{Accepted, accept_offer, offer_header, parse_response};

use crate::decoder::Role;

/// The token that names the extension in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Window size used when none was negotiated (RFC 7692 §7.1.2).
pub const DEFAULT_WINDOW_BITS: u8 = 15;

/// Local permessage-deflate settings, the counterpart of the `ws` library's
/// `perMessageDeflate` options.
///
/// The `ws` options are three-valued (`true`/number, `false`, unset); here
/// `false`/`None` mean "unset": the peer's request is accepted and echoed
/// but nothing is imposed. `ws`'s explicit `false` (refuse an offer that
/// asks for the feature) has no counterpart because no Ignis component
/// needs to refuse a peer that wants less state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Messages shorter than this are sent uncompressed when the sender has
    /// no context takeover (`ws` default 1024).
    pub threshold: usize,
    /// Server side: always answer `server_no_context_takeover`.
    /// Client side: offer it.
    pub server_no_context_takeover: bool,
    /// Server side: always answer `client_no_context_takeover`.
    /// Client side: offer it.
    pub client_no_context_takeover: bool,
    /// Server side: answer this window size (offers asking for a smaller
    /// server window are skipped). Client side: request it.
    pub server_max_window_bits: Option<u8>,
    /// Server side: answer this client window size (offers without
    /// `client_max_window_bits` are skipped, as the client did not declare
    /// support). Client side: offer this value; `None` offers the bare
    /// parameter, as `ws` does by default.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level 0–9.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            threshold: 1024,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
        }
    }
}

impl DeflateConfig {
    /// The settings the Ignis server uses: no compression state kept between
    /// messages in either direction.
    pub fn stateless() -> Self {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        }
    }

    /// Whether a message of `payload_len` bytes sent by `sender` should be
    /// compressed. Like `ws`, the threshold only applies when the sender
    /// has no context takeover: with a shared window even small messages
    /// compress well.
    pub fn should_compress(
        &self,
        negotiated: &Negotiated,
        sender: Role,
        payload_len: usize,
    ) -> bool {
        !negotiated.no_context_takeover(sender) || payload_len >= self.threshold
    }
}

/// The parameters both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Negotiated {
    /// The server resets its compression state after every message (no history between
    /// messages).
    pub server_no_context_takeover: bool,
    /// The client resets its compression state after every message.
    pub client_no_context_takeover: bool,
    /// 8–15 when negotiated.
    pub server_max_window_bits: Option<u8>,
    /// 8–15 when negotiated.
    pub client_max_window_bits: Option<u8>,
}

impl Negotiated {
    /// Whether messages sent by `sender` start from a fresh compression state.
    pub fn no_context_takeover(&self, sender: Role) -> bool {
        match sender {
            Role::Server => self.server_no_context_takeover,
            Role::Client => self.client_no_context_takeover,
        }
    }

    /// LZ77 window (log2) that `sender` compresses with.
    pub fn window_bits(&self, sender: Role) -> u8 {
        let bits = match sender {
            Role::Server => self.server_max_window_bits,
            Role::Client => self.client_max_window_bits,
        };
        bits.unwrap_or(DEFAULT_WINDOW_BITS)
    }

    /// A deflater for the messages `local` sends.
    pub fn deflater(&self, local: Role, level: u32) -> Deflater {
        Deflater::new(
            level,
            self.window_bits(local),
            self.no_context_takeover(local),
        )
    }

    /// An inflater for the messages the peer of `local` sends.
    pub fn inflater(&self, local: Role) -> Inflater {
        let peer = local.peer();
        Inflater::new(self.window_bits(peer), self.no_context_takeover(peer))
    }
}

/// Why an extension header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The header breaks the RFC 7692 grammar at this character.
    #[error("unexpected character at index {index} in Sec-WebSocket-Extensions")]
    UnexpectedCharacter {
        /// The byte offset of the character in the header value.
        index: usize,
    },
    /// The header ends in the middle of an offer.
    #[error("unexpected end of Sec-WebSocket-Extensions")]
    UnexpectedEnd,
    /// The header is longer than the parser accepts, so a client cannot make it do unbounded work.
    #[error("Sec-WebSocket-Extensions is too long")]
    HeaderTooLong,
    /// An offer gives the named parameter twice.
    #[error("parameter \"{0}\" must have only a single value")]
    DuplicateParameter(String),
    /// The named parameter has a value it does not allow (window bits outside 8-15, for example).
    #[error("invalid value for parameter \"{0}\"")]
    InvalidParameterValue(String),
    /// An offer has a parameter permessage-deflate does not define.
    #[error("unknown parameter \"{0}\"")]
    UnknownParameter(String),
    /// Every offer was valid but none can be accepted with the server's settings.
    #[error("none of the extension offers can be accepted")]
    NoAcceptableOffer,
    /// Client side: the server's response names an extension the client did not offer.
    #[error("the server answered an extension that was not requested")]
    UnexpectedExtension,
}
