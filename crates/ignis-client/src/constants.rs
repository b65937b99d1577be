//! The names the Ignis Socket.IO system agrees on: event names, default rooms, client states
//! and the component's binding keys (spec §2.1, §2.2, §10.1).
//!
//! They are defined once, in `ignis_proto::ignis`, which the server component uses too; this
//! module re-exports them for users of the client.

pub use ignis_proto::ignis::{
    ClientState, EVENT_AUTHENTICATE, EVENT_AUTHENTICATED, EVENT_CONNECT, EVENT_DISCONNECT,
    EVENT_JOIN, EVENT_LEAVE, EVENT_PING, EVENT_UNAUTHENTICATE, InvalidState, ROOM_DEFAULT,
    ROOM_NOTIFICATION, binding_keys,
};

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
