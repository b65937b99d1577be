//! The messages of `socket.io-adapter`'s `ClusterAdapter` as a [`Driver`] of the core, over a
//! small [`Transport`]: how each operation is written as a [`Message`], and how the messages
//! of the other nodes are read. The sharded adapter carries them over SPUBLISH/SSUBSCRIBE, the
//! streams adapter over a Redis stream and PUBLISH/SUBSCRIBE; both hand what they receive to
//! [`Core::on_message`] and [`Core::on_response`].

use ignis_socketio::adapter::BoxFuture;
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{AdapterError, MemoryAdapter, Namespace, Room, SessionData};

use crate::engine::{AckAnswer, Collected, Driver, Incoming, Outgoing, Reply};
pub(crate) use crate::engine::{Core, CoreLimits, forward_adapter, protocol_error};
use crate::protocol::Target;
use crate::sharded_protocol::{Body, Message, random_id};

/// How the messages of the cluster protocol travel between nodes.
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// A message ready to go out: encoded before any local delivery, so that a message that
    /// cannot be encoded reaches nobody.
    type Encoded: Send + 'static;

    /// Encodes a message for [`Transport::send`] or [`Transport::send_nowait`].
    fn encode(&self, msg: &Message) -> Result<Self::Encoded, AdapterError>;

    /// Sends after everything sent before, and waits until Redis took it.
    fn send(&self, msg: Self::Encoded) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Sends after everything sent before, without waiting.
    fn send_nowait(&self, msg: Self::Encoded) -> Result<(), AdapterError>;

    /// Answers the node `requester`, without waiting.
    fn respond(&self, requester: &str, msg: &Message) -> Result<(), AdapterError>;

    /// How many nodes serve the namespace, this one included.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>>;

    /// Whether broadcasts come back to their sender, which delivers them to its own sockets
    /// then (a log that gives each its offset), rather than at once.
    fn echoes_broadcasts(&self) -> bool {
        false
    }

    /// With recovery on, sends an event to one socket with this transport's offset (see
    /// [`Adapter::send_with_offset`](ignis_socketio::Adapter::send_with_offset)); false when it
    /// has none.
    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        let _ = send;
        false
    }

    /// Whether [`Transport::rooms_changed`] wants to hear of rooms.
    fn watches_rooms(&self) -> bool {
        false
    }

    /// Rooms appeared on this node (`created`) or left it (`deleted`), each with whether it is
    /// public (not the id of a local socket). Called under the room index's lock, so that the
    /// changes come in the order they happened.
    fn rooms_changed(&self, created: &[(&Room, bool)], deleted: &[(&Room, bool)]) {
        let _ = (created, deleted);
    }

    /// See [`Adapter::persist_session`](ignis_socketio::Adapter::persist_session); the
    /// default keeps the session in memory.
    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        if let Some(recovery) = ns.recovery() {
            recovery.persist(session);
        }
    }

    /// See [`Adapter::restore_session`](ignis_socketio::Adapter::restore_session).
    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        let session = ns.recovery().and_then(|r| r.take_session(pid, offset));
        Box::pin(async move { session })
    }

    /// See [`Adapter::missed_packets`](ignis_socketio::Adapter::missed_packets).
    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        let missed = ns.recovery().and_then(|r| r.missed(rooms, offset));
        Box::pin(async move { missed })
    }
}

/// A message of node `uid` in namespace `nsp`.
fn message(uid: &str, nsp: &str, body: Body) -> Message {
    Message {
        uid: Some(uid.to_string()),
        nsp: Some(nsp.to_string()),
        body,
    }
}

impl<T: Transport> Driver for T {
    type Encoded = T::Encoded;
    type Response = Body;

    fn request_id() -> String {
        random_id()
    }

