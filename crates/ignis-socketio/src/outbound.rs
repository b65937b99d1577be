//! Where a packet leaves for one client: its encoding, and [`Outbound`], the path every send to
//! one client's session takes.
//!
//! # The settle rule
//!
//! A broadcast is not queued for its recipients when it is made, but once the broadcasting task
//! yields, together with the others made meanwhile (see [`crate::fanout`]). Whatever the server
//! sends to a client afterwards must still reach it after the broadcast. So, before any send to a
//! session, the server *settles*: it queues its broadcasts still pending, and waits for a round
//! another thread is running. When nothing is pending, that is one atomic load.
//!
//! The rule is kept here, in one place: [`Outbound`] settles before each send and each close,
//! and every other part of the crate that sends to one client (an emit, an acknowledgement, a
//! refusal, a DISCONNECT, a CONNECT answer or error, closing the connection) goes through it.
//! The other ways to a session are the fan-out's own (a round, and a broadcast with
//! acknowledgements, which settles first and is then written at once), and a restore's, which
//! settles before it takes the lock that rounds to the socket wait for (see
//! [`Outbound::settle`]). What decides whether a socket gets broadcasts at all (being
//! connected, having broadcasts held) settles before it changes: broadcasts made before the
//! change are treated as things were.
//!
//! The engine knows nothing of this. A long-polling client's request is the one place where it
//! could notice: a poll answers with what is queued, and a broadcast still pending would reach
//! the poll after. So a message that came over long-polling settles once it is handled (see
//! `engine_handler.rs`): what a client's request made the server send is queued before the
//! request is answered, and the client's next poll carries it.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use ignis_engine::{SendError, SharedMessage, TextMessage};
use ignis_proto::Value;
use ignis_proto::engineio::Data;
use ignis_proto::socketio::{self, EncodeError, Packet};
use ignis_proto::value::ValueError;
use serde::Serialize;
use smallvec::{SmallVec, smallvec};

use crate::engine_handler::EngineSocket;
use crate::fanout::Fanout;

/// The codec between the server and its clients. Both ends must use the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParserKind {
    /// The default `socket.io-parser`: JSON text with binary attachments.
    #[default]
    Json,
    /// `socket.io-msgpack-parser`: one msgpack binary message per packet.
    MsgPack,
}

/// The Engine.IO messages that carry one Socket.IO packet: almost always one.
pub(crate) type Messages = SmallVec<[Arc<SharedMessage>; 1]>;

/// Encodes a packet into the Engine.IO messages that carry it.
pub(crate) fn encode(kind: ParserKind, packet: &Packet) -> Result<Messages, EncodeError> {
    encode_with(kind, packet, true)
}

/// Like [`encode`]; `compress: false` keeps permessage-deflate off these messages.
pub(crate) fn encode_with(
    kind: ParserKind,
    packet: &Packet,
    compress: bool,
) -> Result<Messages, EncodeError> {
    match kind {
        ParserKind::Json => json_messages(|out| socketio::encode_into(out, packet), compress),
        ParserKind::MsgPack => Ok(smallvec![SharedMessage::with_compression(
            Data::Binary(socketio::encode_msgpack(packet)?),
            compress
        )]),
    }
}

/// A packet encoded for one socket.
pub(crate) enum Direct {
    /// A text packet without attachments: it may travel as its bare WebSocket frame.
    Text(TextMessage),
    Messages(Messages),
}

impl From<Messages> for Direct {
    fn from(messages: Messages) -> Direct {
        Direct::Messages(messages)
    }
}

/// The way to one client's session, after the broadcasts its server made before (see the
/// module doc): every packet for one client goes out through [`Outbound::send`], and the
/// connection closes through [`Outbound::close`].
pub(crate) struct Outbound<'a> {
    fanout: &'a Arc<Fanout>,
    conn: &'a EngineSocket,
}

