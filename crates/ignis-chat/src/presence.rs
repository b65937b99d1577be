//! Presence per user, across every node of the chat.
//!
//! Each node counts its own connections per user. A user's first connection on a node records
//! `(node, user)` in `node_presence` and marks the user online; when a node's last connection of
//! a user closes and none returns within the grace period, the node forgets the pair and marks
//! the user offline unless another node still holds them. The database decides who announces:
//! only the update that actually flips `is_online` broadcasts `presence:changed`, so several
//! nodes never announce one change twice.
//!
//! A node that dies cannot clean up: every node records a heartbeat every `heartbeat`, and
//! sweeps, as often, the nodes silent for three heartbeats (their pairs go) and every online user
//! no live node holds. So a dead node's users, or everyone after a whole chat restarts, go offline
//! within four heartbeats: 20 s with the default 5 s.
//!
//! Every database step runs on one task per node, in the order the connections came and went, so
//! that a user's "online" is never stored after a later "offline".

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use ignis::socketio::{SendOptions, SocketIoServerHelper};
use ignis_socketio::Value;
use ignis_socketio::proto::value::Map;
use parking_lot::Mutex;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::model::{iso, new_id, now, unix_ms};
use crate::store::Store;

/// Messages a user may send per second (room messages and DMs together), on each node, unless
/// configured otherwise (`--message-rate`).
pub const MESSAGES_PER_SECOND: u32 = 20;

/// A user's connections on this node.
struct Local {
    connections: u32,
    /// Changes whenever the count leaves or returns to zero, so that a grace period that
    /// ended after the user came back does nothing.
    generation: u64,
    /// The second of the rate limiter's window, and the messages sent in it.
    window: i64,
    sent: u32,
}

enum Job {
    Connected(String),
    Expired(String, u64),
    Beat,
}

/// The presence of this node's users.
pub struct Presence {
    store: Store,
    grace: Duration,
    heartbeat: Duration,
    /// Messages per second per user; 0: no limit.
    message_rate: u32,
    node_id: String,
    local: Mutex<HashMap<String, Local>>,
    jobs: mpsc::UnboundedSender<Job>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    tasks: Mutex<Vec<AbortHandle>>,
    helper: OnceLock<SocketIoServerHelper>,
}

