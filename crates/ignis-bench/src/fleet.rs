//! The client fleet: a few threads, each one mio event loop multiplexing thousands of
//! connections (no task per connection), driven by commands from the scenario runner.
//!
//! A fleet can also churn ([`Churn`]): cut every connection now and then and reconnect it at
//! once (the jitter benchmark), or let clients leave after a lifetime and put new ones in their
//! place (the soak benchmark).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ignis_proto::Value;
use ignis_proto::value::Map;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{Conn, Event, Session};
use crate::histogram::Histogram;
use crate::seqs::{SeqTracker, Summary};

const WAKER: Token = Token(usize::MAX);
/// Handshakes in flight per thread: more only fills the server's accept backlog.
const MAX_CONNECTING: usize = 256;
/// Distinct error messages kept for the report.
const MAX_ERRORS: usize = 8;
const READ_BUF: usize = 256 * 1024;
/// How long `authenticate` may go unanswered before it is sent again.
const AUTH_RETRY: Duration = Duration::from_secs(1);
/// How often churn deadlines (cuts, leaves, echoes, redials) are looked at.
const CHURN_TICK: Duration = Duration::from_millis(10);
/// How long a client whose connection could not even be started waits before trying again.
const REDIAL_AFTER: Duration = Duration::from_millis(100);
/// A churning client not ready this long after it dialed gives up and dials again, as
/// socket.io-client does after its connect timeout.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Why the fleet could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A thread or its poller could not be started.
    #[error("starting a fleet thread: {0}")]
    Io(#[from] std::io::Error),
    /// A fleet thread stopped or did not answer in time.
    #[error("a fleet thread is gone")]
    WorkerGone,
}

/// Where connections go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The Socket.IO path, e.g. `/io/`.
    pub path: String,
}

/// One connection to open.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// Index into the fleet's targets.
    pub target: usize,
    /// Source address to bind, so more than one port range is available.
    pub source: Option<IpAddr>,
    /// Rooms to join (with an ack) once authenticated.
    pub rooms: Vec<String>,
    /// Keep the sequence numbers of the deliveries, for [`Fleet::tally`].
    pub track: bool,
    /// Keep the session for connection state recovery and ask for it after a cut.
    pub recovery: bool,
    /// A JWT sent as the CONNECT's `auth.token`, as socket.io-client's `auth` option does.
    pub token: Option<Arc<str>>,
    /// The client's room in a split stream ([`RoomStream`]): deliveries numbered from
    /// [`ROOM_SEQ_BASE`] are room sends, tracked apart from the broadcasts.
    pub room_stream: Option<RoomStream>,
}

/// Where a client sits in the room sends of a split stream: room sends are numbered
/// `ROOM_SEQ_BASE + k`, and send `k` goes to room `k % rooms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomStream {
    /// How many rooms the sends go round.
    pub rooms: u64,
    /// The room this client is in, `0..rooms`.
    pub room: u64,
}

impl RoomStream {
    /// How many of the room sends `0..sends` reach this client's room.
    pub fn expected(&self, sends: u64) -> u64 {
        let rooms = self.rooms.max(1);
        sends / rooms + u64::from(self.room < sends % rooms)
    }
}

/// The first sequence number of room sends in a split stream: broadcasts are numbered from 0,
/// room sends from here, so one event name carries both.
pub const ROOM_SEQ_BASE: u64 = 1 << 40;

impl ConnSpec {
    /// A connection to `target` with nothing special about it.
    pub fn plain(target: usize, source: Option<IpAddr>, rooms: Vec<String>) -> ConnSpec {
        ConnSpec {
            target,
            source,
            rooms,
            track: false,
            recovery: false,
            token: None,
            room_stream: None,
        }
    }
}