impl<'a> Outbound<'a> {
    /// The way to `conn`, a session of the server that owns `fanout`.
    #[inline]
    pub(crate) fn new(fanout: &'a Arc<Fanout>, conn: &'a EngineSocket) -> Outbound<'a> {
        Outbound { fanout, conn }
    }

    /// Sends one packet, after the broadcasts made before.
    #[inline]
    pub(crate) fn send(&self, packet: impl Into<Direct>) -> Result<(), SendError> {
        self.fanout.settle();
        let stats = &self.fanout.stats;
        let sent = match packet.into() {
            Direct::Text(text) => {
                stats.bytes_sent.add(text.len() as u64);
                self.conn.send_text(text)
            }
            Direct::Messages(messages) => {
                stats
                    .bytes_sent
                    .add(messages.iter().map(|m| m.data().len() as u64).sum());
                self.conn.send_shared(&messages, false)
            }
        };
        match sent {
            Ok(()) => stats.packets_sent.add(1),
            Err(_) => stats.send_failed(),
        }
        sent
    }

    /// Closes the connection once what is queued went out, the broadcasts made before
    /// included.
    pub(crate) fn close(&self) {
        self.fanout.settle();
        self.conn.close();
    }

    /// Settles now, for a caller that then takes a lock every round to this session waits for
    /// (a restore's) and sends under it with [`Outbound::send_settled`]: settling under that
    /// lock could wait for a round that waits for the lock.
    pub(crate) fn settle(&self) {
        self.fanout.settle();
    }

    /// Sends without settling: only after [`Outbound::settle`], under a lock that every round
    /// to this session waits for, so that the broadcasts made since come after these
    /// messages, as their round waits for the lock.
    pub(crate) fn send_settled(&self, messages: &Messages) -> Result<(), SendError> {
        let stats = &self.fanout.stats;
        let sent = self.conn.send_shared(messages, false);
        match sent {
            Ok(()) => {
                stats.packets_sent.add(1);
                stats
                    .bytes_sent
                    .add(messages.iter().map(|m| m.data().len() as u64).sum());
            }
            Err(_) => stats.send_failed(),
        }
        sent
    }
}

/// Encodes an EVENT for one socket from its parts: what [`encode`] gives for
/// `Packet::event(nsp, event, args, id)`, without building the packet.
pub(crate) fn encode_event(
    kind: ParserKind,
    nsp: &str,
    event: &str,
    args: Cow<'_, [Value]>,
    id: Option<u64>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => {
            json_direct(|out| socketio::encode_event_into(out, nsp, event, &args, id))
        }
        // As for an ACK below: owned arguments move into the packet, borrowed ones are copied.
        ParserKind::MsgPack => {
            encode(kind, &Packet::event(nsp, event, args.into_owned(), id)).map(Direct::Messages)
        }
    }
}

/// Encodes the CONNECT that admits a socket (`{sid, pid?}`), as [`encode`] does the packet.
pub(crate) fn encode_connect_answer(
    kind: ParserKind,
    nsp: &str,
    sid: &str,
    pid: Option<&str>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => json_direct(|out| {
            socketio::encode_connect_answer_into(out, nsp, sid, pid)?;
            Ok(Vec::new())
        }),
        ParserKind::MsgPack => {
            let mut reply = ignis_proto::value::Map::with_capacity(2);
            reply.insert("sid", sid);
            if let Some(pid) = pid {
                reply.insert("pid", pid);
            }
            encode(kind, &Packet::connect(nsp, Some(Value::Map(reply)))).map(Direct::Messages)
        }
    }
}

/// Encodes an ACK for one socket from its parts, as [`encode_event`] does an EVENT.
pub(crate) fn encode_ack(
    kind: ParserKind,
    nsp: &str,
    id: u64,
    args: Cow<'_, [Value]>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => json_direct(|out| socketio::encode_ack_into(out, nsp, id, &args)),
        // The msgpack encoder takes a packet: owned arguments move into it, borrowed ones are
        // copied.
        ParserKind::MsgPack => {
            encode(kind, &Packet::ack(nsp, id, args.into_owned())).map(Direct::Messages)
        }
    }
}

/// Arguments encoded once, for a handler that answers many events the same way (`[{ok: true}]`):
/// each answer copies the encoded text instead of walking the values again. Pass a reference to
/// it wherever arguments go ([`IntoArgs`]).
///
/// ```
/// use ignis_socketio::{EncodedArgs, Value};
///
/// let ok = EncodedArgs::new(vec![Value::from(true)]);
/// assert_eq!(ok.values(), &[Value::from(true)]);
/// // In a handler: `event.ack(&ok)`.
/// ```
///
/// The encoded text serves acknowledgements with the JSON parser. The msgpack parser, arguments
/// holding binary values (which travel as attachments beside the text), and events (whose text
/// starts with the event name) encode the values on each send, borrowed, as
/// [`Args::values`] does.
#[derive(Debug, Clone)]
pub struct EncodedArgs {
    values: Vec<Value>,
    /// The JSON array, when the values can travel as text alone.
    json: Option<Box<str>>,
}

