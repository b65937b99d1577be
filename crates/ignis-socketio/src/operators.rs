//! Broadcast operators: who a send is for (`to`, `except`), how (`volatile`, `local`,
//! `compress`, `timeout`), and the cluster-wide operations on the sockets they select.

use std::sync::Arc;
use std::time::Duration;

use ignis_engine::Sid;
use ignis_proto::Value;
use ignis_proto::socketio::Packet;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::adapter::{AckCollector, BroadcastOptions, RemoteSocket};
use crate::error::{AckTimeout, BroadcastAckError};
use crate::namespace::Namespace;
use crate::outbound::IntoArgs;
use crate::socket::{IntoRooms, check_event_name};
use crate::{AdapterError, EmitError};

/// How long a broadcast waits for acknowledgements when no `timeout` was given.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A selection of sockets and the flags of what is sent to them.
#[derive(Debug, Clone)]
pub struct Operators {
    ns: Arc<Namespace>,
    opts: BroadcastOptions,
}

impl Operators {
    pub(crate) fn new(ns: Arc<Namespace>) -> Operators {
        Operators {
            ns,
            opts: BroadcastOptions::default(),
        }
    }

    /// Also sends to the sockets in `rooms`.
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        for room in rooms.into_rooms() {
            if !self.opts.rooms.contains(&room) {
                self.opts.rooms.push(room);
            }
        }
        self
    }

    /// Same as [`Operators::to`].
    pub fn within(self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Leaves out the sockets in `rooms`.
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        for room in rooms.into_rooms() {
            if !self.opts.except.contains(&room) {
                self.opts.except.push(room);
            }
        }
        self
    }

    /// Only this node.
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// Drop the packet for clients not ready to take it rather than queue it.
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// Whether to compress (permessage-deflate above its threshold).
    pub fn compress(mut self, compress: bool) -> Self {
        self.opts.flags.compress = Some(compress);
        self
    }

    /// How long [`Operators::emit_with_ack`] waits.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.flags.timeout = Some(timeout);
        self
    }

    /// The rooms, exceptions and flags chosen so far.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// Sends an event to the selected sockets, with any [`IntoArgs`]: `&data` (one
    /// argument), `vec![..]` (one per value), [`Args::values`](crate::Args::values) or
    /// `&EncodedArgs`. The packet is encoded once for every recipient.
    pub fn emit<'a>(&self, event: &str, args: impl IntoArgs<'a>) -> Result<(), EmitError> {
        check_event_name(event)?;
        let args = args.into_args()?.into_vec();
        let packet = Packet::event(self.ns.name(), event, args, None);
        self.ns.adapter().broadcast(&self.ns, packet, &self.opts)?;
        Ok(())
    }

    /// Sends an event with any number of arguments, and resolves once the adapter confirmed
    /// it (see [`Adapter::broadcast_confirmed`](crate::Adapter::broadcast_confirmed)): with
    /// a log-based cluster adapter, events confirmed one after another reach every client in
    /// that order, whichever node sent them.
    pub async fn emit_confirmed<'a>(
        &self,
        event: &str,
        args: impl IntoArgs<'a>,
    ) -> Result<(), EmitError> {
        check_event_name(event)?;
        let args = args.into_args()?.into_vec();
        let packet = Packet::event(self.ns.name(), event, args, None);
        self.ns
            .adapter()
            .broadcast_confirmed(&self.ns, packet, &self.opts)
            .await?;
        Ok(())
    }

    /// Sends an event that asks every recipient for an acknowledgement and collects the answers
    /// (each client's arguments). Fails with [`AckTimeout`] if not every client answered within
    /// the timeout; the answers that did arrive are in the error.
    pub async fn emit_with_ack<'a>(
        &self,
        event: &str,
        args: impl IntoArgs<'a>,
    ) -> Result<Vec<Vec<Value>>, BroadcastAckError> {
        check_event_name(event)?;
        let args = args.into_args().map_err(EmitError::from)?.into_vec();
        let timeout = self.opts.flags.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
        let id = self.ns.next_ack_id();
        let packet = Packet::event(self.ns.name(), event, args, Some(id));
        let collector = Arc::new(Collector::default());
        let as_dyn: Arc<dyn AckCollector> = collector.clone();
        self.ns
            .adapter()
            .broadcast_with_ack(&self.ns, packet, &self.opts, as_dyn)?;
        let servers = if self.opts.flags.local {
            1
        } else {
            self.ns.adapter().server_count().await?
        };
        let wait = async {
            loop {
                let notified = collector.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if collector.complete(servers) {
                    return;
                }
                notified.await;
            }
        };
        let in_time = tokio::time::timeout(timeout, wait).await.is_ok();
        let answers = std::mem::take(&mut collector.state.lock().answers);
        if in_time {
            Ok(answers)
        } else {
            Err(BroadcastAckError::Timeout(AckTimeout { answers }))
        }
    }

    /// The selected sockets, on every node.
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, AdapterError> {
        self.ns.adapter().fetch_sockets(&self.ns, &self.opts).await
    }

    /// Makes the selected sockets join `rooms`.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns
            .adapter()
            .add_sockets(&self.ns, &self.opts, &rooms)
            .await
    }

    /// Makes the selected sockets leave `rooms`.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns
            .adapter()
            .del_sockets(&self.ns, &self.opts, &rooms)
            .await
    }

    /// Disconnects the selected sockets; with `close`, their whole connections too.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .disconnect_sockets(&self.ns, &self.opts, close)
            .await
    }
}

#[derive(Default)]
struct CollectorState {
    expected: usize,
    nodes_reported: usize,
    answers: Vec<Vec<Value>>,
}

#[derive(Default)]
struct Collector {
    state: Mutex<CollectorState>,
    changed: Notify,
}

impl Collector {
    fn complete(&self, servers: usize) -> bool {
        let s = self.state.lock();
        s.nodes_reported >= servers && s.answers.len() >= s.expected
    }
}

impl AckCollector for Collector {
    fn expect(&self, clients: usize) {
        {
            let mut s = self.state.lock();
            s.expected += clients;
            s.nodes_reported += 1;
        }
        self.changed.notify_one();
    }

    fn answer(&self, _sid: Sid, args: Vec<Value>) {
        self.state.lock().answers.push(args);
        self.changed.notify_one();
    }

    fn answer_remote(&self, args: Vec<Value>) {
        self.state.lock().answers.push(args);
        self.changed.notify_one();
    }
}
