//! Handler types, the tables that hold a socket's handlers, and how their futures run.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use ignis_engine::SidHash;
use ignis_proto::Value;
use smallvec::SmallVec;

use crate::socket::{DisconnectReason, Event, SocketRef};
use crate::{ConnectError, adapter::BoxFuture};

pub(crate) type ConnectHandler = Arc<dyn Fn(SocketRef) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type Middleware =
    Arc<dyn Fn(SocketRef) -> BoxFuture<'static, Result<(), ConnectError>> + Send + Sync>;
/// A handler of one event.
#[derive(Clone)]
pub(crate) enum EventHandler {
    /// A handler that may wait: its future runs as [`run`] says.
    Async(Arc<dyn Fn(SocketRef, Event) -> BoxFuture<'static, ()> + Send + Sync>),
    /// A handler that is done when it returns: called in place, with no future to box and poll
    /// (a few hundred instructions on every event of a busy socket).
    Sync(Arc<dyn Fn(SocketRef, Event) + Send + Sync>),
}

impl EventHandler {
    pub(crate) fn call(&self, socket: SocketRef, event: Event) {
        match self {
            EventHandler::Async(handler) => run(handler(socket, event)),
            EventHandler::Sync(handler) => handler(socket, event),
        }
    }

    pub(crate) fn from_async<F, Fut>(handler: F) -> EventHandler
    where
        F: Fn(SocketRef, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        EventHandler::Async(Arc::new(move |s, e| Box::pin(handler(s, e))))
    }

    pub(crate) fn from_sync<F>(handler: F) -> EventHandler
    where
        F: Fn(SocketRef, Event) + Send + Sync + 'static,
    {
        EventHandler::Sync(Arc::new(handler))
    }