/// How a fleet churns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Churn {
    /// Every connection is cut (closed abruptly, with a reset) at a random moment between half
    /// and one and a half times `every` after it opened, and the same client reconnects at once,
    /// asking to recover its session when its spec says so, `reconnect_after` later. The first
    /// cut of each client falls anywhere within the first `every`, so that cuts are spread
    /// evenly from the start.
    Cut {
        /// Mean time between two cuts of one connection.
        every: Duration,
        /// How long a cut client waits before it reconnects.
        reconnect_after: Duration,
    },
    /// Each client leaves after a lifetime drawn the same way around `lifetime` (half of them
    /// with a reset, half with a clean close), and a new client takes its place with
    /// `rooms_per_client` rooms drawn from `soak-0..soak-{room_pool}`. Ready clients emit `echo`
    /// (with an ack) around every `echo_every`.
    Replace {
        /// Mean lifetime of a client.
        lifetime: Duration,
        /// Mean time between two `echo` of one client, if they echo.
        echo_every: Option<Duration>,
        /// How many rooms (`soak-0..`) new clients draw theirs from.
        room_pool: usize,
        /// How many rooms each new client joins.
        rooms_per_client: usize,
    },
}

/// Counters of one thread, or of all of them merged.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Authenticated and still open.
    pub ready: u64,
    /// Connections that failed before they were ready.
    pub failed: u64,
    /// Ready connections that were closed afterwards.
    pub lost: u64,
    /// Connections whose room joins were acknowledged.
    pub joined: u64,
    /// Echo acknowledgements received.
    pub acks: u64,
    /// Echo round trips, µs.
    pub echo_latency: Histogram,
    /// Bench deliveries received, duplicates included.
    pub deliveries: u64,
    /// From a post's send time to its delivery, µs.
    pub delivery_latency: Histogram,
    /// `authenticate` events sent again after going unanswered.
    pub auth_retries: u64,
    /// Connections cut on purpose ([`Churn::Cut`]).
    pub cuts: u64,
    /// Reconnections whose session the server restored.
    pub recovered: u64,
    /// Clients that left on purpose ([`Churn::Replace`]).
    pub left: u64,
    /// Connections started, from the first.
    pub opened: u64,
    /// Clients that reconnect (or are replaced) after their connection failed or was lost.
    pub redialed: u64,
    /// The first distinct errors.
    pub errors: Vec<String>,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.ready += other.ready;
        self.failed += other.failed;
        self.lost += other.lost;
        self.joined += other.joined;
        self.auth_retries += other.auth_retries;
        self.cuts += other.cuts;
        self.recovered += other.recovered;
        self.left += other.left;
        self.opened += other.opened;
        self.redialed += other.redialed;
        self.acks += other.acks;
        self.echo_latency.merge(&other.echo_latency);
        self.deliveries += other.deliveries;
        self.delivery_latency.merge(&other.delivery_latency);
        for e in &other.errors {
            note_error(&mut self.errors, e);
        }
    }

    /// Forgets the traffic counters, not the connection counts.
    fn reset_traffic(&mut self) {
        self.acks = 0;
        self.echo_latency = Histogram::default();
        self.deliveries = 0;
        self.delivery_latency = Histogram::default();
    }
}

fn note_error(errors: &mut Vec<String>, error: &str) {
    if errors.len() < MAX_ERRORS && !errors.iter().any(|e| e == error) {
        errors.push(error.to_string());
    }
}

enum Command {
    Open(Vec<ConnSpec>),
    /// Closed-loop echo on this many ready connections (0 stops).
    Echo {
        clients: usize,
        payload: Value,
    },
    Reset,
    Report(Sender<Stats>),
    /// Starts churning (`Some`), or stops cutting and leaving (`None`): clients that are gone
    /// still come back.
    Churn(Option<Churn>),
    Tally {
        expected: u64,
        reply: Sender<Summary>,
    },
    /// The split-stream accounting: broadcasts `0..broadcasts`, room sends `0..room_sends`.
    TallySplit {
        broadcasts: u64,
        room_sends: u64,
        reply: Sender<(Summary, Summary)>,
    },
    CloseAll,
    Shutdown,
}

