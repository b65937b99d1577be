//! Handler types, and how their futures run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use ignis_proto::Value;

use crate::socket::{DisconnectReason, Event, SocketRef};
use crate::{ConnectError, adapter::BoxFuture};

pub(crate) type ConnectHandler = Arc<dyn Fn(SocketRef) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type Middleware =
    Arc<dyn Fn(SocketRef) -> BoxFuture<'static, Result<(), ConnectError>> + Send + Sync>;
pub(crate) type EventHandler =
    Arc<dyn Fn(SocketRef, Event) -> BoxFuture<'static, ()> + Send + Sync>;
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
