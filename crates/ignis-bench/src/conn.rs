//! One client connection as a pure state machine: bytes from the server in, bytes for the
//! server and [`Event`]s out. The event loop owns the socket; this owns the protocol: the
//! WebSocket upgrade, Engine.IO open and heartbeat, the Socket.IO CONNECT, the Ignis
//! `authenticate` exchange, acks and broadcast deliveries, and connection state recovery as
//! socket.io-client does it (the private id of the CONNECT answer and the offset of the last
//! event go back in the next CONNECT).

use std::time::{Duration, Instant};

use ignis_proto::engineio::{self, Data, Str};
use ignis_proto::socketio::{self, JsonDecoder, PacketKind};
use ignis_proto::value::Map;
use ignis_proto::{Value, ignis};
use ignis_ws::{Decoder, Message, OpCode, ProtocolError, Role, encode_frame};

use crate::http::{self, HttpError};

/// The event name every load-generator broadcast uses; its data is `[seq, sent_at_us]`.
pub const BENCH_TOPIC: &str = "bench";
/// The most a server message may take.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Unsent output beyond this means the server stopped reading: the connection is given up.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Why a client connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The upgrade answer was not a valid switch to WebSocket.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server broke the WebSocket protocol.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] ProtocolError),
    /// An Engine.IO packet could not be decoded.
    #[error("Engine.IO: {0}")]
    EngineIo(#[from] engineio::DecodeError),
    /// A Socket.IO packet could not be decoded.
    #[error("Socket.IO: {0}")]
    SocketIo(#[from] socketio::DecodeError),
    /// A packet could not be encoded.
    #[error("encoding a packet: {0}")]
    Encode(#[from] socketio::EncodeError),
    /// The server refused the connection or its authentication.
    #[error("the server refused: {0}")]
    Refused(String),
    /// The server closed the session.
    #[error("the server closed the session")]
    Closed,
    /// A binary frame arrived; the contract has text only.
    #[error("binary frame where text was expected")]
    UnexpectedBinary,
    /// The output buffer passed its bound: the server does not read.
    #[error("the server is not reading: {0} bytes unsent")]
    OutputFull(usize),
}

/// What the event loop learns from the bytes it fed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `authenticated` arrived: the client is ready.
    Authenticated,
    /// The answer to the event with this ack id.
    Ack(u64),
    /// A bench broadcast: its sequence number and when the poster sent it (µs since the epoch).
    Delivery {
        /// The post's sequence number.
        seq: u64,
        /// When the poster sent it, µs since the epoch.
        sent_us: u64,
    },
    /// The CONNECT answer carried the private id this connection asked to recover: the server
    /// restored the session (and replayed what it missed, just before).
    Recovered,
    /// The answer to the event with this ack id said `{ok: false, …}` (the chat's failure
    /// shape); [`Conn::take_nack_reason`] has its error code.
    Nack(u64),
    /// A chat `message:new` whose content is a bench marker ([`chat_marker`]): its sequence
    /// number and when its sender emitted it (µs since the epoch).
    ChatMessage {
        /// The sender's sequence number.
        seq: u64,
        /// When the sender emitted it, µs since the epoch.
        sent_us: u64,
    },
}

/// The event name of a stored chat message delivered to a room.
pub const CHAT_MESSAGE_EVENT: &str = "message:new";

/// The content of a chat message the load generator sends: `bench <seq> <sent_us>`, which
/// [`Event::ChatMessage`] reads back from the delivery without decoding the whole message.
pub fn chat_marker(seq: u64, sent_us: u64) -> String {
    format!("bench {seq} {sent_us}")
}

/// What a client needs to recover its session after a cut: the private id from the server's
/// CONNECT answer and the offset of the last event received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The private id of the session.
    pub pid: String,
    /// The offset of the last event received, if any.
    pub offset: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Upgrade,
    Open,
    Connect,
    Auth,
    Ready,
}