struct Worker {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Threads of client connections.
pub struct Fleet {
    workers: Vec<Worker>,
}

impl Fleet {
    /// Starts `threads` event loops (at least one) whose clients connect to `targets`.
    pub fn start(threads: usize, targets: Vec<Target>) -> Result<Fleet, FleetError> {
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::channel();
            let targets = targets.clone();
            let thread = std::thread::Builder::new()
                .name(format!("fleet-{index}"))
                .spawn(move || Loop::new(poll, rx, targets, index as u32).run())?;
            workers.push(Worker {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(Fleet { workers })
    }

    fn send(&self, worker: &Worker, command: Command) -> Result<(), FleetError> {
        worker
            .tx
            .send(command)
            .map_err(|_| FleetError::WorkerGone)?;
        worker.waker.wake().map_err(FleetError::Io)
    }

    /// Opens connections, spread over the threads.
    pub fn open(&self, specs: Vec<ConnSpec>) -> Result<(), FleetError> {
        let n = self.workers.len();
        let mut shares: Vec<Vec<ConnSpec>> = vec![Vec::new(); n];
        for (i, spec) in specs.into_iter().enumerate() {
            shares[i % n].push(spec);
        }
        for (worker, share) in self.workers.iter().zip(shares) {
            self.send(worker, Command::Open(share))?;
        }
        Ok(())
    }

    /// Starts (or with 0, stops) closed-loop echo on `clients` connections.
    pub fn echo(&self, clients: usize, payload: &Value) -> Result<(), FleetError> {
        let n = self.workers.len();
        for (i, worker) in self.workers.iter().enumerate() {
            let share = clients / n + usize::from(i < clients % n);
            let payload = payload.clone();
            self.send(
                worker,
                Command::Echo {
                    clients: share,
                    payload,
                },
            )?;
        }
        Ok(())
    }

    /// Forgets the traffic counters of every thread (not the connection counts).
    pub fn reset(&self) -> Result<(), FleetError> {
        self.workers
            .iter()
            .try_for_each(|w| self.send(w, Command::Reset))
    }

    /// Starts churning, or with `None` stops cutting and leaving (clients already gone still
    /// reconnect).
    pub fn churn(&self, churn: Option<Churn>) -> Result<(), FleetError> {
        self.workers
            .iter()
            .try_for_each(|w| self.send(w, Command::Churn(churn)))
    }

    /// The delivery accounting of every tracked client against the stream `0..expected`.
    pub fn tally(&self, expected: u64) -> Result<Summary, FleetError> {
        let (tx, rx) = mpsc::channel();
        for worker in &self.workers {
            self.send(
                worker,
                Command::Tally {
                    expected,
                    reply: tx.clone(),
                },
            )?;
        }
        let mut total = Summary::default();
        for _ in &self.workers {
            let summary = rx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| FleetError::WorkerGone)?;
            total.merge(&summary);
        }
        Ok(total)
    }

    /// The delivery accounting of split-stream clients: of the broadcasts `0..broadcasts`, and
    /// of the room sends `0..room_sends` that went to each client's room.
    pub fn tally_split(
        &self,
        broadcasts: u64,
        room_sends: u64,
    ) -> Result<(Summary, Summary), FleetError> {
        let (tx, rx) = mpsc::channel();
        for worker in &self.workers {
            self.send(
                worker,
                Command::TallySplit {
                    broadcasts,
                    room_sends,
                    reply: tx.clone(),
                },
            )?;
        }
        let mut total = (Summary::default(), Summary::default());
        for _ in &self.workers {
            let (b, r) = rx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| FleetError::WorkerGone)?;
            total.0.merge(&b);
            total.1.merge(&r);
        }
        Ok(total)
    }

    /// Closes every connection.
    pub fn close_all(&self) -> Result<(), FleetError> {
        self.workers
            .iter()
            .try_for_each(|w| self.send(w, Command::CloseAll))
    }

    /// Every thread's counters, merged.
    pub fn stats(&self) -> Result<Stats, FleetError> {
        let mut total = Stats::default();
        let (tx, rx) = mpsc::channel();
        for worker in &self.workers {
            self.send(worker, Command::Report(tx.clone()))?;
        }
        for _ in &self.workers {
            let stats = rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| FleetError::WorkerGone)?;
            total.merge(&stats);
        }
        Ok(total)
    }

