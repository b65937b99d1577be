//! The Engine.IO v4 client: handshake, heartbeat, the two transports and the upgrade from
//! polling to WebSocket.
//!
//! One task per connection owns the transport. The layer above pushes packets into an
//! [`OutQueue`] without waiting (a full queue is an error it can report at once) and receives
//! [`EngineEvent`]s from a bounded channel, so a slow reader slows the transport down instead of
//! growing a buffer.

mod polling;
mod websocket;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ignis_proto::engineio::{self, Data, OpenInfo, Packet, Str};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until, timeout};

use crate::error::{DisconnectReason, Error, TransportError};
use crate::options::{Options, Transport};
use polling::Http;
use websocket::{WsConn, WsIn};

/// Most packets in one polling response.
const MAX_PAYLOAD_PACKETS: usize = 100_000;
/// Events waiting for the layer above.
const EVENT_CHANNEL: usize = 256;

/// What the connection reports to the layer above.
#[derive(Debug)]
pub(crate) enum EngineEvent {
    Message(Data),
    /// The connection is over; nothing follows.
    Closed(DisconnectReason, Option<TransportError>),
}

#[derive(Default)]
struct QueueState {
    packets: VecDeque<Packet>,
    closing: bool,
}

/// Packets waiting for the transport, shared by the connection task and its users.
pub(crate) struct OutQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    limit: usize,
    websocket: AtomicBool,
}