    #[cfg(test)]
    fn same_as(&self, other: &EventHandler) -> bool {
        match (self, other) {
            (EventHandler::Async(a), EventHandler::Async(b)) => Arc::ptr_eq(a, b),
            (EventHandler::Sync(a), EventHandler::Sync(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
pub(crate) type AnyHandler =
    Arc<dyn Fn(SocketRef, String, Vec<Value>) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type DisconnectHandler =
    Arc<dyn Fn(SocketRef, DisconnectReason) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type ServerEventHandler =
    Arc<dyn Fn(Vec<Value>) -> BoxFuture<'static, Option<Value>> + Send + Sync>;

/// Runs a handler's future: polled once right here, so that a handler that does not wait
/// finishes without a task of its own, in the order the packets arrived; a handler that waits
/// continues on a task.
pub(crate) fn run(future: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let mut future = future;
    let mut cx = Context::from_waker(Waker::noop());
    // A future that registered the no-op waker is polled again by its task, which registers a
    // real one: every well-behaved future re-registers its waker on each poll.
    if future.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(future);
    }
}

/// A table of socket event handlers that many sockets can share.
///
/// Handlers registered with [`Socket::on`](crate::Socket::on) belong to one socket. A server
/// that registers the same handlers on every socket can build them once in a `SocketHandlers`
/// and [`attach`](crate::Socket::attach) the table to each socket: the socket then keeps one
/// pointer instead of its own copy of every handler. Attached tables and the socket's own
/// handlers run in the order they were added to the socket, exactly as if every handler had
/// been registered on the socket itself.
#[derive(Clone, Default)]
pub struct SocketHandlers {
    events: EventTable,
    any: Vec<AnyHandler>,
    disconnecting: Vec<DisconnectHandler>,
    disconnect: Vec<DisconnectHandler>,
}

impl SocketHandlers {
    /// An empty table.
    pub fn new() -> SocketHandlers {
        SocketHandlers::default()
    }

    /// Adds a handler for an event, as [`Socket::on`](crate::Socket::on).
    pub fn on<F, Fut>(&mut self, event: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(SocketRef, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_event(event.into(), EventHandler::from_async(handler));
        self
    }

    /// Adds a handler that does all its work before it returns, as
    /// [`Socket::on_sync`](crate::Socket::on_sync): it runs in place, without a future.
    pub fn on_sync<F>(&mut self, event: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(SocketRef, Event) + Send + Sync + 'static,
    {
        self.push_event(event.into(), EventHandler::from_sync(handler));
        self
    }

    /// Adds a handler that sees every event, as [`Socket::on_any`](crate::Socket::on_any).
    pub fn on_any<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(SocketRef, String, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.any
            .push(Arc::new(move |s, n, a| Box::pin(handler(s, n, a))));
        self
    }

    /// As [`Socket::on_disconnecting`](crate::Socket::on_disconnecting).
    pub fn on_disconnecting<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(SocketRef, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.disconnecting
            .push(Arc::new(move |s, r| Box::pin(handler(s, r))));
        self
    }

    /// As [`Socket::on_disconnect`](crate::Socket::on_disconnect).
    pub fn on_disconnect<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(SocketRef, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.disconnect
            .push(Arc::new(move |s, r| Box::pin(handler(s, r))));
        self
    }

    /// Removes every handler of an event.
    pub fn off(&mut self, event: &str) -> &mut Self {
        self.events.remove(event);
        self
    }

    fn push_event(&mut self, event: String, handler: EventHandler) {
        self.events.push(event, handler);
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.any.is_empty()
            && self.disconnecting.is_empty()
            && self.disconnect.is_empty()
    }
}

/// Above this many events, a table looks names up by hash instead of by a scan.
const FEW_EVENTS: usize = 8;

/// The handlers of a table, by event name. Every event of a busy socket is looked up in each
/// table attached to it (three in the server): a scan of a few names, most of which differ in
/// length from the one sought, costs a fraction of hashing it for each table.
#[derive(Clone)]
enum EventTable {
    Few(Vec<(String, Vec<EventHandler>)>),
    /// Keyed by the server's own event names: a client choosing the name it sends cannot crowd
    /// a bucket, so the engine's fast seeded hash serves here as for ids.
    Many(HashMap<String, Vec<EventHandler>, SidHash>),
}

impl Default for EventTable {
    fn default() -> Self {
        EventTable::Few(Vec::new())
    }
}

impl EventTable {
    fn get(&self, event: &str) -> Option<&Vec<EventHandler>> {
        match self {
            EventTable::Few(entries) => entries
                .iter()
                .find(|(name, _)| name == event)
                .map(|(_, handlers)| handlers),
            EventTable::Many(map) => map.get(event),
        }
    }

    fn push(&mut self, event: String, handler: EventHandler) {
        match self {
            EventTable::Few(entries) => {
                if let Some((_, handlers)) = entries.iter_mut().find(|(name, _)| *name == event) {
                    handlers.push(handler);
                } else if entries.len() < FEW_EVENTS {
                    entries.push((event, vec![handler]));
                } else {
                    let mut map: HashMap<_, _, SidHash> =
                        std::mem::take(entries).into_iter().collect();
                    map.entry(event).or_default().push(handler);
                    *self = EventTable::Many(map);
                }
            }
            EventTable::Many(map) => map.entry(event).or_default().push(handler),
        }
    }

    fn remove(&mut self, event: &str) {
        match self {
            EventTable::Few(entries) => entries.retain(|(name, _)| name != event),
            EventTable::Many(map) => {
                map.remove(event);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            EventTable::Few(entries) => entries.is_empty(),
            EventTable::Many(map) => map.is_empty(),
        }
    }
}

/// One table of a socket's handlers.
#[derive(Clone)]
struct Layer {
    table: Arc<SocketHandlers>,
    /// The socket's own handlers, which later registrations may extend; attached tables are
    /// never changed, a socket that changes one gets its own copy.
    own: bool,
}

/// The handlers of one socket: the tables attached to it and its own handlers, in the order
/// they were added. Copy-on-write: dispatching an event takes a reference count on the list
/// and then runs without the lock; registering (rare) rebuilds the list.
#[derive(Clone, Default)]
pub(crate) struct Handlers(Option<Arc<[Layer]>>);

impl Handlers {
    fn layers(&self) -> &[Layer] {
        self.0.as_deref().unwrap_or_default()
    }

    /// Changes the socket's own table (the last one, or a new one after the attached tables).
    fn edit_own(&mut self, change: impl FnOnce(&mut SocketHandlers)) {
        let mut layers = self.layers().to_vec();
        match layers.last_mut() {
            Some(last) if last.own => change(Arc::make_mut(&mut last.table)),
            _ => {
                let mut table = SocketHandlers::default();
                change(&mut table);
                layers.push(Layer {
                    table: Arc::new(table),
                    own: true,
                });
            }
        }
        self.0 = Some(Arc::from(layers));
    }

    pub(crate) fn on(&mut self, event: String, handler: EventHandler) {
        self.edit_own(|t| t.push_event(event, handler));
    }

    pub(crate) fn on_any(&mut self, handler: AnyHandler) {
        self.edit_own(|t| t.any.push(handler));
    }

    pub(crate) fn on_disconnecting(&mut self, handler: DisconnectHandler) {
        self.edit_own(|t| t.disconnecting.push(handler));
    }

    pub(crate) fn on_disconnect(&mut self, handler: DisconnectHandler) {
        self.edit_own(|t| t.disconnect.push(handler));
    }

    pub(crate) fn attach(&mut self, table: &Arc<SocketHandlers>) {
        // Every socket gets its tables attached one by one: one allocation each, of the exact
        // size (an exact-size iterator collects straight into the shared slice).
        let layer = Layer {
            table: Arc::clone(table),
            own: false,
        };
        let layers: Arc<[Layer]> = self
            .layers()
            .iter()
            .cloned()
            .chain(std::iter::once(layer))
            .collect();
        self.0 = Some(layers);
    }

    pub(crate) fn off(&mut self, event: &str) {
        if !self
            .layers()
            .iter()
            .any(|l| l.table.events.get(event).is_some())
        {
            return;
        }
        let layers: Vec<Layer> = self
            .layers()
            .iter()
            .filter_map(|layer| {
                if layer.table.events.get(event).is_none() {
                    return Some(layer.clone());
                }
                let mut table = SocketHandlers::clone(&layer.table);
                table.events.remove(event);
                (!table.is_empty()).then(|| Layer {
                    table: Arc::new(table),
                    own: true,
                })
            })
            .collect();
        self.0 = (!layers.is_empty()).then(|| Arc::from(layers));
    }

    /// The handlers of every table that sees all events, in order.
    pub(crate) fn any(&self) -> impl Iterator<Item = &AnyHandler> {
        self.layers().iter().flat_map(|l| l.table.any.iter())
    }

    /// The handlers of `event`, in order, collected: the lookup runs once per table.
    pub(crate) fn matching(&self, event: &str) -> SmallVec<[&EventHandler; 4]> {
        self.layers()
            .iter()
            .filter_map(|l| l.table.events.get(event))
            .flatten()
            .collect()
    }

    pub(crate) fn disconnecting(&self) -> impl Iterator<Item = &DisconnectHandler> {
        self.layers()
            .iter()
            .flat_map(|l| l.table.disconnecting.iter())
    }

    pub(crate) fn disconnect(&self) -> impl Iterator<Item = &DisconnectHandler> {
        self.layers().iter().flat_map(|l| l.table.disconnect.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> EventHandler {
        EventHandler::from_async(|_, _| async {})
    }

    fn same(got: Vec<&EventHandler>, want: &[&EventHandler]) -> bool {
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a.same_as(b))
    }

    #[test]
    fn attached_tables_and_own_handlers_run_in_registration_order() {
        let (f1, f2, f3) = (handler(), handler(), handler());
        let g = EventHandler::from_sync(|_, _| {});
        let mut shared = SocketHandlers::new();
        shared.push_event("a".into(), f2.clone());
        shared.push_event("b".into(), g.clone());
        let shared = Arc::new(shared);

        let mut h = Handlers::default();
        h.on("a".into(), f1.clone());
        h.attach(&shared);
        h.on("a".into(), f3.clone());
        assert!(same(h.matching("a").to_vec(), &[&f1, &f2, &f3]));
        assert!(same(h.matching("b").to_vec(), &[&g]));
        assert_eq!(h.matching("c").len(), 0);

        // A second socket attaching the same table shares it, and does not see the first
        // socket's own handlers.
        let mut other = Handlers::default();
        other.attach(&shared);
        assert!(same(other.matching("a").to_vec(), &[&f2]));
        assert!(Arc::ptr_eq(&other.layers()[0].table, &shared));

        // `off` removes the event from every table, the shared one only for this socket.
        h.off("a");
        assert_eq!(h.matching("a").len(), 0);
        assert!(same(h.matching("b").to_vec(), &[&g]));
        assert!(same(other.matching("a").to_vec(), &[&f2]));
        assert!(same(
            shared.events.get("a").unwrap().iter().collect(),
            &[&f2]
        ));
    }

    /// A table of few events scans them, a larger one hashes: both find every handler of a
    /// name, in order, and forget a removed name.
    #[test]
    fn tables_of_few_and_many_events_find_the_same_handlers() {
        for count in [1, FEW_EVENTS, FEW_EVENTS + 1, 40] {
            let names: Vec<String> = (0..count).map(|i| format!("e{i}")).collect();
            let first: Vec<EventHandler> = names.iter().map(|_| handler()).collect();
            let second = handler();
            let mut table = EventTable::default();
            for (name, h) in names.iter().zip(&first) {
                table.push(name.clone(), h.clone());
            }
            // A second handler for the first name, after the table may have grown.
            table.push(names[0].clone(), second.clone());
            assert_eq!(matches!(table, EventTable::Many(_)), count > FEW_EVENTS);
            for (i, (name, h)) in names.iter().zip(&first).enumerate() {
                let got: Vec<&EventHandler> = table.get(name).unwrap().iter().collect();
                if i == 0 {
                    assert!(same(got, &[h, &second]), "{count}: {name}");
                } else {
                    assert!(same(got, &[h]), "{count}: {name}");
                }
            }
            assert!(table.get("e").is_none());
            assert!(table.get(&format!("e{count}")).is_none());
            table.remove(&names[0]);
            assert!(table.get(&names[0]).is_none());
            for name in &names[1..] {
                table.remove(name);
            }
            assert!(table.is_empty());
        }
    }

    #[test]
    fn a_dispatch_in_progress_keeps_the_handlers_it_started_with() {
        let (f1, f2) = (handler(), handler());
        let mut h = Handlers::default();
        h.on("a".into(), f1.clone());
        let snapshot = h.clone();
        h.on("a".into(), f2.clone());
        assert!(same(snapshot.matching("a").to_vec(), &[&f1]));
        assert!(same(h.matching("a").to_vec(), &[&f1, &f2]));
    }
}
