//! The Engine.IO handler of a Socket.IO server ([`IoHandler`]): where a message from a client
//! becomes a Socket.IO packet (decoding, attachments included), is routed to the socket of its
//! namespace, or joins a namespace (CONNECT, middlewares, recovery). What is sent back goes out
//! through [`crate::outbound`].

use std::sync::{Arc, OnceLock};

use ignis_engine::{CloseReason, Handler, RequestInfo, Sid, TransportKind};
use ignis_proto::Value;
use ignis_proto::engineio::Data;
use ignis_proto::socketio::{self, DecodeError, JsonDecoder, Packet, PacketKind};
use ignis_proto::value::Map;
use parking_lot::Mutex;

use crate::adapter::Room;
use crate::fanout::Fanout;
use crate::handler::run;
use crate::handshake::{Handshake, RequestHead};
use crate::io::IoInner;
use crate::limits::Refusal;
use crate::outbound::{self, Outbound, ParserKind};
use crate::recovery::Recovery;
use crate::socket::{DisconnectReason, Socket, SocketRef};

/// An Engine.IO session carrying Socket.IO.
pub(crate) type EngineSocket = ignis_engine::Socket<ConnectionState>;

/// What Socket.IO keeps in each Engine.IO session (the `Data` of [`IoHandler`]): the packet
/// decoder and the namespaces the client joined. Not to be confused with the Ignis
/// authentication state of a client (`ignis_proto::ignis::ClientState`).
pub struct ConnectionState {
    decoder: Mutex<Decoder>,
    /// The namespaces this client joined (usually one).
    sockets: Mutex<Vec<SocketRef>>,
    /// What the handshake of every namespace shares. Only this is kept of the request: the
    /// request's own header values are slices of the connection's whole read buffer.
    request: OnceLock<RequestHead>,
}

/// Removes a socket from its client once it left its namespace.
pub(crate) fn forget(conn: &EngineSocket, nsp: &str) {
    conn.data
        .sockets
        .lock()
        .retain(|s| s.namespace().name() != nsp);
}

/// Disconnects every namespace of a client (before the connection itself closes).
pub(crate) fn disconnect_all(conn: &EngineSocket) {
    let sockets = conn.data.sockets.lock().clone();
    for socket in sockets {
        socket.disconnect();
    }
}

/// Closes a client's connection for `reason`: each namespace it joined gets its DISCONNECT
/// and its socket leaves with `reason`; the connection closes once what is queued went out.
pub(crate) fn close_for(fanout: &Arc<Fanout>, conn: &EngineSocket, reason: DisconnectReason) {
    let sockets = conn.data.sockets.lock().clone();
    for socket in sockets {
        let _ = socket.send_packet(&Packet::disconnect(socket.namespace().name()));
        socket.close(reason);
    }
    Outbound::new(fanout, conn).close();
}

/// How long a client that comes back waits for its old socket to finish leaving.
const STALE_SOCKET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine handler of a Socket.IO server: what [`SocketIo::engine`](crate::SocketIo::engine)
/// runs, for an application that serves the engine itself (beside other routes).
pub struct IoHandler {
    pub(crate) io: Arc<IoInner>,
}

impl IoHandler {
    /// The way to one of this server's sessions (see [`crate::outbound`]).
    fn outbound<'a>(&'a self, conn: &'a EngineSocket) -> Outbound<'a> {
        Outbound::new(&self.io.fanout, conn)
    }
}

impl Handler for IoHandler {
    type Data = ConnectionState;

    fn create_data(&self) -> ConnectionState {
        ConnectionState {
            decoder: Mutex::new(Decoder::new(self.io.parser)),
            sockets: Mutex::new(Vec::new()),
            request: OnceLock::new(),
        }
    }

    fn on_open(&self, socket: &Arc<EngineSocket>, request: &RequestInfo) {
        let _ =
            socket
                .data
                .request
                .set(RequestHead::new(&request.parts, request.peer, request.time));
    }

    fn on_message(&self, conn: &Arc<EngineSocket>, data: Data) {
        let max = self.io.limits.config.max_event_payload;
        let decoded = conn.data.decoder.lock().decode(data, max);
        match decoded {
            Ok(Decoded::Packet(packet, size)) => {
                self.on_packet(conn, packet, size);
                if conn.transport() == TransportKind::Polling {
                    // A poll answers with what is queued: what the handlers this packet ran
                    // broadcast is queued now, before the request is answered, so that the
                    // client's next poll carries it (see `crate::outbound`). Over WebSocket
                    // the broadcasts wait for their round, which writes them by itself.
                    self.io.fanout.settle();
                }
            }
            Ok(Decoded::Pending) => {}
            Ok(Decoded::Oversized(size)) => {
                // The client gets the reason on every namespace it joined, then the close.
                self.io.limits.counters.add(Refusal::PayloadTooLarge, 1);
                tracing::info!(sid = %conn.id(), size, max, "binary event over max_event_payload: connection closed");
                let sockets = conn.data.sockets.lock().clone();
                for socket in &sockets {
                    socket.send_refusal(
                        None,
                        "",
                        "PAYLOAD_TOO_LARGE",
                        &format!(
                            "event of more than {max} bytes (attachments included): disconnected"
                        ),
                    );
                }
                close_for(&self.io.fanout, conn, DisconnectReason::PayloadTooLarge);
            }
            Err(e) => {
                tracing::debug!(sid = %conn.id(), error = %e, "malformed socket.io packet");
                self.outbound(conn).close();
            }
        }
    }

