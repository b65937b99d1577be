//! The engine over HTTP: routing of its requests ([`router`]), the direct path that answers a
//! WebSocket handshake without hyper ([`direct`]), CORS ([`cors`]), response and request bodies
//! ([`body`], [`serve`]'s deadline), and the accept loop ([`accept`]).

mod accept;
pub(crate) mod body;
pub(crate) mod cors;
mod direct;
pub(crate) mod router;
pub(crate) mod serve;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use accept::{Site, serve_site};
pub use body::ResponseBody;
pub use router::SESSION_ID_HEADER;
pub use serve::{HttpLimits, TimedBody, serve_http};
#[cfg(feature = "tls")]
pub use tls::{ServerTls, TlsError};