    /// Polls the counters until `done` says so or `timeout` passes; returns the last counters.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, FleetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats()?;
            if done(&stats) || Instant::now() >= deadline {
                return Ok(stats);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for worker in &self.workers {
            let _ = worker.tx.send(Command::Shutdown);
            let _ = worker.waker.wake();
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Microseconds since the Unix epoch: posters and clients of several processes share it.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What outlives one connection of a client: its spec, what it received, its session.
struct Client {
    spec: ConnSpec,
    tracker: Option<SeqTracker>,
    /// The room sends of a split stream, by their index within the client's room.
    room_tracker: Option<SeqTracker>,
    session: Option<Session>,
}

impl Client {
    fn new(spec: ConnSpec) -> Client {
        Client {
            tracker: spec.track.then(SeqTracker::default),
            room_tracker: (spec.track && spec.room_stream.is_some()).then(SeqTracker::default),
            spec,
            session: None,
        }
    }
}

struct Slot {
    stream: TcpStream,
    conn: Conn,
    client: Client,
    join_ack: Option<u64>,
    echo_member: bool,
    echo_in_flight: Option<(u64, Instant)>,
    /// When this connection is cut or its client leaves.
    churn_at: Option<Instant>,
    /// When this client emits its next `echo` under [`Churn::Replace`].
    next_echo: Option<Instant>,
    opened_at: Instant,
}

struct Loop {
    poll: Poll,
    rx: Receiver<Command>,
    targets: Vec<Target>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    queue: VecDeque<Client>,
    /// Clients whose connection could not be started, and when to try again.
    redial: VecDeque<(Instant, Client)>,
    /// Tracked clients whose connection closed for good (no churn to bring them back): what
    /// they received still counts in a tally, and what they missed as missing.
    gone: Vec<Client>,
    connecting: usize,
    churn: Option<Churn>,
    /// Whether cuts and leaves are scheduled (churn stopped: the gone still come back).
    cutting: bool,
    last_churn_scan: Instant,
    rng: u64,
    stats: Stats,
    echo_payload: Value,
    seed: u32,
    read_buf: Vec<u8>,
    events: Vec<Event>,
    last_retry_scan: Instant,
}

impl Loop {
    fn new(poll: Poll, rx: Receiver<Command>, targets: Vec<Target>, index: u32) -> Loop {
        Loop {
            poll,
            rx,
            targets,
            slots: Vec::new(),
            free: Vec::new(),
            queue: VecDeque::new(),
            redial: VecDeque::new(),
            gone: Vec::new(),
            connecting: 0,
            churn: None,
            cutting: false,
            last_churn_scan: Instant::now(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ u64::from(index).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            stats: Stats::default(),
            echo_payload: Value::Null,
            seed: index.wrapping_mul(0x9E37_79B9) ^ 0x1234_5678,
            read_buf: vec![0; READ_BUF],
            events: Vec::new(),
            last_retry_scan: Instant::now(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(100)))
                && e.kind() != ErrorKind::Interrupted
            {
                note_error(&mut self.stats.errors, &format!("poll: {e}"));
                return;
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.on_io(event.token().0);
                }
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return,
                    Ok(command) => self.on_command(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.churn_tick();
            self.start_connects();
            self.retry_auths();
        }
    }

    /// A uniform draw in `0..1` (splitmix64).
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A moment between half and one and a half times `mean` from `now`.
    fn around(&mut self, now: Instant, mean: Duration) -> Instant {
        now + mean.mul_f64(0.5 + self.random())
    }

    fn churn_period(&self) -> Option<Duration> {
        match self.churn? {
            Churn::Cut { every, .. } => Some(every),
            Churn::Replace { lifetime, .. } => Some(lifetime),
        }
    }

    /// Cuts, leaves, echoes and redials that are due.
    fn churn_tick(&mut self) {
        if self.churn.is_none() || self.last_churn_scan.elapsed() < CHURN_TICK {
            return;
        }
        let now = Instant::now();
        self.last_churn_scan = now;
        while self.redial.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, client)) = self.redial.pop_front() {
                self.queue.push_back(client);
            }
        }
        let echo_every = match self.churn {
            Some(Churn::Replace { echo_every, .. }) => echo_every,
            _ => None,
        };
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_ref() else {
                continue;
            };
            if self.cutting && slot.churn_at.is_some_and(|at| at <= now) {
                self.end(index);
                continue;
            }
            let Some(every) = echo_every else {
                continue;
            };
            if slot.next_echo.is_none_or(|at| at > now) {
                continue;
            }
            let send = slot.echo_in_flight.is_none() && slot.conn.is_ready();
            let next = self.around(now, every);
            if let Some(slot) = self.slots[index].as_mut() {
                slot.next_echo = Some(next);
            }
            if send {
                self.send_echo(index);
            }
        }
    }