impl OutQueue {
    fn new(limit: usize, websocket: bool) -> OutQueue {
        OutQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            limit,
            websocket: AtomicBool::new(websocket),
        }
    }

    /// Queues messages, all or none.
    pub(crate) fn push(&self, messages: Vec<Data>) -> Result<(), Error> {
        {
            let mut state = self.state.lock();
            if state.closing {
                return Err(Error::NotConnected);
            }
            if state.packets.len() + messages.len() > self.limit {
                return Err(Error::QueueFull(self.limit));
            }
            state
                .packets
                .extend(messages.into_iter().map(Packet::Message));
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Heartbeat answers go out whatever the limit.
    fn push_control(&self, packet: Packet) {
        self.state.lock().packets.push_back(packet);
        self.notify.notify_one();
    }

    /// Sends what is queued, then closes the connection.
    pub(crate) fn close(&self) {
        self.state.lock().closing = true;
        self.notify.notify_one();
    }

    /// The transport in use.
    pub(crate) fn transport(&self) -> Transport {
        if self.websocket.load(Ordering::Relaxed) {
            Transport::Websocket
        } else {
            Transport::Polling
        }
    }

    fn take(&self) -> (Vec<Packet>, bool) {
        let mut state = self.state.lock();
        (state.packets.drain(..).collect(), state.closing)
    }

    fn has_work(&self) -> bool {
        let state = self.state.lock();
        !state.packets.is_empty() || state.closing
    }
}

/// An open connection, as handed to the layer above.
pub(crate) struct Connection {
    pub(crate) out: Arc<OutQueue>,
    pub(crate) events: mpsc::Receiver<EngineEvent>,
}

/// Opens a connection with the first configured transport, within the connect timeout.
pub(crate) async fn open(options: Arc<Options>) -> Result<Connection, TransportError> {
    let first = options
        .transports
        .first()
        .copied()
        .unwrap_or(Transport::Polling);
    let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
    let out = Arc::new(OutQueue::new(
        options.max_queued_messages,
        first == Transport::Websocket,
    ));
    let task_out = Arc::clone(&out);
    match first {
        Transport::Websocket => {
            let path = options.target.request_path(Transport::Websocket, None);
            let (mut ws, info) = timeout(options.timeout, async {
                let mut ws = WsConn::connect(
                    &options.target,
                    &path,
                    &options.headers,
                    options.per_message_deflate,
                    options.max_message_size,
                )
                .await?;
                let info = match ws.read().await? {
                    WsIn::Text(text) => parse_open(text)?,
                    WsIn::Closed => return Err(TransportError::Closed),
                    other => {
                        return Err(TransportError::Protocol(format!(
                            "expected the open packet, got {other:?}"
                        )));
                    }
                };
                Ok((ws, info))
            })
            .await
            .map_err(|_| TransportError::Timeout)??;
            tokio::spawn(async move {
                let hb = Heartbeat::new(&info);
                let (reason, err) = run_websocket(&mut ws, &task_out, &tx, hb).await;
                finish(ws, &tx, reason, err).await;
            });
        }
        Transport::Polling => {
            let http = Http::new(&options.target, &options.headers, options.max_message_size);
            let path = options.target.request_path(Transport::Polling, None);
            let body = timeout(options.timeout, http.get(&path))
                .await
                .map_err(|_| TransportError::Timeout)??;
            let mut packets = engineio::decode_payload(body, MAX_PAYLOAD_PACKETS)
                .map_err(|e| TransportError::Protocol(e.to_string()))?
                .into_iter();
            let info = match packets.next() {
                Some(Packet::Open(json)) => parse_open_json(&json)?,
                other => {
                    return Err(TransportError::Protocol(format!(
                        "expected the open packet, got {other:?}"
                    )));
                }
            };
            let rest: Vec<Packet> = packets.collect();
            tokio::spawn(async move {
                let polling = Polling {
                    http,
                    options,
                    info,
                    out: task_out,
                    events: tx,
                };
                polling.run(rest).await;
            });
        }
    }
    Ok(Connection { out, events: rx })
}

fn parse_open(text: Bytes) -> Result<OpenInfo, TransportError> {
    let text =
        Str::from_utf8(text).map_err(|_| TransportError::Protocol("invalid UTF-8".into()))?;
    match Packet::decode_text(text) {
        Ok(Packet::Open(json)) => parse_open_json(&json),
        Ok(other) => Err(TransportError::Protocol(format!(
            "expected the open packet, got {other:?}"
        ))),
        Err(e) => Err(TransportError::Protocol(e.to_string())),
    }
}

fn parse_open_json(json: &str) -> Result<OpenInfo, TransportError> {
    serde_json::from_str(json)
        .map_err(|e| TransportError::Protocol(format!("invalid open packet: {e}")))
}

/// The server pings every `pingInterval`; silence for `pingInterval + pingTimeout` means the
/// connection is lost.
struct Heartbeat {
    window: Duration,
    deadline: Instant,
}

impl Heartbeat {
    fn new(info: &OpenInfo) -> Heartbeat {
        let window = Duration::from_millis(info.ping_interval.saturating_add(info.ping_timeout));
        Heartbeat {
            window,
            deadline: Instant::now() + window,
        }
    }

    fn reset(&mut self) {
        self.deadline = Instant::now() + self.window;
    }
}

/// What to do after an incoming packet.
enum Next {
    Continue,
    Stop(DisconnectReason, Option<TransportError>),
}

/// Handles one packet from the server, on either transport.
async fn on_packet(
    packet: Packet,
    out: &OutQueue,
    events: &mpsc::Sender<EngineEvent>,
    hb: &mut Heartbeat,
) -> Next {
    match packet {
        Packet::Ping(_) => {
            hb.reset();
            out.push_control(Packet::Pong(Str::default()));
        }
        Packet::Message(data) => {
            if events.send(EngineEvent::Message(data)).await.is_err() {
                return Next::Stop(DisconnectReason::IoClientDisconnect, None);
            }
        }
        Packet::Close => return Next::Stop(DisconnectReason::TransportClose, None),
        Packet::Open(_) | Packet::Pong(_) | Packet::Upgrade | Packet::Noop => {}
    }
    Next::Continue
}

fn decode_text(text: Bytes) -> Result<Packet, TransportError> {
    let text =
        Str::from_utf8(text).map_err(|_| TransportError::Protocol("invalid UTF-8".into()))?;
    Packet::decode_text(text).map_err(|e| TransportError::Protocol(e.to_string()))
}

async fn run_websocket(
    ws: &mut WsConn,
    out: &OutQueue,
    events: &mpsc::Sender<EngineEvent>,
    mut hb: Heartbeat,
) -> (DisconnectReason, Option<TransportError>) {
    loop {
        if out.has_work() {
            let (packets, closing) = out.take();
            if let Err(e) = ws.send(&packets).await {
                return (DisconnectReason::TransportError, Some(e));
            }
            if closing {
                let _ = ws.send(&[Packet::Close]).await;
                return (DisconnectReason::IoClientDisconnect, None);
            }
        }
        let next = tokio::select! {
            read = ws.read() => match read {
                Ok(WsIn::Text(text)) => match decode_text(text) {
                    Ok(packet) => on_packet(packet, out, events, &mut hb).await,
                    Err(e) => Next::Stop(DisconnectReason::ParseError, Some(e)),
                },
                Ok(WsIn::Binary(data)) => {
                    on_packet(Packet::Message(Data::Binary(data)), out, events, &mut hb).await
                }
                Ok(WsIn::Ping(data)) => match ws.pong(&data).await {
                    Ok(()) => Next::Continue,
                    Err(e) => Next::Stop(DisconnectReason::TransportError, Some(e)),
                },
                Ok(WsIn::Closed) => Next::Stop(DisconnectReason::TransportClose, None),
                Err(e @ (TransportError::WebSocket(_) | TransportError::Protocol(_))) => {
                    Next::Stop(DisconnectReason::ParseError, Some(e))
                }
                Err(e) => Next::Stop(DisconnectReason::TransportError, Some(e)),
            },
            () = out.notify.notified() => Next::Continue,
            () = sleep_until(hb.deadline) => Next::Stop(DisconnectReason::PingTimeout, None),
        };
        if let Next::Stop(reason, err) = next {
            return (reason, err);
        }
    }
}

/// Ends a WebSocket connection and reports why.
async fn finish(
    ws: WsConn,
    events: &mpsc::Sender<EngineEvent>,
    reason: DisconnectReason,
    err: Option<TransportError>,
) {
    ws.close().await;
    let _ = events.send(EngineEvent::Closed(reason, err)).await;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Polls a future held in an option; never completes when there is none.
async fn maybe<T>(slot: &mut Option<BoxFuture<T>>) -> T {
    match slot.as_mut() {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

struct Polling {
    http: Http,
    options: Arc<Options>,
    info: OpenInfo,
    out: Arc<OutQueue>,
    events: mpsc::Sender<EngineEvent>,
}

impl Polling {
    async fn run(self, first: Vec<Packet>) {
        let mut hb = Heartbeat::new(&self.info);
        for packet in first {
            if let Next::Stop(reason, err) =
                on_packet(packet, &self.out, &self.events, &mut hb).await
            {
                let _ = self.events.send(EngineEvent::Closed(reason, err)).await;
                return;
            }
        }
        match self.poll(&mut hb).await {
            Ok(mut ws) => {
                self.out.websocket.store(true, Ordering::Relaxed);
                let (reason, err) = run_websocket(&mut ws, &self.out, &self.events, hb).await;
                finish(ws, &self.events, reason, err).await;
            }
            Err((reason, err)) => {
                let _ = self.events.send(EngineEvent::Closed(reason, err)).await;
            }
        }
    }

    fn can_upgrade(&self) -> bool {
        self.options.upgrade
            && self.options.transports.contains(&Transport::Websocket)
            && self.info.upgrades.iter().any(|u| u == "websocket")
    }

    /// Runs the polling loop until the connection ends, or until the WebSocket probe succeeded
    /// and the polling requests in flight are done: then gives the upgraded WebSocket.
    async fn poll(
        &self,
        hb: &mut Heartbeat,
    ) -> Result<WsConn, (DisconnectReason, Option<TransportError>)> {
        let sid = self.info.sid.as_str();
        let path = self
            .options
            .target
            .request_path(Transport::Polling, Some(sid));
        let mut get: Option<BoxFuture<Result<Bytes, TransportError>>> = None;
        let mut post: Option<BoxFuture<Result<(), TransportError>>> = None;
        let mut probe: Option<BoxFuture<Result<WsConn, TransportError>>> =
            self.can_upgrade().then(|| self.probe());
        let mut upgraded: Option<WsConn> = None;
        let mut closing = false;
        loop {
            if let Some(ws) = upgraded.take_if(|_| get.is_none() && post.is_none()) {
                return self.switch(ws).await;
            }
            if closing && post.is_none() {
                return Err((DisconnectReason::IoClientDisconnect, None));
            }
            if get.is_none() && upgraded.is_none() && !closing {
                let http = self.http.clone();
                let path = path.clone();
                get = Some(Box::pin(async move { http.get(&path).await }));
            }
            if post.is_none() && upgraded.is_none() && self.out.has_work() {
                let (mut packets, close) = self.out.take();
                if close {
                    closing = true;
                    probe = None;
                    get = None;
                    packets.push(Packet::Close);
                }
                let mut body = Vec::new();
                engineio::encode_payload(&packets, &mut body);
                let http = self.http.clone();
                let path = path.clone();
                post = Some(Box::pin(async move {
                    http.post(&path, Bytes::from(body)).await
                }));
            }
            tokio::select! {
                result = maybe(&mut get) => {
                    get = None;
                    let body = result.map_err(|e| (DisconnectReason::TransportError, Some(e)))?;
                    let packets = engineio::decode_payload(body, MAX_PAYLOAD_PACKETS).map_err(|e| {
                        (DisconnectReason::ParseError, Some(TransportError::Protocol(e.to_string())))
                    })?;
                    for packet in packets {
                        if let Next::Stop(reason, err) = on_packet(packet, &self.out, &self.events, hb).await {
                            return Err((reason, err));
                        }
                    }
                }
                result = maybe(&mut post) => {
                    post = None;
                    if let Err(e) = result {
                        if closing {
                            return Err((DisconnectReason::IoClientDisconnect, None));
                        }
                        return Err((DisconnectReason::TransportError, Some(e)));
                    }
                }
                result = maybe(&mut probe) => {
                    probe = None;
                    match result {
                        Ok(ws) => upgraded = Some(ws),
                        Err(e) => tracing::debug!("upgrade to websocket failed: {e}"),
                    }
                }
                () = self.out.notify.notified() => {}
                () = sleep_until(hb.deadline) => return Err((DisconnectReason::PingTimeout, None)),
            }
        }
    }

    /// Opens the WebSocket for this session and checks it with the `probe` ping.
    fn probe(&self) -> BoxFuture<Result<WsConn, TransportError>> {
        let options = Arc::clone(&self.options);
        let path = options
            .target
            .request_path(Transport::Websocket, Some(&self.info.sid));
        Box::pin(async move {
            timeout(options.timeout, async {
                let mut ws = WsConn::connect(
                    &options.target,
                    &path,
                    &options.headers,
                    options.per_message_deflate,
                    options.max_message_size,
                )
                .await?;
                ws.send(&[Packet::Ping(Str::from_static("probe"))]).await?;
                match ws.read().await? {
                    WsIn::Text(text) if &text[..] == b"3probe" => Ok(ws),
                    other => Err(TransportError::Protocol(format!(
                        "unexpected answer to the upgrade probe: {other:?}"
                    ))),
                }
            })
            .await
            .map_err(|_| TransportError::Timeout)?
        })
    }

    /// Completes the upgrade: the `upgrade` packet, then whatever was queued meanwhile.
    async fn switch(
        &self,
        mut ws: WsConn,
    ) -> Result<WsConn, (DisconnectReason, Option<TransportError>)> {
        ws.send(&[Packet::Upgrade])
            .await
            .map_err(|e| (DisconnectReason::TransportError, Some(e)))?;
        Ok(ws)
    }
}