impl Presence {
    /// Presence on `store`: users go offline `grace` after their last connection closes, this
    /// node records itself alive every `heartbeat`, and a user may send `message_rate` messages
    /// per second (0: no limit). Nothing runs until [`Presence::start`].
    pub fn new(store: Store, grace: Duration, heartbeat: Duration, message_rate: u32) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        Presence {
            store,
            grace,
            heartbeat,
            message_rate,
            node_id: new_id(),
            local: Mutex::new(HashMap::new()),
            jobs,
            queue: Mutex::new(Some(queue)),
            tasks: Mutex::new(Vec::new()),
            helper: OnceLock::new(),
        }
    }

    /// This node's id in `chat_nodes`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Registers the node and starts its task and heartbeat.
    pub async fn start(
        self: &std::sync::Arc<Self>,
        helper: SocketIoServerHelper,
    ) -> Result<(), crate::store::StoreError> {
        let _ = self.helper.set(helper);
        self.store
            .node_heartbeat(&self.node_id, unix_ms(now()))
            .await?;
        let Some(mut queue) = self.queue.lock().take() else {
            return Ok(());
        };
        let me = std::sync::Arc::downgrade(self);
        let worker = tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                let Some(presence) = me.upgrade() else { return };
                presence.run(job).await;
            }
        });
        let jobs = self.jobs.clone();
        let period = self.heartbeat;
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if jobs.send(Job::Beat).is_err() {
                    return;
                }
            }
        });
        self.tasks
            .lock()
            .extend([worker.abort_handle(), ticker.abort_handle()]);
        Ok(())
    }

    /// Stops the node's tasks (its rows are swept by the others, or by itself on restart).
    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    /// The node stops: its tasks end, it forgets what it held, and the users no other node
    /// holds go offline now rather than at another node's next sweep.
    pub async fn shutdown(&self) {
        self.stop();
        let at = now();
        let stale = unix_ms(at) - 3 * self.heartbeat.as_millis() as i64;
        let result = async {
            self.store.remove_node(&self.node_id).await?;
            self.store.sweep_presence(stale, at).await
        }
        .await;
        match result {
            Ok(users) => {
                for user in users {
                    self.announce(&user, "offline", at);
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence not cleared at stop"),
        }
    }

    /// A connection of `user` authenticated on this node.
    pub fn connect(&self, user: &str) {
        let mut local = self.local.lock();
        match local.get_mut(user) {
            Some(entry) => {
                if entry.connections == 0 {
                    // Back within the grace period: nothing was announced, nothing to store.
                    entry.generation += 1;
                }
                entry.connections += 1;
            }
            None => {
                local.insert(
                    user.to_string(),
                    Local {
                        connections: 1,
                        generation: 0,
                        window: 0,
                        sent: 0,
                    },
                );
                let _ = self.jobs.send(Job::Connected(user.to_string()));
            }
        }
    }

    /// A connection of `user` closed on this node.
    pub fn disconnect(&self, user: &str) {
        let mut local = self.local.lock();
        let Some(entry) = local.get_mut(user) else {
            return;
        };
        entry.connections = entry.connections.saturating_sub(1);
        if entry.connections > 0 {
            return;
        }
        entry.generation += 1;
        let generation = entry.generation;
        let jobs = self.jobs.clone();
        let grace = self.grace;
        let user = user.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = jobs.send(Job::Expired(user, generation));
        });
    }

    /// The most messages a user may send per second; 0: no limit.
    pub fn message_rate(&self) -> u32 {
        self.message_rate
    }

    /// Counts a message of `user`; false when they are over the message rate.
    pub fn allow_message(&self, user: &str) -> bool {
        if self.message_rate == 0 {
            return true;
        }
        let second = unix_ms(now()) / 1000;
        let mut local = self.local.lock();
        let Some(entry) = local.get_mut(user) else {
            // Not connected here (cannot happen for a socket event): nothing to count against.
            return true;
        };
        if entry.window != second {
            entry.window = second;
            entry.sent = 0;
        }
        entry.sent = entry.sent.saturating_add(1);
        entry.sent <= self.message_rate
    }

    async fn run(&self, job: Job) {
        let result = match job {
            Job::Connected(user) => self.on_connected(&user).await,
            Job::Expired(user, generation) => self.on_expired(&user, generation).await,
            Job::Beat => self.on_beat().await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "presence update failed");
        }
    }

    async fn on_connected(&self, user: &str) -> Result<(), crate::store::StoreError> {
        let at = now();
        if self.store.user_connected(&self.node_id, user, at).await? {
            self.announce(user, "online", at);
        }
        Ok(())
    }

    async fn on_expired(
        &self,
        user: &str,
        generation: u64,
    ) -> Result<(), crate::store::StoreError> {
        {
            let mut local = self.local.lock();
            match local.get(user) {
                Some(e) if e.connections == 0 && e.generation == generation => {
                    local.remove(user);
                }
                _ => return Ok(()),
            }
        }
        let at = now();
        if self
            .store
            .user_disconnected(&self.node_id, user, at)
            .await?
        {
            self.announce(user, "offline", at);
        }
        Ok(())
    }

    async fn on_beat(&self) -> Result<(), crate::store::StoreError> {
        let at = now();
        let now_ms = unix_ms(at);
        if !self
            .store
            .node_heartbeat_existing(&self.node_id, now_ms)
            .await?
        {
            // Swept while this node could not reach the database: claim its users again.
            self.store.node_heartbeat(&self.node_id, now_ms).await?;
            let users: Vec<String> = self
                .local
                .lock()
                .iter()
                .filter(|(_, e)| e.connections > 0)
                .map(|(u, _)| u.clone())
                .collect();
            for user in users {
                self.on_connected(&user).await?;
            }
        }
        let stale = now_ms - 3 * self.heartbeat.as_millis() as i64;
        for user in self.store.sweep_presence(stale, at).await? {
            self.announce(&user, "offline", at);
        }
        Ok(())
    }

    fn announce(&self, user: &str, status: &str, at: OffsetDateTime) {
        let Some(helper) = self.helper.get() else {
            return;
        };
        let mut data = Map::with_capacity(3);
        data.insert("userId", user);
        data.insert("status", status);
        data.insert("lastSeenAt", iso(at));
        let sent = helper.send(SendOptions {
            destination: None,
            topic: "presence:changed".into(),
            data: Value::Map(data),
            log: false,
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, user, status, "presence not announced");
        }
    }
}