impl EncodedArgs {
    /// Encodes `values` once, to be sent many times.
    pub fn new(values: Vec<Value>) -> EncodedArgs {
        let json = socketio::encode_args_json(&values)
            .ok()
            .map(String::into_boxed_str);
        EncodedArgs { values, json }
    }

    /// The arguments, as given.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// The arguments of an event or an acknowledgement, after the event name: what
/// [`Socket::emit`](crate::Socket::emit), [`Event::ack`](crate::Event::ack),
/// [`AckSender::send`](crate::AckSender::send) and the [`Operators`](crate::Operators) take,
/// through [`IntoArgs`].
#[derive(Debug)]
pub struct Args<'a>(ArgsRepr<'a>);

#[derive(Debug)]
enum ArgsRepr<'a> {
    /// Several arguments (or none), owned or borrowed.
    Values(Cow<'a, [Value]>),
    /// One argument.
    One(Value),
    /// Arguments encoded once.
    Encoded(&'a EncodedArgs),
}

impl<'a> Args<'a> {
    /// Borrowed arguments, one per value: sent without copying them (a handler that sends a
    /// list it keeps, or the arguments of the event it answers).
    pub fn values(values: &'a [Value]) -> Args<'a> {
        Args(ArgsRepr::Values(Cow::Borrowed(values)))
    }

    /// One borrowed argument, sent without copying it.
    pub fn value(value: &'a Value) -> Args<'a> {
        Args::values(std::slice::from_ref(value))
    }

    /// Runs `f` on the values, borrowed where they can be.
    pub(crate) fn with_values<R>(self, f: impl FnOnce(Cow<'_, [Value]>) -> R) -> R {
        match self.0 {
            ArgsRepr::Values(values) => f(values),
            ArgsRepr::One(value) => f(Cow::Borrowed(std::slice::from_ref(&value))),
            ArgsRepr::Encoded(encoded) => f(Cow::Borrowed(&encoded.values)),
        }
    }

    /// The values, owned (a packet that keeps them).
    pub(crate) fn into_vec(self) -> Vec<Value> {
        match self.0 {
            ArgsRepr::Values(values) => values.into_owned(),
            ArgsRepr::One(value) => vec![value],
            ArgsRepr::Encoded(encoded) => encoded.values.clone(),
        }
    }
}

impl From<Vec<Value>> for Args<'_> {
    fn from(values: Vec<Value>) -> Self {
        Args(ArgsRepr::Values(Cow::Owned(values)))
    }
}

/// What can be sent as the arguments of an event or an acknowledgement (see [`Args`]):
///
/// - a reference to any serialisable data: **one** argument (a `&Vec<Value>` is one array);
/// - a [`Value`]: one argument, moved;
/// - a `Vec<Value>` or a `[Value; N]`: one argument per value, moved (`vec![]`: none);
/// - [`Args::values`] and [`Args::value`]: borrowed values, not copied;
/// - a reference to [`EncodedArgs`]: arguments encoded once.
///
/// ```
/// use ignis_socketio::{Args, EmitError, EncodedArgs, SocketRef, Value};
///
/// fn greet(socket: &SocketRef, ok: &EncodedArgs, kept: &[Value]) -> Result<(), EmitError> {
///     socket.emit("hello", &"world")?; // one argument
///     socket.emit("pair", vec![Value::from(1), Value::from(2)])?; // two arguments
///     socket.emit("kept", Args::values(kept))?; // borrowed, not copied
///     socket.emit("ok", ok) // encoded once
/// }
/// ```
pub trait IntoArgs<'a> {
    /// The arguments; fails if the data cannot be serialised.
    fn into_args(self) -> Result<Args<'a>, ValueError>;
}

impl<'a, T: Serialize + ?Sized> IntoArgs<'a> for &'a T {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(Args(ArgsRepr::One(ignis_proto::value::to_value(self)?)))
    }
}

impl<'a> IntoArgs<'a> for Value {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(Args(ArgsRepr::One(self)))
    }
}

impl<'a> IntoArgs<'a> for Vec<Value> {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(Args::from(self))
    }
}