/// One client connection's protocol state (WebSocket, Engine.IO, Socket.IO), without the socket: bytes in, events and bytes out.
#[derive(Debug)]
pub struct Conn {
    phase: Phase,
    key: String,
    ws: Decoder,
    sio: JsonDecoder,
    /// Input not consumed yet: part of a frame, or part of the upgrade answer.
    pending: Vec<u8>,
    out: Vec<u8>,
    mask_seed: u32,
    next_ack: u64,
    /// When `authenticate` went out, while no answer has come.
    auth_sent: Option<Instant>,
    /// Whether to keep the private id and offsets (connection state recovery).
    recovery: bool,
    /// The session this connection asks to recover, sent in its CONNECT.
    resume: Option<Session>,
    /// The private id of the server's CONNECT answer.
    pid: Option<String>,
    /// The offset of the last event received.
    offset: Option<String>,
    /// Sent as the CONNECT's auth (a chat's `{token}`), next to the recovery fields.
    auth: Option<Map>,
    /// The error codes of the `{ok: false}` acknowledgements not taken yet, oldest first.
    nack_reasons: std::collections::VecDeque<String>,
}

impl Conn {
    /// A connection whose upgrade request is already queued. `seed` makes keys and masks differ.
    pub fn new(host: &str, path: &str, seed: u32) -> Conn {
        let mut random = [0u8; 16];
        let mut state = seed | 1;
        for chunk in random.chunks_mut(4) {
            state = xorshift(state);
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let key = ignis_ws::generate_key(random);
        let out = http::upgrade_request(host, path, &key);
        Conn {
            phase: Phase::Upgrade,
            key,
            ws: Decoder::new(Role::Client, MAX_MESSAGE),
            sio: JsonDecoder::new(),
            pending: Vec::new(),
            out,
            mask_seed: state,
            next_ack: 0,
            auth_sent: None,
            recovery: false,
            resume: None,
            pid: None,
            offset: None,
            auth: None,
            nack_reasons: std::collections::VecDeque::new(),
        }
    }

    /// Sends `auth` (an object, e.g. `{token}`) in the CONNECT packet, as socket.io-client's
    /// `auth` option does.
    pub fn with_auth(mut self, auth: Map) -> Conn {
        self.auth = Some(auth);
        self
    }

    /// The error code (or message) of the oldest [`Event::Nack`] whose reason was not taken.
    pub fn take_nack_reason(&mut self) -> Option<String> {
        self.nack_reasons.pop_front()
    }

    /// Keeps what connection state recovery needs, and asks to recover `resume` if given.
    pub fn with_recovery(mut self, resume: Option<Session>) -> Conn {
        self.recovery = true;
        self.resume = resume;
        self
    }

    /// The session to recover after a cut: `None` until the server sent a private id.
    pub fn session(&self) -> Option<Session> {
        let pid = self
            .pid
            .clone()
            .or_else(|| self.resume.as_ref().map(|s| s.pid.clone()))?;
        let offset = self
            .offset
            .clone()
            .or_else(|| self.resume.as_ref().and_then(|s| s.offset.clone()));
        Some(Session { pid, offset })
    }

    /// Whether the client is authenticated.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Drops the first `n` bytes of [`Conn::output`] once written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Emits an event; returns the ack id when one is asked for.
    pub fn emit(
        &mut self,
        event: &str,
        args: Vec<Value>,
        ack: bool,
    ) -> Result<Option<u64>, ConnError> {
        let id = ack.then(|| {
            self.next_ack += 1;
            self.next_ack
        });
        self.send_socketio(&socketio::Packet::event("/", event, args, id))?;
        Ok(id)
    }

    /// Sends `authenticate` again when it has gone unanswered for `after`. A server that runs
    /// its connect handler after answering the CONNECT (socketioxide spawns it) can miss an
    /// event sent right away; a real client would time out and retry the same way.
    pub fn retry_auth(&mut self, now: Instant, after: Duration) -> Result<bool, ConnError> {
        match self.auth_sent {
            Some(sent) if self.phase == Phase::Auth && now.duration_since(sent) >= after => {
                self.emit(ignis::EVENT_AUTHENTICATE, Vec::new(), false)?;
                self.auth_sent = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Feeds bytes read from the socket.
    pub fn receive(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), ConnError> {
        if self.pending.is_empty() {
            let used = self.process(data, events)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(data);
            let used = self.process(&buf, events)?;
            buf.drain(..used);
            self.pending = buf;
        }
        // The decoder refuses frames over MAX_MESSAGE before they are buffered, so this holds
        // at most one frame; the upgrade head is bounded by the HTTP parser.
        if self.pending.is_empty() && self.pending.capacity() > 64 * 1024 {
            self.pending = Vec::new();
        }
        Ok(())
    }

    fn process(&mut self, buf: &[u8], events: &mut Vec<Event>) -> Result<usize, ConnError> {
        let mut pos = 0;
        if self.phase == Phase::Upgrade {
            match http::parse_upgrade_response(buf, &self.key)? {
                None => return Ok(0),
                Some(head) => {
                    pos = head;
                    self.phase = Phase::Open;
                }
            }
        }
        while pos < buf.len() {
            let decoded = self.ws.decode(&buf[pos..])?;
            if decoded.consumed == 0 {
                break;
            }
            pos += decoded.consumed;
            if let Some(message) = decoded.message {
                self.on_message(message, events)?;
            }
        }
        Ok(pos)
    }

    fn on_message(&mut self, message: Message, events: &mut Vec<Event>) -> Result<(), ConnError> {
        match message {
            Message::Text(text) => {
                let text = Str::from_utf8(text).map_err(|_| engineio::DecodeError::InvalidUtf8)?;
                self.on_engineio(text, events)
            }
            Message::Ping(payload) => self.send_frame(OpCode::Pong, &payload),
            Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(ConnError::Closed),
            Message::Binary(_) | Message::Compressed(_) => Err(ConnError::UnexpectedBinary),
        }
    }

    fn on_engineio(&mut self, text: Str, events: &mut Vec<Event>) -> Result<(), ConnError> {
        // Deliveries are most of the traffic: recognise them without building values.
        if let Some(message) = parse_chat_message(text.as_bytes()) {
            events.push(message);
            return Ok(());
        }
        if let Some((delivery, offset)) = parse_delivery(text.as_bytes()) {
            if self.recovery
                && let Some(offset) = offset
            {
                let offset = std::str::from_utf8(offset).unwrap_or_default();
                let kept = self.offset.get_or_insert_with(String::new);
                kept.clear();
                kept.push_str(offset);
            }
            events.push(delivery);
            return Ok(());
        }
        match engineio::Packet::decode_text(text)? {
            engineio::Packet::Open(_) if self.phase == Phase::Open => {
                self.phase = Phase::Connect;
                // socket.io-client sends `{pid, offset}` as the CONNECT's auth once it has a pid.
                let mut auth = self.auth.clone();
                if let Some(session) = &self.resume {
                    let auth = auth.get_or_insert_with(|| Map::with_capacity(2));
                    auth.insert("pid", session.pid.as_str());
                    if let Some(offset) = &session.offset {
                        auth.insert("offset", offset.as_str());
                    }
                }
                let auth = auth.map(Value::Map);
                self.send_socketio(&socketio::Packet::connect("/", auth))
            }
            engineio::Packet::Ping(data) => {
                let mut payload = Vec::with_capacity(1 + data.len());
                engineio::Packet::Pong(data).encode_text(&mut payload);
                self.send_frame(OpCode::Text, &payload)
            }
            engineio::Packet::Close => Err(ConnError::Closed),
            engineio::Packet::Message(Data::Text(text)) => self.on_socketio(&text, events),
            engineio::Packet::Message(Data::Binary(_)) => Err(ConnError::UnexpectedBinary),
            _ => Ok(()),
        }
    }

    fn on_socketio(&mut self, text: &str, events: &mut Vec<Event>) -> Result<(), ConnError> {
        let Some(packet) = self.sio.decode_text(text)? else {
            return Ok(());
        };
        match packet.kind {
            PacketKind::Connect(answer) if self.phase == Phase::Connect => {
                if self.recovery {
                    let pid = answer
                        .as_ref()
                        .and_then(|a| a.get("pid"))
                        .and_then(Value::as_str);
                    if pid.is_some() && pid == self.resume.as_ref().map(|s| s.pid.as_str()) {
                        events.push(Event::Recovered);
                    } else {
                        // A new session: the old one's offset means nothing in it.
                        self.resume = None;
                    }
                    self.pid = pid.map(String::from);
                }
                // What a real Ignis client does on every connect, recovered or not (it cannot
                // know in advance): a recovered socket is authenticated already, and the
                // component answers the repeat with `authenticated` again.
                self.phase = Phase::Auth;
                self.emit(ignis::EVENT_AUTHENTICATE, Vec::new(), false)?;
                self.auth_sent = Some(Instant::now());
            }
            PacketKind::Event { event, args, .. } => {
                if self.recovery
                    && let Some(Value::Str(offset)) = args.last()
                {
                    self.offset = Some(offset.to_string());
                }
                self.on_event(event.as_str(), events)?;
            }
            PacketKind::Ack { id, args } => {
                let answer = args.first();
                if answer.and_then(|a| a.get("ok")).and_then(Value::as_bool) == Some(false) {
                    let error = answer.and_then(|a| a.get("error"));
                    let reason = error
                        .and_then(|e| e.get("code"))
                        .or(error)
                        .and_then(Value::as_str)
                        .unwrap_or("failed");
                    // Taken once per Nack by the event loop; bounded all the same.
                    if self.nack_reasons.len() >= 64 {
                        self.nack_reasons.pop_front();
                    }
                    self.nack_reasons.push_back(reason.to_string());
                    events.push(Event::Nack(id));
                } else {
                    events.push(Event::Ack(id));
                }
            }
            PacketKind::ConnectError(value) => {
                let message = value
                    .get("message")
                    .and_then(Value::as_str)
                    .or(value.as_str())
                    .unwrap_or("connect_error");
                return Err(ConnError::Refused(message.to_string()));
            }
            PacketKind::Disconnect => return Err(ConnError::Closed),
            PacketKind::Connect(_) => {}
        }
        Ok(())
    }

    fn on_event(&mut self, name: Option<&str>, events: &mut Vec<Event>) -> Result<(), ConnError> {
        match name {
            Some(ignis::EVENT_AUTHENTICATED) if self.phase == Phase::Auth => {
                self.phase = Phase::Ready;
                self.auth_sent = None;
                events.push(Event::Authenticated);
            }
            Some(ignis::EVENT_UNAUTHENTICATE) => {
                return Err(ConnError::Refused("unauthenticated".into()));
            }
            _ => {}
        }
        Ok(())
    }

    fn send_socketio(&mut self, packet: &socketio::Packet) -> Result<(), ConnError> {
        let encoded = socketio::encode(packet)?;
        let mut payload = Vec::with_capacity(1 + encoded.text.len());
        engineio::Packet::Message(Data::Text(Str::from(encoded.text))).encode_text(&mut payload);
        self.send_frame(OpCode::Text, &payload)
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), ConnError> {
        if self.out.len() > MAX_OUTPUT {
            return Err(ConnError::OutputFull(self.out.len()));
        }
        self.mask_seed = xorshift(self.mask_seed);
        let frame = encode_frame(opcode, payload, false, Some(self.mask_seed.to_le_bytes()));
        self.out.extend_from_slice(&frame);
        Ok(())
    }
}

fn xorshift(mut x: u32) -> u32 {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

/// `42["bench",[seq,sent_us]]` (Engine.IO message, Socket.IO event on `/`), the only shape the
/// load generator's own broadcasts take on every peer, or with connection state recovery
/// `42["bench",[seq,sent_us],"offset"]`; the offset is returned as its bytes. Anything else goes
/// to the full decoders.
fn parse_delivery(text: &[u8]) -> Option<(Event, Option<&[u8]>)> {
    let rest = text.strip_prefix(b"42[\"")?;
    let rest = rest.strip_prefix(BENCH_TOPIC.as_bytes())?;
    let rest = rest.strip_prefix(b"\",[")?;
    let (seq, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(b",")?;
    let (sent_us, rest) = parse_u64(rest)?;
    let delivery = Event::Delivery { seq, sent_us };
    if rest == b"]]" {
        return Some((delivery, None));
    }
    // Offsets are the server's own `epoch-counter` in hex: no escapes to undo.
    let offset = rest.strip_prefix(b"],\"")?.strip_suffix(b"\"]")?;
    (!offset.is_empty()
        && offset
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
    .then_some((delivery, Some(offset)))
}

/// `42["message:new",{…,"content":"bench <seq> <sent_us>",…}]`: a chat message whose content
/// is a [`chat_marker`]. The chat serialises `content` before any field a client controls
/// besides the ids, and a marker holds no quote, so the first `"content":"` is the field.
fn parse_chat_message(text: &[u8]) -> Option<Event> {
    let rest = text.strip_prefix(b"42[\"")?;
    let rest = rest.strip_prefix(CHAT_MESSAGE_EVENT.as_bytes())?;
    let rest = rest.strip_prefix(b"\",{")?;
    const FIELD: &[u8] = b"\"content\":\"bench ";
    let at = rest.windows(FIELD.len()).position(|w| w == FIELD)?;
    let (seq, rest) = parse_u64(&rest[at + FIELD.len()..])?;
    let rest = rest.strip_prefix(b" ")?;
    let (sent_us, rest) = parse_u64(rest)?;
    rest.starts_with(b"\"")
        .then_some(Event::ChatMessage { seq, sent_us })
}

fn parse_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_ws::server_frame;

    fn upgrade_answer(conn: &Conn) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ignis_ws::accept_key(conn.key.as_bytes())
        )
        .into_bytes()
    }

    fn text(s: &str) -> Vec<u8> {
        server_frame(OpCode::Text, s.as_bytes()).to_vec()
    }

    /// The client's frames, as the server would read them.
    fn sent(conn: &mut Conn) -> Vec<String> {
        let out = conn.output().to_vec();
        conn.consume_output(out.len());
        let mut decoder = Decoder::new(Role::Server, MAX_MESSAGE);
        let mut pos = 0;
        let mut texts = Vec::new();
        while pos < out.len() {
            let decoded = decoder.decode(&out[pos..]).expect("client frame");
            assert!(decoded.consumed > 0, "truncated client frame");
            pos += decoded.consumed;
            match decoded.message {
                Some(Message::Text(t)) => texts.push(String::from_utf8(t.to_vec()).expect("utf8")),
                Some(Message::Pong(p)) => {
                    texts.push(format!("pong:{}", String::from_utf8_lossy(&p)))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        texts
    }

    /// A connection past the upgrade, with the upgrade request already taken.
    fn upgraded() -> Conn {
        let mut conn = Conn::new("127.0.0.1:1", "/io/", 7);
        let request = conn.output().to_vec();
        assert!(request.starts_with(b"GET /io/?EIO=4&transport=websocket HTTP/1.1\r\n"));
        conn.consume_output(request.len());
        let mut events = Vec::new();
        conn.receive(&upgrade_answer(&conn), &mut events)
            .expect("upgrade");
        conn
    }

    fn authenticated() -> Conn {
        let mut conn = upgraded();
        let mut events = Vec::new();
        for msg in [
            r#"0{"sid":"s","pingInterval":25000}"#,
            r#"40{"sid":"x"}"#,
            r#"42["authenticated",{"id":"x"}]"#,
        ] {
            conn.receive(&text(msg), &mut events).expect("handshake");
        }
        assert_eq!(events, vec![Event::Authenticated]);
        sent(&mut conn);
        conn
    }

    #[test]
    fn handshake_sends_connect_then_authenticate() {
        let mut conn = upgraded();
        let mut events = Vec::new();
        conn.receive(&text(r#"0{"sid":"s"}"#), &mut events)
            .expect("open");
        assert_eq!(sent(&mut conn), vec!["40"]);
        conn.receive(&text(r#"40{"sid":"x"}"#), &mut events)
            .expect("connect");
        assert_eq!(sent(&mut conn), vec![r#"42["authenticate"]"#]);
        assert!(!conn.is_ready());
        conn.receive(&text(r#"42["authenticated",{"id":"x"}]"#), &mut events)
            .expect("auth");
        assert!(conn.is_ready());
        assert_eq!(events, vec![Event::Authenticated]);
    }

    #[test]
    fn unanswered_authenticate_is_sent_again() {
        let mut conn = upgraded();
        let mut events = Vec::new();
        let now = Instant::now();
        assert!(
            !conn
                .retry_auth(now, Duration::ZERO)
                .expect("before connect")
        );
        conn.receive(&text(r#"0{"sid":"s"}"#), &mut events)
            .expect("open");
        conn.receive(&text(r#"40{"sid":"x"}"#), &mut events)
            .expect("connect");
        sent(&mut conn);
        assert!(
            !conn
                .retry_auth(Instant::now(), Duration::from_secs(60))
                .expect("not due")
        );
        let later = Instant::now() + Duration::from_secs(2);
        assert!(conn.retry_auth(later, Duration::from_secs(1)).expect("due"));
        assert_eq!(sent(&mut conn), vec![r#"42["authenticate"]"#]);
        conn.receive(&text(r#"42["authenticated",{}]"#), &mut events)
            .expect("auth");
        assert!(
            !conn
                .retry_auth(later + Duration::from_secs(9), Duration::ZERO)
                .expect("ready")
        );
    }

    #[test]
    fn byte_at_a_time_is_the_same_as_all_at_once() {
        let mut conn = Conn::new("h", "/io/", 3);
        conn.consume_output(conn.output().len());
        let mut input = upgrade_answer(&conn);
        for msg in [
            r#"0{"sid":"s"}"#,
            r#"40{"sid":"x"}"#,
            r#"42["authenticated",{}]"#,
            r#"42["bench",[9,1234]]"#,
            r#"431[{"ok":true}]"#,
        ] {
            input.extend(text(msg));
        }
        let mut events = Vec::new();
        for byte in &input {
            conn.receive(std::slice::from_ref(byte), &mut events)
                .expect("byte");
        }
        assert_eq!(
            events,
            vec![
                Event::Authenticated,
                Event::Delivery {
                    seq: 9,
                    sent_us: 1234
                },
                Event::Ack(1)
            ]
        );
        assert!(conn.pending.is_empty());
    }

    #[test]
    fn ready_traffic() {
        let cases: &[(&str, Vec<Event>, Vec<String>)] = &[
            (
                r#"42["bench",[1,2]]"#,
                vec![Event::Delivery { seq: 1, sent_us: 2 }],
                vec![],
            ),
            (
                r#"42["bench",[18446744073709551615,0]]"#,
                vec![Event::Delivery {
                    seq: u64::MAX,
                    sent_us: 0,
                }],
                vec![],
            ),
            // Not the bench shape: decoded in full and ignored.
            (r#"42["bench",[1,2,3]]"#, vec![], vec![]),
            (r#"42["bench",{"k":1}]"#, vec![], vec![]),
            (r#"42["other",[1,2]]"#, vec![], vec![]),
            (r#"42["ping",{"time":"t"}]"#, vec![], vec![]),
            (r#"437[{"ok":true}]"#, vec![Event::Ack(7)], vec![]),
            ("2", vec![], vec!["3".into()]),
            ("2probe", vec![], vec!["3probe".into()]),
            ("6", vec![], vec![]),
        ];
        for (input, events, replies) in cases {
            let mut conn = authenticated();
            let mut got = Vec::new();
            conn.receive(&text(input), &mut got)
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got, events, "{input}");
            assert_eq!(&sent(&mut conn), replies, "{input}");
        }
    }

    #[test]
    fn websocket_ping_gets_a_pong() {
        let mut conn = authenticated();
        let mut events = Vec::new();
        conn.receive(&server_frame(OpCode::Ping, b"hb"), &mut events)
            .expect("ping");
        assert_eq!(sent(&mut conn), vec!["pong:hb"]);
    }

    #[test]
    fn emit_numbers_acks() {
        let mut conn = authenticated();
        assert_eq!(
            conn.emit("echo", vec![Value::from("x")], true)
                .expect("emit"),
            Some(1)
        );
        assert_eq!(conn.emit("echo", vec![], true).expect("emit"), Some(2));
        assert_eq!(conn.emit("join", vec![], false).expect("emit"), None);
        assert_eq!(
            sent(&mut conn),
            vec![r#"421["echo","x"]"#, r#"422["echo"]"#, r#"42["join"]"#]
        );
    }

    #[test]
    fn failures() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (text("1"), "closed"),
            (text("41"), "closed"),
            (text(r#"44{"message":"nope"}"#), "nope"),
            (
                text(r#"42["unauthenticated",{"message":"bad"}]"#),
                "unauthenticated",
            ),
            (text("x"), "Engine.IO"),
            (text("4{"), "Socket.IO"),
            (server_frame(OpCode::Binary, b"\x04x").to_vec(), "binary"),
            (
                ignis_ws::encode_close(ignis_ws::CloseCode::NORMAL, "bye").to_vec(),
                "closed",
            ),
            // A masked frame from a server is a protocol error.
            (
                encode_frame(OpCode::Text, b"40", false, Some([1, 2, 3, 4])).to_vec(),
                "WebSocket",
            ),
            // Over MAX_MESSAGE: refused from the header alone.
            (vec![0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0], "WebSocket"),
        ];
        for (input, expected) in cases {
            let mut conn = authenticated();
            let err = conn.receive(&input, &mut Vec::new()).expect_err(expected);
            assert!(
                err.to_string()
                    .to_lowercase()
                    .contains(&expected.to_lowercase()),
                "{expected}: {err}"
            );
        }
        let mut conn = Conn::new("h", "/", 1);
        let err = conn
            .receive(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                &mut Vec::new(),
            )
            .expect_err("refused upgrade");
        assert!(matches!(
            err,
            ConnError::Http(HttpError::UpgradeRefused(404))
        ));
    }

    #[test]
    fn output_is_bounded() {
        let mut conn = authenticated();
        let big = Value::from("x".repeat(64 * 1024));
        let mut result = Ok(None);
        for _ in 0..40 {
            result = conn.emit("echo", vec![big.clone()], false);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ConnError::OutputFull(_))));
    }

    #[test]
    fn delivery_offsets() {
        // Not a delivery, or one with this offset (if any).
        type Parsed<'a> = Option<Option<&'a [u8]>>;
        let cases: &[(&[u8], Parsed)] = &[
            (br#"42["bench",[1,2]]"#, Some(None)),
            (br#"42["bench",[1,2],"1f-a0"]"#, Some(Some(b"1f-a0"))),
            (br#"42["bench",[1,2],""]"#, None),
            (br#"42["bench",[1,2],"a\"b"]"#, None),
            (br#"42["bench",[1,2],"x"] "#, None),
            (br#"42["bench",[1,2],3]"#, None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_delivery(input).map(|(_, offset)| offset),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn recovery_sends_back_the_pid_and_the_last_offset() {
        let mut conn = upgraded().with_recovery(None);
        let mut events = Vec::new();
        assert_eq!(conn.session(), None);
        conn.receive(&text(r#"0{"sid":"s"}"#), &mut events)
            .expect("open");
        assert_eq!(sent(&mut conn), vec!["40"]);
        for msg in [
            r#"40{"sid":"x","pid":"p1"}"#,
            r#"42["authenticated",{"id":"x"},"e-1"]"#,
            r#"42["bench",[0,5],"e-2"]"#,
        ] {
            conn.receive(&text(msg), &mut events).expect(msg);
        }
        assert_eq!(
            events,
            vec![Event::Authenticated, Event::Delivery { seq: 0, sent_us: 5 }]
        );
        let session = conn.session().expect("a session");
        assert_eq!(
            session,
            Session {
                pid: "p1".into(),
                offset: Some("e-2".into())
            }
        );

        // After a cut: the CONNECT asks for the session; the missed event comes first.
        let mut again = Conn::new("127.0.0.1:1", "/io/", 9).with_recovery(Some(session.clone()));
        again.consume_output(again.output().len());
        let mut events = Vec::new();
        again
            .receive(&upgrade_answer(&again), &mut events)
            .expect("upgrade");
        again
            .receive(&text(r#"0{"sid":"t"}"#), &mut events)
            .expect("open");
        assert_eq!(sent(&mut again), vec![r#"40{"pid":"p1","offset":"e-2"}"#]);
        for msg in [r#"42["bench",[1,6],"e-3"]"#, r#"40{"sid":"x","pid":"p1"}"#] {
            again.receive(&text(msg), &mut events).expect(msg);
        }
        assert_eq!(
            events,
            vec![Event::Delivery { seq: 1, sent_us: 6 }, Event::Recovered]
        );
        // A real Ignis client authenticates again on every connect.
        assert_eq!(sent(&mut again), vec![r#"42["authenticate"]"#]);
        assert_eq!(
            again.session().and_then(|s| s.offset).as_deref(),
            Some("e-3")
        );

        // A session the server did not keep: a new pid, no `Recovered`.
        let mut fresh = Conn::new("127.0.0.1:1", "/io/", 11).with_recovery(Some(session));
        fresh.consume_output(fresh.output().len());
        let mut events = Vec::new();
        fresh
            .receive(&upgrade_answer(&fresh), &mut events)
            .expect("upgrade");
        for msg in [r#"0{"sid":"u"}"#, r#"40{"sid":"y","pid":"p2"}"#] {
            fresh.receive(&text(msg), &mut events).expect(msg);
        }
        assert!(events.is_empty());
        assert_eq!(
            fresh.session(),
            Some(Session {
                pid: "p2".into(),
                offset: None
            })
        );
    }

    #[test]
    fn chat_messages_acks_and_auth() {
        let marker = chat_marker(42, 1_700_000);
        assert_eq!(marker, "bench 42 1700000");
        let cases: &[(&[u8], Option<Event>)] = &[
            (
                br#"42["message:new",{"id":"m","roomId":"r","senderId":"s","content":"bench 42 1700000","type":"text"}]"#,
                Some(Event::ChatMessage {
                    seq: 42,
                    sent_us: 1_700_000,
                }),
            ),
            // Not a marker, or not the event: left to the full decoder (and ignored).
            (br#"42["message:new",{"content":"hello"}]"#, None),
            (br#"42["message:new",{"content":"bench 1 2 3"}]"#, None),
            (br#"42["message:new",{"content":"bench x 2"}]"#, None),
            (br#"42["message:edited",{"content":"bench 1 2"}]"#, None),
            (br#"421["message:new",{"content":"bench 1 2"}]"#, None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_chat_message(input),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }

        // The token goes in the CONNECT; a `{ok: false}` answer is a Nack with its code.
        let mut auth = Map::with_capacity(1);
        auth.insert("token", "t0k");
        let mut conn = upgraded().with_auth(auth);
        let mut events = Vec::new();
        conn.receive(&text(r#"0{"sid":"s"}"#), &mut events)
            .expect("open");
        assert_eq!(sent(&mut conn), vec![r#"40{"token":"t0k"}"#]);
        for msg in [
            r#"40{"sid":"x"}"#,
            r#"42["authenticated",{}]"#,
            r#"431[{"ok":true,"room":{}}]"#,
            r#"432[{"ok":false,"error":{"code":"RATE_LIMITED","message":"slow down"}}]"#,
            r#"42["message:new",{"id":"m","content":"bench 7 9","sender":{}}]"#,
        ] {
            conn.receive(&text(msg), &mut events).expect(msg);
        }
        assert_eq!(
            events,
            vec![
                Event::Authenticated,
                Event::Ack(1),
                Event::Nack(2),
                Event::ChatMessage { seq: 7, sent_us: 9 }
            ]
        );
        assert_eq!(conn.take_nack_reason().as_deref(), Some("RATE_LIMITED"));
        assert_eq!(conn.take_nack_reason(), None);
    }

    #[test]
    fn delivery_shapes() {
        let cases: &[(&[u8], Option<Event>)] = &[
            (
                br#"42["bench",[0,0]]"#,
                Some(Event::Delivery { seq: 0, sent_us: 0 }),
            ),
            (br#"42["bench",[1,2]] "#, None),
            (br#"42["bench",[,2]]"#, None),
            (br#"42["bench",[-1,2]]"#, None),
            (br#"42["bench",[1.5,2]]"#, None),
            (br#"42["bench",[99999999999999999999,2]]"#, None),
            (br#"42["benchmark",[1,2]]"#, None),
            (br#"421["bench",[1,2]]"#, None),
            (br#"42/x,["bench",[1,2]]"#, None),
            (b"", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_delivery(input).map(|(event, _)| event),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