    fn encode(
        &self,
        uid: &str,
        nsp: &str,
        request: Outgoing<'_>,
    ) -> Result<T::Encoded, AdapterError> {
        let body = match request {
            Outgoing::Broadcast { packet, opts } => Body::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
                request_id: None,
            },
            Outgoing::BroadcastWithAck {
                request_id,
                packet,
                opts,
            } => Body::Broadcast {
                packet: packet.clone(),
                opts,
                request_id: Some(request_id),
            },
            Outgoing::Rooms { join, opts, rooms } => {
                let (opts, rooms) = (opts.clone(), rooms.to_vec());
                if join {
                    Body::SocketsJoin { opts, rooms }
                } else {
                    Body::SocketsLeave { opts, rooms }
                }
            }
            Outgoing::Disconnect { opts, close } => Body::DisconnectSockets {
                opts: opts.clone(),
                close,
            },
            Outgoing::Fetch { request_id, opts } => Body::FetchSockets {
                opts: opts.clone(),
                request_id,
            },
            Outgoing::ServerSideEmit { request_id, args } => Body::ServerSideEmit {
                packet: args.to_vec(),
                request_id,
            },
            Outgoing::AllRooms { .. } => {
                return Err(protocol_error(
                    "the cluster protocol has no all-rooms request",
                ));
            }
        };
        Transport::encode(self, &message(uid, nsp, body))
    }

    fn send(&self, msg: T::Encoded) -> BoxFuture<'static, Result<(), AdapterError>> {
        Transport::send(self, msg)
    }

    fn send_nowait(&self, msg: T::Encoded) -> Result<(), AdapterError> {
        Transport::send_nowait(self, msg)
    }

    /// A node is answered by its uid: a request without one gets no answer.
    fn reply(
        &self,
        uid: &str,
        nsp: &str,
        requester: Option<&str>,
        request_id: &str,
        reply: Reply,
    ) -> Result<(), AdapterError> {
        let Some(requester) = requester else {
            return Ok(());
        };
        let request_id = request_id.to_string();
        let body = match reply {
            Reply::Sockets(sockets) => Body::FetchSocketsResponse {
                request_id,
                sockets,
            },
            Reply::EmitAck(answer) => Body::ServerSideEmitResponse {
                request_id,
                packet: Some(answer),
            },
            Reply::ClientCount(clients) => Body::BroadcastClientCount {
                request_id,
                client_count: clients as u64,
            },
            Reply::Ack(packet) => Body::BroadcastAck { request_id, packet },
            Reply::SocketIds(_) | Reply::Rooms(_) | Reply::Done => {
                return Err(protocol_error("no such response in the cluster protocol"));
            }
        };
        Transport::respond(self, requester, &message(uid, nsp, body))
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Transport::server_count(self)
    }

    fn response_to(response: &Body) -> Option<&str> {
        response.response_to()
    }

    fn read_answer(response: Body, collecting: &Collected) -> Option<Collected> {
        match (collecting, response) {
            (Collected::Sockets(_), Body::FetchSocketsResponse { sockets, .. }) => {
                Some(Collected::Sockets(sockets))
            }
            (Collected::Acks(_), Body::ServerSideEmitResponse { packet, .. }) => {
                Some(Collected::Acks(vec![packet.unwrap_or_default()]))
            }
            _ => None,
        }
    }

    fn read_ack_answer(response: Body) -> Option<AckAnswer> {
        match response {
            Body::BroadcastClientCount { client_count, .. } => Some(AckAnswer::ClientCount(
                usize::try_from(client_count).unwrap_or(usize::MAX),
            )),
            Body::BroadcastAck { packet, .. } => {
                Some(AckAnswer::Ack(packet.map_or(Vec::new(), |v| vec![v])))
            }
            _ => None,
        }
    }

    fn echoes_broadcasts(&self) -> bool {
        Transport::echoes_broadcasts(self)
    }

    fn watches_rooms(&self) -> bool {
        Transport::watches_rooms(self)
    }

    fn rooms_changed(&self, created: &[(&Room, bool)], deleted: &[(&Room, bool)]) {
        Transport::rooms_changed(self, created, deleted);
    }

    fn send_with_offset(&self, _local: &MemoryAdapter, send: &mut dyn FnMut(&str)) -> bool {
        Transport::send_with_offset(self, send)
    }

    fn persist_session(&self, _local: &MemoryAdapter, ns: &Namespace, session: SessionData) {
        Transport::persist_session(self, ns, session);
    }

    fn restore_session<'a>(
        &'a self,
        _local: &'a MemoryAdapter,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        Transport::restore_session(self, ns, pid, offset)
    }

    fn missed_packets<'a>(
        &'a self,
        _local: &'a MemoryAdapter,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        Transport::missed_packets(self, ns, rooms, offset)
    }
}

impl<T: Transport> Core<T> {
    /// A message of the cluster protocol; `offset` is its place in a log, when it came in one.
    pub(crate) fn on_message(&self, msg: Message, offset: Option<&str>) {
        if msg.nsp.as_deref() != Some(&self.nsp) {
            return;
        }
        let sender = msg.uid.as_deref();
        if sender == Some(self.uid.as_str()) {
            // A transport that echoes broadcasts delivers this node's ones now, in log order.
            if let (
                Some(offset),
                Body::Broadcast {
                    packet,
                    opts,
                    request_id: None,
                },
            ) = (offset, msg.body)
                && Transport::echoes_broadcasts(&self.transport)
                && let Some(ns) = self.ns()
            {
                self.deliver(&ns, packet, &opts, offset);
            }
            return;
        }
        let incoming = match msg.body {
            Body::Broadcast {
                packet,
                opts,
                request_id: None,
            } => Incoming::Broadcast { packet, opts },
            // The answers go to the requester by its uid: without one, nothing is delivered.
            Body::Broadcast {
                request_id: Some(_),
                ..
            } if sender.is_none() => return,
            Body::Broadcast {
                packet,
                opts,
                request_id: Some(request_id),
            } => Incoming::BroadcastWithAck {
                request_id,
                packet,
                opts,
            },
            Body::SocketsJoin { opts, rooms } => Incoming::Rooms {
                join: true,
                target: Target::Matching(opts),
                rooms,
                request_id: None,
            },
            Body::SocketsLeave { opts, rooms } => Incoming::Rooms {
                join: false,
                target: Target::Matching(opts),
                rooms,
                request_id: None,
            },
            Body::DisconnectSockets { opts, close } => Incoming::Disconnect {
                target: Target::Matching(opts),
                close,
                request_id: None,
            },
            Body::FetchSockets { opts, request_id } => Incoming::Fetch { request_id, opts },
            Body::ServerSideEmit { packet, request_id } => Incoming::ServerSideEmit {
                request_id,
                data: packet,
            },
            // Responses may come with the requests too; Node reads them as responses.
            body @ (Body::FetchSocketsResponse { .. }
            | Body::ServerSideEmitResponse { .. }
            | Body::BroadcastClientCount { .. }
            | Body::BroadcastAck { .. }) => return self.on_response(body),
            // Heartbeats belong to adapters that count nodes by them; the Redis ones count
            // subscribers, as Node's do.
            Body::InitialHeartbeat | Body::Heartbeat | Body::AdapterClose => return,
        };
        self.apply(sender, incoming, offset);
    }
}
