//! This node's requests to the other nodes of a cluster while their answers come in, in either
//! protocol: the requests that collect one answer per other node, and the broadcasts with
//! acknowledgements, whose answers go straight to their collector.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ignis_socketio::AdapterError;
use ignis_socketio::adapter::AckCollector;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::stats::{RedisCounters, RequestOutcome};

struct Pending<C> {
    expected: usize,
    received: usize,
    collected: C,
    done: Option<oneshot::Sender<C>>,
}

/// The requests that wait for every other node, each collecting answers into a `C`.
pub(crate) struct Requests<C> {
    pending: Mutex<HashMap<String, Pending<C>>>,
    max: usize,
    /// The connection's counters, where each request is counted with its latency.
    counters: Arc<RedisCounters>,
}

impl<C> Requests<C> {
    /// At most `max` requests wait at once; more fail at once.
    pub(crate) fn new(max: usize, counters: Arc<RedisCounters>) -> Self {
        Requests {
            pending: Mutex::new(HashMap::new()),
            max,
            counters,
        }
    }

    pub(crate) fn contains(&self, request_id: &str) -> bool {
        self.pending.lock().contains_key(request_id)
    }

    /// Asks the other nodes of a cluster of `servers` (this one included), and waits until
    /// each answered into `collected`, or the timeout. Alone, this node gets `collected` back
    /// at once. `send` gets the id of the request, encodes it and returns the publishing,
    /// which runs once the request is registered, so that no answer can come first.
    pub(crate) async fn ask_others<F>(
        &self,
        servers: usize,
        collected: C,
        timeout: Duration,
        new_id: fn() -> String,
        send: impl FnOnce(&str) -> Result<F, AdapterError>,
    ) -> Result<C, AdapterError>
    where
        F: Future<Output = Result<(), AdapterError>>,
    {
        let others = servers.saturating_sub(1);
        if others == 0 {
            return Ok(collected);
        }
        let started = Instant::now();
        let result = self
            .wait_for_others(others, collected, timeout, new_id, send)
            .await;
        let outcome = match &result {
            Ok(_) => RequestOutcome::Answered,
            Err(AdapterError::Timeout) => RequestOutcome::TimedOut,
            Err(_) => RequestOutcome::Failed,
        };
        self.counters.request(outcome, started.elapsed());
        result
    }

    /// [`Requests::ask_others`] of `others` nodes, uncounted.
    async fn wait_for_others<F>(
        &self,
        others: usize,
        collected: C,
        timeout: Duration,
        new_id: fn() -> String,
        send: impl FnOnce(&str) -> Result<F, AdapterError>,
    ) -> Result<C, AdapterError>
    where
        F: Future<Output = Result<(), AdapterError>>,
    {
        let request_id = new_id();
        let publish = send(&request_id)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock();
            if pending.len() >= self.max {
                return Err(AdapterError::Other(
                    "too many requests wait for other nodes".into(),
                ));
            }
            pending.insert(
                request_id.clone(),
                Pending {
                    expected: others,
                    received: 0,
                    collected,
                    done: Some(tx),
                },
            );
        }
        // Removes the entry however this future ends (answered, timed out, dropped).
        struct Forget<'a, C>(&'a Mutex<HashMap<String, Pending<C>>>, &'a str);
        impl<C> Drop for Forget<'_, C> {
            fn drop(&mut self) {
                self.0.lock().remove(self.1);
            }
        }
        let _forget = Forget(&self.pending, &request_id);
        publish.await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(collected)) => Ok(collected),
            Ok(Err(_)) => Err(AdapterError::Other("request abandoned".into())),
            Err(_) => Err(AdapterError::Timeout),
        }
    }

    /// An answer to `request_id`: it counts when `add` takes it into the collection, and the
    /// request is done when every other node answered.
    pub(crate) fn answer(&self, request_id: &str, add: impl FnOnce(&mut C) -> bool) {
        let mut pending = self.pending.lock();
        let Some(entry) = pending.get_mut(request_id) else {
            return;
        };
        if !add(&mut entry.collected) {
            return;
        }
        entry.received += 1;
        if entry.received >= entry.expected
            && let Some(entry) = pending.remove(request_id)
            && let Some(done) = entry.done
        {
            let _ = done.send(entry.collected);
        }
    }
}

struct AckRequest {
    collector: Weak<dyn AckCollector>,
    until: Instant,
}

/// The broadcasts with acknowledgements of this node that other nodes may still answer.
pub(crate) struct AckRequests {
    requests: Mutex<HashMap<String, AckRequest>>,
    max: usize,
}

impl AckRequests {
    /// At most `max` broadcasts wait at once; more fail at once.
    pub(crate) fn new(max: usize) -> Self {
        AckRequests {
            requests: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub(crate) fn contains(&self, request_id: &str) -> bool {
        self.requests.lock().contains_key(request_id)
    }

    /// The collector of a broadcast of this node; `None` when `request_id` is none of them.
    pub(crate) fn collector(&self, request_id: &str) -> Option<Weak<dyn AckCollector>> {
        self.requests
            .lock()
            .get(request_id)
            .map(|r| r.collector.clone())
    }

    /// Registers a broadcast whose answers are awaited for `timeout`. Sockets hold collectors
    /// weakly, so the map is swept of the expired and the dropped here, not on a timer.
    pub(crate) fn register(
        &self,
        request_id: String,
        collector: &Arc<dyn AckCollector>,
        timeout: Duration,
    ) -> Result<(), AdapterError> {
        let mut acks = self.requests.lock();
        let now = Instant::now();
        acks.retain(|_, r| r.until > now && r.collector.strong_count() > 0);
        if acks.len() >= self.max {
            return Err(AdapterError::Other(
                "too many broadcasts wait for acknowledgements".into(),
            ));
        }
        acks.insert(
            request_id,
            AckRequest {
                collector: Arc::downgrade(collector),
                until: now + timeout,
            },
        );
        Ok(())
    }
}