    /// Ends a connection on purpose: a cut (the same client reconnects at once) or a leave (a
    /// new client takes the place).
    fn end(&mut self, index: usize) {
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut slot.stream);
        self.free.push(index);
        if slot.conn.is_ready() {
            self.stats.ready -= 1;
        } else {
            self.connecting -= 1;
        }
        let abrupt = match self.churn {
            Some(Churn::Cut { .. }) => true,
            // Half the leaves are resets, half clean closes.
            _ => self.random() < 0.5,
        };
        if abrupt {
            // A zero linger makes the close send a reset: the server sees the connection
            // vanish as it would on a network failure, with nothing in flight delivered.
            let _ = socket2::SockRef::from(&slot.stream).set_linger(Some(Duration::ZERO));
        }
        drop(slot.stream);
        match self.churn {
            Some(Churn::Cut {
                reconnect_after, ..
            }) => {
                self.stats.cuts += 1;
                let mut client = slot.client;
                if client.spec.recovery {
                    client.session = slot.conn.session();
                }
                if reconnect_after.is_zero() {
                    self.queue.push_front(client);
                } else {
                    // Kept in order: every cut waits the same time.
                    self.redial
                        .push_back((Instant::now() + reconnect_after, client));
                }
            }
            Some(Churn::Replace { .. }) => {
                self.stats.left += 1;
                let spec = self.replacement(&slot.client.spec);
                self.queue.push_front(Client::new(spec));
            }
            None => {}
        }
    }

    /// The spec of a new client in the place of one that left: same target and source, rooms
    /// drawn afresh.
    fn replacement(&mut self, old: &ConnSpec) -> ConnSpec {
        let mut spec = old.clone();
        if let Some(Churn::Replace {
            room_pool,
            rooms_per_client,
            ..
        }) = self.churn
            && room_pool > 0
        {
            spec.rooms.clear();
            for _ in 0..rooms_per_client.min(room_pool) {
                let room = format!("soak-{}", (self.random() * room_pool as f64) as usize);
                if !spec.rooms.contains(&room) {
                    spec.rooms.push(room);
                }
            }
        }
        spec
    }

    fn retry_auths(&mut self) {
        if self.connecting == 0 || self.last_retry_scan.elapsed() < AUTH_RETRY / 4 {
            return;
        }
        let now = Instant::now();
        self.last_retry_scan = now;
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            if self.churn.is_some()
                && !slot.conn.is_ready()
                && now.duration_since(slot.opened_at) > HANDSHAKE_DEADLINE
            {
                self.drop_slot(index, "no answer to the handshake in time");
                continue;
            }
            match slot.conn.retry_auth(now, AUTH_RETRY) {
                Ok(false) => {}
                Ok(true) => {
                    self.stats.auth_retries += 1;
                    if let Err(e) = self.flush(index) {
                        self.drop_slot(index, &e);
                    }
                }
                Err(e) => self.drop_slot(index, &e.to_string()),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Open(specs) => self.queue.extend(specs.into_iter().map(Client::new)),
            Command::Echo { clients, payload } => {
                self.echo_payload = payload;
                let mut left = clients;
                for index in 0..self.slots.len() {
                    let Some(slot) = self.slots[index].as_mut() else {
                        continue;
                    };
                    slot.echo_member = left > 0 && slot.conn.is_ready();
                    if slot.echo_member {
                        left -= 1;
                        if slot.echo_in_flight.is_none() {
                            self.send_echo(index);
                        }
                    }
                }
            }
            Command::Reset => self.stats.reset_traffic(),
            Command::Churn(churn) => {
                self.cutting = churn.is_some();
                if churn.is_some() {
                    self.churn = churn;
                }
                let now = Instant::now();
                let period = self.churn_period();
                for index in 0..self.slots.len() {
                    let first = match period {
                        Some(p) if self.cutting => Some(now + p.mul_f64(self.random())),
                        _ => None,
                    };
                    if let Some(slot) = self.slots[index].as_mut() {
                        slot.churn_at = first;
                    }
                }
            }
            Command::Tally { expected, reply } => {
                let mut summary = Summary::default();
                let clients = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|s| &s.client)
                    .chain(self.queue.iter())
                    .chain(self.redial.iter().map(|(_, c)| c))
                    .chain(self.gone.iter());
                for client in clients {
                    if let Some(tracker) = &client.tracker {
                        summary.add(&tracker.tally(expected));
                    }
                }
                let _ = reply.send(summary);
            }
            Command::TallySplit {
                broadcasts,
                room_sends,
                reply,
            } => {
                let mut summary = (Summary::default(), Summary::default());
                let clients = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|s| &s.client)
                    .chain(self.queue.iter())
                    .chain(self.redial.iter().map(|(_, c)| c))
                    .chain(self.gone.iter());
                for client in clients {
                    if let Some(tracker) = &client.tracker {
                        summary.0.add(&tracker.tally(broadcasts));
                    }
                    if let (Some(tracker), Some(stream)) =
                        (&client.room_tracker, client.spec.room_stream)
                    {
                        summary.1.add(&tracker.tally(stream.expected(room_sends)));
                    }
                }
                let _ = reply.send(summary);
            }
            Command::Report(reply) => {
                let _ = reply.send(self.stats.clone());
            }
            Command::CloseAll => {
                self.queue.clear();
                self.redial.clear();
                self.gone.clear();
                self.churn = None;
                self.cutting = false;
                for index in 0..self.slots.len() {
                    if let Some(mut slot) = self.slots[index].take() {
                        let _ = self.poll.registry().deregister(&mut slot.stream);
                        if slot.conn.is_ready() {
                            self.stats.ready -= 1;
                        } else {
                            self.connecting -= 1;
                        }
                        self.free.push(index);
                    }
                }
            }
            Command::Shutdown => {}
        }
    }

    fn start_connects(&mut self) {
        while self.connecting < MAX_CONNECTING {
            let Some(client) = self.queue.pop_front() else {
                return;
            };
            let (stream, conn) = match self.dial(&client) {
                Ok(dialed) => dialed,
                Err(e) => {
                    self.stats.failed += 1;
                    note_error(&mut self.stats.errors, &format!("connect: {e}"));
                    if self.churn.is_some() {
                        self.stats.redialed += 1;
                        self.redial
                            .push_back((Instant::now() + REDIAL_AFTER, client));
                    }
                    continue;
                }
            };
            self.place(stream, conn, client);
        }
    }

    fn dial(&mut self, client: &Client) -> std::io::Result<(TcpStream, Conn)> {
        let spec = &client.spec;
        let target = self
            .targets
            .get(spec.target)
            .ok_or_else(|| std::io::Error::other("no such target"))?;
        let domain = socket2::Domain::for_address(target.addr);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(source) = spec.source {
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        match socket.connect(&target.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into());
        self.seed = self.seed.wrapping_add(0x6D2B_79F5);
        let mut conn = Conn::new(&target.addr.to_string(), &target.path, self.seed);
        if let Some(token) = &spec.token {
            let mut auth = Map::with_capacity(1);
            auth.insert("token", &**token);
            conn = conn.with_auth(auth);
        }
        if spec.recovery {
            conn = conn.with_recovery(client.session.clone());
        }
        Ok((stream, conn))
    }

    fn place(&mut self, mut stream: TcpStream, conn: Conn, client: Client) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(index);
            self.stats.failed += 1;
            note_error(&mut self.stats.errors, &format!("register: {e}"));
            return;
        }
        let now = Instant::now();
        let churn_at = match self.churn_period() {
            Some(p) if self.cutting => Some(self.around(now, p)),
            _ => None,
        };
        self.slots[index] = Some(Slot {
            stream,
            conn,
            client,
            join_ack: None,
            echo_member: false,
            echo_in_flight: None,
            churn_at,
            next_echo: None,
            opened_at: now,
        });
        self.connecting += 1;
        self.stats.opened += 1;
    }

    fn on_io(&mut self, index: usize) {
        if let Err(e) = self.service(index) {
            self.drop_slot(index, &e);
        }
    }

    fn drop_slot(&mut self, index: usize, error: &str) {
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut slot.stream);
        if slot.conn.is_ready() {
            self.stats.ready -= 1;
            self.stats.lost += 1;
        } else {
            self.connecting -= 1;
            self.stats.failed += 1;
        }
        note_error(&mut self.stats.errors, error);
        self.free.push(index);
        // Churning clients come back, as a real client reconnects: with its session after a
        // cut, as a new client after a leave.
        match self.churn {
            Some(Churn::Cut { .. }) => {
                self.stats.redialed += 1;
                let mut client = slot.client;
                if client.spec.recovery {
                    client.session = slot.conn.session();
                }
                self.queue.push_back(client);
            }
            Some(Churn::Replace { .. }) => {
                self.stats.redialed += 1;
                let spec = self.replacement(&slot.client.spec);
                self.queue.push_back(Client::new(spec));
            }
            None => {
                if slot.client.tracker.is_some() {
                    self.gone.push(slot.client);
                }
            }
        }
    }

    /// Reads everything available (edge-triggered), handles it, writes what is queued.
    fn service(&mut self, index: usize) -> Result<(), String> {
        loop {
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                return Ok(());
            };
            match slot.stream.read(&mut self.read_buf) {
                Ok(0) => return Err("connection closed by the server".into()),
                Ok(n) => {
                    self.events.clear();
                    slot.conn
                        .receive(&self.read_buf[..n], &mut self.events)
                        .map_err(|e| e.to_string())?;
                    let events = std::mem::take(&mut self.events);
                    for event in &events {
                        self.on_event(index, *event)?;
                    }
                    self.events = events;
                    // A short read drained the socket; under edge triggering the next bytes
                    // raise a new event, so the extra read that would say WouldBlock is saved.
                    if n < self.read_buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        self.flush(index)
    }

    fn flush(&mut self, index: usize) -> Result<(), String> {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        while !slot.conn.output().is_empty() {
            match slot.stream.write(slot.conn.output()) {
                Ok(n) => slot.conn.consume_output(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Still connecting: the writable event comes when it is done.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    fn on_event(&mut self, index: usize, event: Event) -> Result<(), String> {
        let first_echo = match (event, self.churn) {
            (
                Event::Authenticated,
                Some(Churn::Replace {
                    echo_every: Some(every),
                    ..
                }),
            ) => Some(Instant::now() + every.mul_f64(self.random())),
            _ => None,
        };
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        match event {
            Event::Authenticated => {
                self.connecting -= 1;
                self.stats.ready += 1;
                if first_echo.is_some() {
                    slot.next_echo = first_echo;
                }
                // A recovered socket has its rooms back already.
                if !slot.client.spec.rooms.is_empty() && slot.client.session.is_none() {
                    let rooms = slot
                        .client
                        .spec
                        .rooms
                        .iter()
                        .map(|r| Value::from(r.as_str()))
                        .collect();
                    let mut payload = Map::with_capacity(1);
                    payload.insert("rooms", Value::Array(rooms));
                    slot.join_ack = slot
                        .conn
                        .emit("join", vec![Value::Map(payload)], true)
                        .map_err(|e| e.to_string())?;
                }
            }
            Event::Ack(id) if slot.join_ack == Some(id) => {
                slot.join_ack = None;
                self.stats.joined += 1;
            }
            Event::Ack(id) => {
                if let Some((expected, sent)) = slot.echo_in_flight
                    && expected == id
                {
                    slot.echo_in_flight = None;
                    self.stats.acks += 1;
                    self.stats
                        .echo_latency
                        .record(sent.elapsed().as_micros() as u64);
                    if slot.echo_member {
                        self.send_echo(index);
                    }
                }
            }
            Event::Recovered => self.stats.recovered += 1,
            // Chat traffic: the chat scenarios run their own clients (`crate::chat`).
            Event::Nack(_) | Event::ChatMessage { .. } => {}
            Event::Delivery { seq, sent_us } => {
                match (slot.client.spec.room_stream, &mut slot.client.room_tracker) {
                    (Some(stream), Some(tracker)) if seq >= ROOM_SEQ_BASE => {
                        tracker.record((seq - ROOM_SEQ_BASE) / stream.rooms.max(1));
                    }
                    _ => {
                        if let Some(tracker) = &mut slot.client.tracker {
                            tracker.record(seq);
                        }
                    }
                }
                self.stats.deliveries += 1;
                self.stats
                    .delivery_latency
                    .record(now_us().saturating_sub(sent_us));
            }
        }
        Ok(())
    }

    fn send_echo(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        match slot
            .conn
            .emit("echo", vec![self.echo_payload.clone()], true)
        {
            Ok(Some(id)) => slot.echo_in_flight = Some((id, Instant::now())),
            Ok(None) => {}
            Err(e) => return self.drop_slot(index, &e.to_string()),
        }
        if let Err(e) = self.flush(index) {
            self.drop_slot(index, &e);
        }
    }
}
