//! The names the Ignis Socket.IO system agrees on: event names, default rooms, client states
//! and the component's binding keys (spec §2.1, §2.2, §10.1).
//!
//! They live here, in the crate every other Ignis crate may depend on, so that the server
//! component and the client helper share one definition.

use std::fmt;
use std::str::FromStr;

/// App-level keep-alive event, server to client.
pub const EVENT_PING: &str = "ping";
/// Server-side connection event (the client side calls it `connect`).
pub const EVENT_CONNECT: &str = "connection";
/// Both sides.
pub const EVENT_DISCONNECT: &str = "disconnect";
/// Client to server: join rooms, payload `{rooms: [..]}`.
pub const EVENT_JOIN: &str = "join";
/// Client to server: leave rooms, payload `{rooms: [..]}`.
pub const EVENT_LEAVE: &str = "leave";
/// Client to server: ask to be authenticated.
pub const EVENT_AUTHENTICATE: &str = "authenticate";
/// Server to client: authentication succeeded, payload `{id, time}`.
pub const EVENT_AUTHENTICATED: &str = "authenticated";
/// Server to client: authentication failed, payload `{message, time}`. The reference names the
/// constant without the final "D"; the value has it.
pub const EVENT_UNAUTHENTICATE: &str = "unauthenticated";
/// Default room every authenticated client joins.
pub const ROOM_DEFAULT: &str = "io-default";
/// Second default room every authenticated client joins.
pub const ROOM_NOTIFICATION: &str = "io-notification";

/// Binding keys of the Ignis Socket.IO component (`SocketIOBindingKeys`).
pub mod binding_keys {
    /// The server helper, bound once the post-start hook succeeded.
    pub const SOCKET_IO_INSTANCE: &str = "@app/socket-io/instance";
    /// Socket.IO server options.
    pub const SERVER_OPTIONS: &str = "@app/socket-io/server-options";
    /// The Redis connection helper.
    pub const REDIS_CONNECTION: &str = "@app/socket-io/redis-connection";
    /// The authenticate handler.
    pub const AUTHENTICATE_HANDLER: &str = "@app/socket-io/authenticate-handler";
    /// The room validation handler.
    pub const VALIDATE_ROOM_HANDLER: &str = "@app/socket-io/validate-room-handler";
    /// The client-connected handler.
    pub const CLIENT_CONNECTED_HANDLER: &str = "@app/socket-io/client-connected-handler";
}

/// Where a connection stands in the Ignis authentication flow (`SocketIOClientStates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Connected or not, but not authenticated.
    Unauthorized,
    /// `authenticate` was sent; no answer yet.
    Authenticating,
    /// The server answered `authenticated`.
    Authenticated,
}

impl ClientState {
    /// Every state, in the reference's `SCHEME_SET` order.
    pub const ALL: [ClientState; 3] = [
        ClientState::Unauthorized,
        ClientState::Authenticating,
        ClientState::Authenticated,
    ];

    /// The wire and log form: `unauthorized`, `authenticating` or `authenticated`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientState::Unauthorized => "unauthorized",
            ClientState::Authenticating => "authenticating",
            ClientState::Authenticated => "authenticated",
        }
    }

    /// Whether `s` is exactly one of the three state strings (case-sensitive).
    pub fn is_valid(s: &str) -> bool {
        s.parse::<ClientState>().is_ok()
    }
}

impl fmt::Display for ClientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not one of the three state names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client state {0:?}")]
pub struct InvalidState(pub String);

impl FromStr for ClientState {
    type Err = InvalidState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| InvalidState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_strings_round_trip() {
        for state in ClientState::ALL {
            assert_eq!(state.as_str().parse::<ClientState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
    }

    #[test]
    fn is_valid_is_exact() {
        let cases = [
            ("unauthorized", true),
            ("authenticating", true),
            ("authenticated", true),
            ("invalid", false),
            ("", false),
            ("UNAUTHORIZED", false),
            ("Authenticated", false),
            (" authenticated", false),
            ("authenticated ", false),
        ];
        for (input, expected) in cases {
            assert_eq!(ClientState::is_valid(input), expected, "{input:?}");
        }
    }
}