impl<'a, const N: usize> IntoArgs<'a> for [Value; N] {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(Args::from(Vec::from(self)))
    }
}

impl<'a> IntoArgs<'a> for &'a EncodedArgs {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(Args(ArgsRepr::Encoded(self)))
    }
}

impl<'a> IntoArgs<'a> for Args<'a> {
    fn into_args(self) -> Result<Args<'a>, ValueError> {
        Ok(self)
    }
}

/// Encodes an ACK of `args`, from the text encoded once when there is one.
pub(crate) fn encode_ack_args(
    kind: ParserKind,
    nsp: &str,
    id: u64,
    args: Args<'_>,
) -> Result<Direct, EncodeError> {
    match args.0 {
        ArgsRepr::Encoded(encoded) => encode_ack_encoded(kind, nsp, id, encoded),
        other => Args(other).with_values(|values| encode_ack(kind, nsp, id, values)),
    }
}

/// Encodes an ACK of prepared arguments, as [`encode_ack`] does from the values.
fn encode_ack_encoded(
    kind: ParserKind,
    nsp: &str,
    id: u64,
    args: &EncodedArgs,
) -> Result<Direct, EncodeError> {
    match (kind, &args.json) {
        (ParserKind::Json, Some(json)) => json_direct(|out| {
            socketio::encode_ack_json_into(out, nsp, id, json)?;
            Ok(Vec::new())
        }),
        _ => encode_ack(kind, nsp, id, Cow::Borrowed(&args.values)),
    }
}

/// The text message written by `write` after room for the WebSocket frame header, so that its
/// frame shares the buffer instead of copying it, and its attachments.
fn json_text(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
) -> Result<(TextMessage, Vec<Bytes>), EncodeError> {
    let mut buf = TextMessage::buffer();
    let attachments = write(&mut buf)?;
    // The encoder writes only `str`s and ASCII: its output is UTF-8 without a check. The buffer
    // has its headroom, so this cannot fail; if it did, the packet is refused.
    let text = TextMessage::written_as_utf8(buf)
        .map_err(|e| EncodeError::Json(serde::ser::Error::custom(e)))?;
    Ok((text, attachments))
}

fn json_direct(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
) -> Result<Direct, EncodeError> {
    let (text, attachments) = json_text(write)?;
    if attachments.is_empty() {
        return Ok(Direct::Text(text));
    }
    Ok(Direct::Messages(with_attachments(text, attachments, true)))
}

fn json_messages(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
    compress: bool,
) -> Result<Messages, EncodeError> {
    let (text, attachments) = json_text(write)?;
    Ok(with_attachments(text, attachments, compress))
}

/// The text message, then one binary message per attachment.
fn with_attachments(text: TextMessage, attachments: Vec<Bytes>, compress: bool) -> Messages {
    let mut out = Messages::with_capacity(1 + attachments.len());
    out.push(text.into_shared(compress));
    out.extend(
        attachments
            .into_iter()
            .map(|b| SharedMessage::with_compression(Data::Binary(b), compress)),
    );
    out
}

#[cfg(test)]
mod tests {
    /// Calls on an engine session that write to it or close it, and the files of this crate
    /// that may make them besides this one: the fan-out's rounds (`Namespace::queue_round`, a
    /// restore's `Socket::keep_for_restore`) and its broadcast with acknowledgements.
    const WRITES: &[(&str, &[&str])] = &[
        (".send_text(", &[]),
        (".send_shared(", &[]),
        ("conn.send(", &[]),
        ("conn.close()", &[]),
        (".send_round(", &["namespace.rs", "socket.rs"]),
        (".send_shared_in(", &["namespace.rs"]),
    ];

    /// The settle rule is kept in one place only if every other send takes [`Outbound`]: a
    /// session written to from elsewhere could get a packet before a broadcast made earlier.
    #[test]
    fn only_the_outbound_path_and_the_fan_out_write_to_a_session() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the crate's sources") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if !name.ends_with(".rs") || name == "outbound.rs" {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).expect("a source file");
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (call, allowed) in WRITES {
                    if line.contains(call) && !allowed.contains(&name.as_str()) {
                        found.push(format!("{name}:{}: {}", number + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            files > 10,
            "the sources were not found in {}",
            dir.display()
        );
        assert!(
            found.is_empty(),
            "sends that do not take the outbound path:\n{}",
            found.join("\n")
        );
    }
}
