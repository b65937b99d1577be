//! The Ignis application protocol on top of Socket.IO: its event names, default rooms, client
//! states and messages, shared by the server component and the client helper.

/// App-level keep-alive, server to client: `{time}`.
pub const EVENT_PING: &str = "ping";
/// The server-side connection event.
pub const EVENT_CONNECT: &str = "connection";
/// The disconnection event, on both sides; its argument is the reason.
pub const EVENT_DISCONNECT: &str = "disconnect";
/// Client to server: `{rooms: [..]}`.
pub const EVENT_JOIN: &str = "join";
/// Client to server: `{rooms: [..]}`.
pub const EVENT_LEAVE: &str = "leave";
/// Client to server: asks to be authenticated.
pub const EVENT_AUTHENTICATE: &str = "authenticate";
/// Server to client: `{id, time}`.
pub const EVENT_AUTHENTICATED: &str = "authenticated";
/// Server to client: `{message, time}` (the original's constant name lacks the "D").
pub const EVENT_UNAUTHENTICATE: &str = "unauthenticated";

/// The binding keys of the Ignis Socket.IO component (`SocketIOBindingKeys`).
pub mod binding_keys {
    /// The server helper, bound once the post-start hook succeeded.
    pub const SOCKET_IO_INSTANCE: &str = "@app/socket-io/instance";
    /// The Socket.IO server options, merged over the component's defaults.
    pub const SERVER_OPTIONS: &str = "@app/socket-io/server-options";
    /// The Redis connection the adapter and the emitter use (required).
    pub const REDIS_CONNECTION: &str = "@app/socket-io/redis-connection";
    /// The function that decides whether a socket's `authenticate` succeeds (required).
    pub const AUTHENTICATE_HANDLER: &str = "@app/socket-io/authenticate-handler";
    /// The function that filters the rooms of a `join` request; without it, every join is refused.
    pub const VALIDATE_ROOM_HANDLER: &str = "@app/socket-io/validate-room-handler";
    /// The function called once a socket is authenticated.
    pub const CLIENT_CONNECTED_HANDLER: &str = "@app/socket-io/client-connected-handler";
}

/// The first default room every authenticated socket joins.
pub const ROOM_DEFAULT: &str = "io-default";
/// The second default room every authenticated socket joins, for notifications.
pub const ROOM_NOTIFICATION: &str = "io-notification";

/// The message of `unauthenticated` when the credentials are refused.
pub const MESSAGE_INVALID_TOKEN: &str = "Invalid token to authenticate! Please login again!";
/// The message of `unauthenticated` when authentication itself failed.
pub const MESSAGE_AUTH_FAILED: &str = "Failed to authenticate connection! Please login again!";

/// Where a client is in authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Connected, not yet authenticated: only `authenticate` is accepted.
    Unauthorized,
    /// The authenticate handler is running.
    Authenticating,
    /// Authenticated: the socket has joined its rooms and may `join` and `leave`.
    Authenticated,
}

impl ClientState {
    /// The three states, in the order a client goes through them.
    pub const ALL: [ClientState; 3] = [
        ClientState::Unauthorized,
        ClientState::Authenticating,
        ClientState::Authenticated,
    ];

    /// The lower-case name the protocol uses (`unauthorized`, `authenticating`, `authenticated`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientState::Unauthorized => "unauthorized",
            ClientState::Authenticating => "authenticating",
            ClientState::Authenticated => "authenticated",
        }
    }

    /// Exact, case-sensitive membership, as the original's `isValid`.
    pub fn is_valid(s: &str) -> bool {
        s.parse::<ClientState>().is_ok()
    }
}

/// The string is not one of the three state names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client state {0:?}")]
pub struct InvalidState(pub String);

impl std::str::FromStr for ClientState {
    type Err = InvalidState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| InvalidState(s.to_owned()))
    }
}

impl std::fmt::Display for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_validate_exactly() {
        for state in ClientState::ALL {
            assert!(ClientState::is_valid(state.as_str()));
        }
        for bad in ["invalid", "", "UNAUTHORIZED", "Authenticated"] {
            assert!(!ClientState::is_valid(bad));
        }
    }
}