    fn on_upgrade(&self, conn: &Arc<EngineSocket>) {
        let observers = &self.io.observers;
        if !observers.any() {
            return;
        }
        let sockets = conn.data.sockets.lock().clone();
        for socket in &sockets {
            observers.each(|o| o.upgraded(socket));
        }
    }

    fn on_close(&self, conn: &Arc<EngineSocket>, reason: CloseReason) {
        let reason = match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            CloseReason::ForcedClose | CloseReason::EstablishTimeout => {
                DisconnectReason::ForcedClose
            }
            CloseReason::ServerShuttingDown => DisconnectReason::ServerShuttingDown,
            CloseReason::SlowClient => DisconnectReason::SlowClient,
        };
        let sockets = std::mem::take(&mut *conn.data.sockets.lock());
        for socket in sockets {
            socket.close(reason);
        }
    }
}

impl IoHandler {
    fn on_packet(&self, conn: &Arc<EngineSocket>, packet: Packet, size: usize) {
        let existing = conn
            .data
            .sockets
            .lock()
            .iter()
            .find(|s| s.namespace().name() == packet.nsp)
            .cloned();
        match (existing, &packet.kind) {
            (None, PacketKind::Connect(_)) => self.connect(conn, packet),
            (Some(socket), kind) if !matches!(kind, PacketKind::Connect(_)) => {
                socket.on_packet(packet, size)
            }
            _ => {
                // A packet for a namespace the client has not joined, or a second CONNECT:
                // the reference closes the connection.
                tracing::debug!(sid = %conn.id(), nsp = %packet.nsp, "packet in an invalid state");
                self.outbound(conn).close();
            }
        }
    }

