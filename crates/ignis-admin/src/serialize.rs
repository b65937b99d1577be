//! Sockets in the shape the UI reads (`SerializedSocket` of the reference).

use ignis_socketio::engine::TransportKind;
use ignis_socketio::proto::value::Map;
use ignis_socketio::{RemoteSocket, Socket, Value};

/// Characters of the connection id shown: enough to tell clients apart, too few to act for one
/// (the whole id lets its holder send over HTTP long-polling in the client's name).
const CLIENT_ID_CHARS: usize = 12;

pub(crate) fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Polling => "polling",
        TransportKind::WebSocket => "websocket",
    }
}

/// A local socket.
pub(crate) fn socket(socket: &Socket) -> Value {
    let client = socket.client_id();
    let client = client.as_str();
    let mut m = Map::with_capacity(7);
    m.insert("id", socket.id().as_str());
    m.insert("clientId", &client[..client.len().min(CLIENT_ID_CHARS)]);
    m.insert("transport", transport_name(socket.transport()));
    m.insert("nsp", socket.namespace().name());
    m.insert("data", socket.data());
    m.insert("handshake", handshake(socket.handshake().to_value()));
    m.insert(
        "rooms",
        Value::Array(socket.rooms().iter().map(|r| Value::from(&**r)).collect()),
    );
    Value::Map(m)
}

/// A socket of another node, as `fetch_sockets` has it: no transport, and the socket stands
/// for its client.
pub(crate) fn remote_socket(nsp: &str, socket: &RemoteSocket) -> Value {
    let id = socket.id.as_str();
    let mut m = Map::with_capacity(6);
    m.insert("id", id);
    m.insert("clientId", &id[..id.len().min(CLIENT_ID_CHARS)]);
    m.insert("nsp", nsp);
    m.insert("data", socket.data.clone());
    m.insert("handshake", handshake(socket.handshake.clone()));
    m.insert(
        "rooms",
        Value::Array(socket.rooms.iter().map(|r| Value::from(&**r)).collect()),
    );
    Value::Map(m)
}

/// The handshake without its CONNECT auth (the admin UI's own holds its password), with the
/// address a proxy saw first, as the reference shows it.
fn handshake(mut value: Value) -> Value {
    let Some(m) = value.as_map_mut() else {
        return value;
    };
    m.remove("auth");
    let forwarded = m.get("headers").and_then(|h| {
        h.get("cf-connecting-ip")
            .or_else(|| h.get("x-forwarded-for"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(address) = forwarded {
        m.insert("address", address);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_loses_its_auth_and_shows_the_forwarded_address() {
        let mut headers = Map::new();
        headers.insert("x-forwarded-for", "203.0.113.7");
        let mut m = Map::new();
        m.insert("headers", Value::Map(headers));
        m.insert("address", "127.0.0.1");
        let mut auth = Map::new();
        auth.insert("password", "s3cret");
        m.insert("auth", Value::Map(auth));
        let out = handshake(Value::Map(m));
        assert!(out.get("auth").is_none());
        assert_eq!(
            out.get("address").and_then(Value::as_str),
            Some("203.0.113.7")
        );
    }
}
