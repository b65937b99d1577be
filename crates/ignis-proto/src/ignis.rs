//! The Ignis application protocol on top of Socket.IO: its event names, default rooms, client
//! states and messages, shared by the server component and the client helper.

/// App-level keep-alive, server to client: `{time}`.
pub const EVENT_PING: &str = "ping";
/// The server-side connection event.
pub const EVENT_CONNECT: &str = "connection";
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

pub const ROOM_DEFAULT: &str = "io-default";
pub const ROOM_NOTIFICATION: &str = "io-notification";

/// The message of `unauthenticated` when the credentials are refused.
pub const MESSAGE_INVALID_TOKEN: &str = "Invalid token to authenticate! Please login again!";
/// The message of `unauthenticated` when authentication itself failed.
pub const MESSAGE_AUTH_FAILED: &str = "Failed to authenticate connection! Please login again!";

/// Where a client is in authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    Unauthorized,
    Authenticating,
    Authenticated,
}

impl ClientState {
    pub const ALL: [ClientState; 3] = [
        ClientState::Unauthorized,
        ClientState::Authenticating,
        ClientState::Authenticated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Unauthorized => "unauthorized",
            ClientState::Authenticating => "authenticating",
            ClientState::Authenticated => "authenticated",
        }
    }

    /// Exact, case-sensitive membership, as the original's `isValid`.
    pub fn is_valid(s: &str) -> bool {
        Self::ALL.iter().any(|state| state.as_str() == s)
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