    fn connect(&self, conn: &Arc<EngineSocket>, packet: Packet) {
        let nsp = packet.nsp;
        let PacketKind::Connect(auth) = packet.kind else {
            return;
        };
        let Some(ns) = self.io.namespace_for(&nsp) else {
            let error = Packet::connect_error(nsp, "Invalid namespace", None);
            if let Ok(messages) = outbound::encode(self.io.parser, &error) {
                let _ = self.outbound(conn).send(messages);
            }
            return;
        };
        let Some(head) = conn.data.request.get() else {
            return;
        };
        let auth = auth.unwrap_or_else(|| Value::Map(Map::new()));

        let head = head.clone();
        let conn = Arc::clone(conn);
        let parser = self.io.parser;
        run(Box::pin(async move {
            // Recovery: the pid and last offset the client sent, if recovery is on.
            let wanted = ns.recovery().and(
                auth.get("pid")
                    .and_then(Value::as_str)
                    .zip(auth.get("offset").and_then(Value::as_str)),
            );
            let restored = match wanted {
                Some((pid, offset)) => {
                    let mut session = ns.adapter().restore_session(&ns, pid, offset).await;
                    if session.is_none()
                        && let Some(stale) = ns.socket_by_pid(pid)
                        && !Arc::ptr_eq(&stale.conn, &conn)
                    {
                        // The client is back on a new connection before this server saw its
                        // old one fail (a reset not read yet, a dead peer before its ping
                        // timeout): it proved it is that client, so the old socket leaves now,
                        // its session kept, instead of the client getting a new session and
                        // losing what was sent meanwhile.
                        tracing::debug!(sid = %stale.id(), nsp = ns.name(), "client back on a new connection: old one closed");
                        stale.close(DisconnectReason::TransportClose);
                        stale.close_connection();
                        // Another task may be closing it (its failure seen meanwhile), or still
                        // restoring it: its session is kept once that is done.
                        let deadline = tokio::time::Instant::now() + STALE_SOCKET_WAIT;
                        while ns
                            .socket_by_pid(pid)
                            .is_some_and(|s| Arc::ptr_eq(&s, &stale))
                            && tokio::time::Instant::now() < deadline
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        session = ns.adapter().restore_session(&ns, pid, offset).await;
                    }
                    session.map(|session| (session, offset.to_string()))
                }
                None => None,
            };
            // The private id stays the same across recoveries.
            let pid = ns.recovery().map(|_| match &restored {
                Some((session, _)) => Arc::clone(&session.pid),
                None => Recovery::new_pid(),
            });
            let sid = match &restored {
                Some((session, _)) => session.sid,
                None => Sid::generate(),
            };
            let socket = Arc::new(Socket::new(
                sid,
                Arc::clone(&ns),
                Arc::clone(&conn),
                Handshake::new(head, auth),
                pid,
                restored
                    .as_ref()
                    .map(|(session, _)| (session.data.clone(), session.values.clone())),
            ));
            let skip =
                restored.is_some() && ns.recovery().is_some_and(|r| r.config().skip_middlewares);
            let middlewares = if skip { Vec::new() } else { ns.middlewares() };
            for middleware in middlewares {
                if let Err(e) = middleware(Arc::clone(&socket)).await {
                    let error = Packet::connect_error(ns.name(), &e.message, e.data);
                    if let Ok(messages) = outbound::encode(parser, &error) {
                        let _ = Outbound::new(ns.fanout(), &conn).send(messages);
                    }
                    return;
                }
            }
            if !conn.is_open() {
                // Gone before it was restored: the session waits for the client's next try.
                if let Some((session, _)) = restored {
                    ns.adapter().persist_session(&ns, session);
                }
                return;
            }
            let own: Room = Arc::from(socket.id().as_str());
            let missed = match restored {
                Some((session, offset)) => {
                    // Back in the namespace and its rooms first, with broadcasts kept aside,
                    // then the lookup of what it missed: a broadcast made meanwhile is among
                    // the missed packets, or kept, or both (see `Socket::begin_restore`).
                    socket.begin_restore();
                    ns.add_socket(Arc::clone(&socket));
                    let mut rooms = vec![own];
                    rooms.extend(
                        session
                            .rooms
                            .into_iter()
                            .filter(|room| **room != *socket.id().as_str()),
                    );
                    ns.adapter().add_all(socket.id(), &rooms);
                    let missed = ns.adapter().missed_packets(&ns, &rooms, &offset).await;
                    Some(missed.unwrap_or_else(|| {
                        tracing::warn!(sid = %socket.id(), nsp = ns.name(), "missed packets no longer known: restored without them");
                        Vec::new()
                    }))
                }
                // A new socket joins its own room alone: no list to allocate for it.
                None => {
                    ns.adapter()
                        .add_all(socket.id(), std::slice::from_ref(&own));
                    ns.add_socket(Arc::clone(&socket));
                    None
                }
            };
            {
                let mut sockets = conn.data.sockets.lock();
                // Room for exactly one: most clients never join a second namespace.
                sockets.reserve_exact(1);
                sockets.push(Arc::clone(&socket));
            }
            conn.mark_established();
            socket.set_connected();
            if !conn.is_open() {
                // Closed while it joined: the close may have missed it (a socket that was not
                // connected yet, or not listed yet, is not closed there).
                socket.close(DisconnectReason::TransportClose);
                return;
            }
            ns.observers().each(|o| o.connected(&socket));

            // The reference replays what was missed before it answers the CONNECT; the client
            // buffers events until it is connected.
            if let Some(missed) = missed
                && !socket.finish_restore(&missed)
            {
                tracing::info!(sid = %socket.id(), nsp = ns.name(), "too many broadcasts during the restore: connection closed for the client to try again");
                socket.close_connection();
                return;
            }
            let answer = outbound::encode_connect_answer(
                parser,
                ns.name(),
                socket.id().as_str(),
                socket.pid.as_deref(),
            );
            if let Ok(answer) = answer {
                let _ = socket.outbound().send(answer);
            }
            tracing::debug!(sid = %socket.id(), nsp = ns.name(), recovered = socket.recovered(), "socket connected");
            if let Some(handler) = ns.connect_handler() {
                run(handler(socket));
            }
        }));
    }
}

/// The per-connection decoding state.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    codec: Codec,
    /// Bytes received so far of a binary packet waiting for its attachments.
    pending: usize,
}

#[derive(Debug, Default)]
enum Codec {
    Json(JsonDecoder),
    #[default]
    MsgPack,
}

/// What a message made of the packet being received.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole packet, and its size as received (text and attachments, or msgpack message).
    Packet(Packet, usize),
    /// A binary packet that still waits for attachments.
    Pending,
    /// A binary packet whose attachments went past `max` bytes before it was whole: dropped,
    /// since its bytes would have to be held.
    Oversized(usize),
}

impl Decoder {
    pub(crate) fn new(kind: ParserKind) -> Decoder {
        let codec = match kind {
            ParserKind::Json => Codec::Json(JsonDecoder::default()),
            ParserKind::MsgPack => Codec::MsgPack,
        };
        Decoder { codec, pending: 0 }
    }

    /// Decodes one message; a binary packet may hold at most `max` bytes while it waits for
    /// its attachments.
    pub(crate) fn decode(&mut self, data: Data, max: usize) -> Result<Decoded, DecodeError> {
        let size = self.pending.saturating_add(data.len());
        self.pending = 0;
        let packet = match (&mut self.codec, data) {
            (Codec::Json(d), Data::Text(text)) => d.decode_text(&text)?,
            (Codec::Json(d), Data::Binary(bin)) => {
                let packet = d.decode_binary(bin)?;
                if packet.is_none() && size > max {
                    d.reset();
                    return Ok(Decoded::Oversized(size));
                }
                packet
            }
            (Codec::MsgPack, Data::Binary(bin)) => Some(socketio::decode_msgpack(&bin)?),
            (Codec::MsgPack, Data::Text(_)) => return Err(DecodeError::UnexpectedText),
        };
        Ok(match packet {
            Some(packet) => Decoded::Packet(packet, size),
            None => {
                self.pending = size;
                Decoded::Pending
            }
        })
    }
}
