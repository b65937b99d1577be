//! The chat benchmarks (issue 15), against the `ignis-chat` application: its REST API for
//! accounts and rooms, its Socket.IO events for the rest.
//!
//! Users are signed up through the REST API once ([`sign_up`], `ignis-bench chat-users`), each
//! with its argon2id hash as any user has, and kept in a file of `id<TAB>token` lines that every
//! scenario of the run reads: the tokens stay valid across restarts of the chat as long as its
//! `--jwt-secret` does not change. Every member is a real socket that connects with `auth:
//! {token}`, `authenticate`s and joins its room with `room:join`, as the chat's page does.
//!
//! Messages carry their own bookkeeping: the content of each is `bench <seq> <sent_µs>`
//! ([`chat_marker`]), so that each member counts what it received (every sequence number of a
//! step exactly once, each sender's in the order sent) and the latency from the moment the
//! sender emitted `message:send` to the moment the member read `message:new`. What the database
//! holds is read back through the API: the unread count of a member who never sends and never
//! read is the number of the room's messages stored.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ignis_proto::Value;
use ignis_proto::value::Map;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{Value as Json, json};

use crate::conn::{Conn, Event, chat_marker};
use crate::fleet::{Target, now_us};
use crate::histogram::Histogram;
use crate::http;
use crate::procstat::{self, CpuSnapshot, ProcError};
use crate::scenario::{Verdict, cpu_report, highest_sustained, latency, merge, round};
use crate::seqs::SeqTracker;

const WAKER: Token = Token(usize::MAX);
/// Handshakes in flight per thread.
const MAX_CONNECTING: usize = 128;
const MAX_ERRORS: usize = 8;
const READ_BUF: usize = 256 * 1024;
const AUTH_RETRY: Duration = Duration::from_secs(1);
/// How long after a step's planned end its last delivery may arrive for the rate to count as
/// sustained (as the broadcast sweep allows).
const DELIVERY_SLACK: Duration = Duration::from_millis(500);
/// How long a step waits for what is due after its planned end.
const DRAIN: Duration = Duration::from_secs(5);
/// The password of every bench user (the chat wants 8 characters or more).
const PASSWORD: &str = "ignis-bench-password";

/// Why a chat scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Reading or writing the users file, or a socket.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Reading the server's CPU or memory.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// A REST call answered with a status it should not have.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The status of the answer.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// A REST answer that is not valid HTTP.
    #[error("{0}")]
    Http(#[from] http::HttpError),
    /// A REST answer without the fields expected.
    #[error("unexpected answer from {0}")]
    Answer(String),
    /// The users file cannot be used.
    #[error("the users file {path}: {reason}")]
    Users {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A client thread stopped before the scenario was done.
    #[error("a client thread is gone")]
    WorkerGone,
    /// Not every member was ready in time.
    #[error(
        "only {ready} of {wanted} members authenticated and joined ({failed} failed): {errors:?}"
    )]
    NotReady {
        /// Members authenticated and joined.
        ready: u64,
        /// Members the scenario opened.
        wanted: u64,
        /// Members whose connection failed.
        failed: u64,
        /// The first distinct errors.
        errors: Vec<String>,
    },
    /// A parameter out of range.
    #[error("invalid parameter: {0}")]
    Invalid(String),
}

type Result<T, E = ChatError> = std::result::Result<T, E>;

/// The chat under test.
#[derive(Debug, Clone)]
pub struct ChatSetup {
    /// The name of the server in the report.
    pub label: String,
    /// Where clients connect.
    pub target: Target,
    /// Where the REST API answers (the target's address, as a rule).
    pub rest: SocketAddr,
    /// The chat's pid, for its CPU and RSS.
    pub server_pid: u32,
    /// Event-loop threads of the clients.
    pub threads: usize,
    /// How long members have to authenticate and join.
    pub connect_timeout: Duration,
}

/// A signed-up user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    /// The user's id.
    pub id: String,
    /// The JWT the user signs in with.
    pub token: String,
}

/// Which database the chat runs on, for the report (`sqlite`, `postgres`).
pub type Database<'a> = &'a str;

// ---- REST ----

/// One HTTP/1.1 request on a connection of its own; the status and the JSON body.
fn rest(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    body: Option<&Json>,
) -> Result<(u16, Json)> {
    let mut stream = StdStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let response = loop {
        if let Some(r) = http::parse_response(&buf)? {
            break r;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ChatError::Answer(format!("{method} {path}: closed early")));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    let text = &buf[head.min(response.len)..response.len];
    let json = serde_json::from_slice(text).unwrap_or(Json::Null);
    if !(200..300).contains(&response.status) {
        return Err(ChatError::Status {
            method,
            path: path.to_string(),
            status: response.status,
            body: String::from_utf8_lossy(text).chars().take(200).collect(),
        });
    }
    Ok((response.status, json))
}

fn str_field<'a>(json: &'a Json, pointer: &str, what: &str) -> Result<&'a str> {
    json.pointer(pointer)
        .and_then(Json::as_str)
        .ok_or_else(|| ChatError::Answer(what.to_string()))
}

/// Reads the users file: one `id<TAB>token` line per user.
pub fn load_users(path: &Path) -> Result<Vec<ChatUser>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match line.split_once('\t') {
            Some((id, token)) if !id.is_empty() && !token.is_empty() => Ok(ChatUser {
                id: id.to_string(),
                token: token.trim().to_string(),
            }),
            _ => Err(ChatError::Users {
                path: path.display().to_string(),
                reason: format!("not an id<TAB>token line: {line:.60}"),
            }),
        })
        .collect()
}

fn users_for(path: &Path, wanted: usize) -> Result<Vec<ChatUser>> {
    let users = load_users(path)?;
    if users.len() < wanted {
        return Err(ChatError::Users {
            path: path.display().to_string(),
            reason: format!(
                "holds {} users, {wanted} needed: run `ignis-bench chat-users --count {wanted}` first",
                users.len()
            ),
        });
    }
    Ok(users)
}

/// Signs up users through `POST /api/auth/sign-up` until the file holds `count`, `parallel` at a
/// time; the new ones are appended to the file.
pub fn sign_up(
    setup: &ChatSetup,
    database: Database,
    count: usize,
    parallel: usize,
    path: &Path,
) -> Result<Json> {
    let have = load_users(path)?.len();
    let missing = count.saturating_sub(have);
    let started = Instant::now();
    // Usernames unique across runs on one database: the time and the place in the file.
    let run = now_us() % 1_000_000_000_000;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let parallel = parallel.clamp(1, 64);
    let handles: Vec<JoinHandle<Result<Vec<ChatUser>>>> = (0..parallel)
        .map(|_| {
            let next = next.clone();
            let addr = setup.rest;
            std::thread::spawn(move || {
                let mut made = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= missing {
                        return Ok(made);
                    }
                    let body = json!({
                        "username": format!("b{run}_{}", have + i),
                        "password": PASSWORD,
                    });
                    let (_, answer) = rest(addr, "POST", "/api/auth/sign-up", None, Some(&body))?;
                    made.push(ChatUser {
                        id: str_field(&answer, "/user/id", "sign-up without user.id")?.into(),
                        token: str_field(&answer, "/token", "sign-up without token")?.into(),
                    });
                }
            })
        })
        .collect();
    let mut made = Vec::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(users)) => made.extend(users),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(ChatError::WorkerGone)),
        }
    }
    // Whatever was made is kept, even if some sign-ups failed.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for u in &made {
        writeln!(file, "{}\t{}", u.id, u.token)?;
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "scenario": "chat_users",
        "peer": setup.label,
        "database": database,
        "users": have + made.len(),
        "signed_up": made.len(),
        "seconds": round(secs, 2),
        "sign_ups_per_s": round(made.len() as f64 / secs.max(1e-9), 1),
    }))
}

/// Creates a public room owned by `owner`; its id.
fn create_room(setup: &ChatSetup, owner: &ChatUser, name: &str) -> Result<String> {
    let body = json!({ "name": name, "isPrivate": false });
    let (_, room) = rest(
        setup.rest,
        "POST",
        "/api/chat/rooms",
        Some(&owner.token),
        Some(&body),
    )?;
    Ok(str_field(&room, "/id", "room without id")?.to_string())
}

/// The number of messages of `room` stored in the database, as `observer` (a member who never
/// sent nor read anything there) sees it: its unread count, a `COUNT(*)` of the room's rows.
fn stored_messages(setup: &ChatSetup, observer: &ChatUser, room: &str) -> Result<u64> {
    let (_, rooms) = rest(
        setup.rest,
        "GET",
        "/api/chat/rooms",
        Some(&observer.token),
        None,
    )?;
    rooms
        .as_array()
        .and_then(|rooms| {
            rooms
                .iter()
                .find(|r| r.get("id").and_then(Json::as_str) == Some(room))
        })
        .and_then(|r| r.get("unreadCount"))
        .and_then(Json::as_u64)
        .ok_or_else(|| ChatError::Answer(format!("the room {room} in GET /api/chat/rooms")))
}

// ---- the clients ----

/// One member to connect.
#[derive(Debug, Clone)]
struct MemberSpec {
    token: String,
    room: String,
    /// Its place among the senders, if it sends.
    sender: Option<usize>,
}

/// A step of sends: sender `k`'s `i`-th message is number `base + i × senders + k`, due at
/// `start + (i × senders + k) / rate`.
#[derive(Debug, Clone, Copy)]
struct SendPlan {
    base: u64,
    senders: usize,
    count: u64,
    rate: f64,
    start: Instant,
}

impl SendPlan {
    fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate.max(0.001))
    }
}

/// Counters of one thread, or of all of them merged.
#[derive(Debug, Clone, Default)]
pub struct ChatStats {
    /// Authenticated and joined to its room.
    pub ready: u64,
    /// Connections that failed before they were ready.
    pub failed: u64,
    /// Ready members whose connection closed afterwards.
    pub lost: u64,
    /// `message:send` emitted in this step, answered `{ok: true}`, answered otherwise.
    pub sent: u64,
    /// Sends answered `{ok: true}` in this step.
    pub accepted: u64,
    /// Sends answered otherwise in this step.
    pub refused: u64,
    /// Accepted since the first step (what the database must hold).
    pub accepted_total: u64,
    /// Sends not answered yet.
    pub in_flight: u64,
    /// The first distinct refusal reasons.
    pub refusals: Vec<String>,
    /// `message:new` of this step's messages received (by every member).
    pub deliveries: u64,
    /// Deliveries of an earlier step's messages.
    pub stale: u64,
    /// From `message:send` to each member's `message:new`, µs.
    pub delivery_latency: Histogram,
    /// From `message:send` to its answer, µs.
    pub ack_latency: Histogram,
    /// How far behind its schedule the latest send went out.
    pub max_lag: Duration,
    /// Of this step: sequence numbers a member never received, received twice, and received
    /// after a later one of the same sender.
    pub missing: u64,
    /// Of this step: deliveries of a number already received.
    pub duplicated: u64,
    /// Of this step: first deliveries of a number lower than one received before.
    pub out_of_order: u64,
    /// The first distinct connection errors.
    pub errors: Vec<String>,
}

impl ChatStats {
    fn merge(&mut self, o: &ChatStats) {
        self.ready += o.ready;
        self.failed += o.failed;
        self.lost += o.lost;
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.accepted_total += o.accepted_total;
        self.in_flight += o.in_flight;
        self.deliveries += o.deliveries;
        self.stale += o.stale;
        self.delivery_latency.merge(&o.delivery_latency);
        self.ack_latency.merge(&o.ack_latency);
        self.max_lag = self.max_lag.max(o.max_lag);
        self.missing += o.missing;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        for e in &o.refusals {
            note(&mut self.refusals, e);
        }
        for e in &o.errors {
            note(&mut self.errors, e);
        }
    }
}

fn note(errors: &mut Vec<String>, error: &str) {
    if errors.len() < MAX_ERRORS && !errors.iter().any(|e| e == error) {
        errors.push(error.to_string());
    }
}

enum Command {
    Open(Vec<MemberSpec>),
    /// Forgets the traffic counters; deliveries numbered below `base` are stale from now on.
    Reset {
        base: u64,
        senders: usize,
    },
    Send(SendPlan),
    /// The counters; with `Some(count)`, each member's accounting against the step's `count`.
    Report(Option<u64>, Sender<ChatStats>),
    Shutdown,
}

struct Worker {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Threads of chat members, each one mio event loop.
struct Members {
    workers: Vec<Worker>,
}

impl Members {
    fn start(threads: usize, target: Target) -> Result<Members> {
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::channel();
            let target = target.clone();
            let thread = std::thread::Builder::new()
                .name(format!("chat-{index}"))
                .spawn(move || Loop::new(poll, rx, target, index as u32).run())?;
            workers.push(Worker {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(Members { workers })
    }

    fn send(&self, worker: &Worker, command: Command) -> Result<()> {
        worker.tx.send(command).map_err(|_| ChatError::WorkerGone)?;
        worker.waker.wake()?;
        Ok(())
    }

    fn broadcast(&self, command: impl Fn() -> Command) -> Result<()> {
        self.workers
            .iter()
            .try_for_each(|w| self.send(w, command()))
    }

    fn open(&self, specs: Vec<MemberSpec>) -> Result<()> {
        let n = self.workers.len();
        let mut shares: Vec<Vec<MemberSpec>> = vec![Vec::new(); n];
        for (i, spec) in specs.into_iter().enumerate() {
            shares[i % n].push(spec);
        }
        for (worker, share) in self.workers.iter().zip(shares) {
            self.send(worker, Command::Open(share))?;
        }
        Ok(())
    }

    fn stats(&self, tally: Option<u64>) -> Result<ChatStats> {
        let (tx, rx) = mpsc::channel();
        self.broadcast(|| Command::Report(tally, tx.clone()))?;
        let mut total = ChatStats::default();
        for _ in &self.workers {
            let s = rx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| ChatError::WorkerGone)?;
            total.merge(&s);
        }
        Ok(total)
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&ChatStats) -> bool,
    ) -> Result<ChatStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats(None)?;
            if done(&stats) || Instant::now() >= deadline {
                return Ok(stats);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connects the members and waits until each is authenticated and in its room.
    fn connect(&self, specs: Vec<MemberSpec>, timeout: Duration) -> Result<ChatStats> {
        let wanted = specs.len() as u64;
        self.open(specs)?;
        let stats = self.wait_until(timeout, |s| s.ready + s.failed >= wanted)?;
        if stats.ready < wanted {
            return Err(ChatError::NotReady {
                ready: stats.ready,
                wanted,
                failed: stats.failed,
                errors: stats.errors,
            });
        }
        Ok(stats)
    }
}

impl Drop for Members {
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

struct Slot {
    stream: TcpStream,
    conn: Conn,
    spec: MemberSpec,
    join_ack: Option<u64>,
    ready: bool,
    tracker: SeqTracker,
    /// Per sender, the place in its stream of the last message received from it.
    last_from: Vec<Option<u64>>,
    out_of_order: u64,
    /// Sends waiting for their answer: ack id -> when emitted.
    in_flight: HashMap<u64, Instant>,
    /// The place in its own stream of this sender's next message.
    next: u64,
}

struct Loop {
    poll: Poll,
    rx: Receiver<Command>,
    target: Target,
    slots: Vec<Option<Slot>>,
    queue: Vec<MemberSpec>,
    connecting: usize,
    stats: ChatStats,
    plan: Option<SendPlan>,
    base: u64,
    senders: usize,
    seed: u32,
    read_buf: Vec<u8>,
    events: Vec<Event>,
    last_retry_scan: Instant,
}

impl Loop {
    fn new(poll: Poll, rx: Receiver<Command>, target: Target, index: u32) -> Loop {
        Loop {
            poll,
            rx,
            target,
            slots: Vec::new(),
            queue: Vec::new(),
            connecting: 0,
            stats: ChatStats::default(),
            plan: None,
            base: 0,
            senders: 1,
            seed: index.wrapping_mul(0x9E37_79B9) ^ 0x5EED_C4A7,
            read_buf: vec![0; READ_BUF],
            events: Vec::new(),
            last_retry_scan: Instant::now(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_due().map_or(Duration::from_millis(100), |due| {
                due.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                note(&mut self.stats.errors, &format!("poll: {e}"));
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
            self.send_due();
            self.start_connects();
            self.retry_auths();
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Open(specs) => self.queue.extend(specs.into_iter().rev()),
            Command::Reset { base, senders } => {
                self.base = base;
                self.senders = senders.max(1);
                self.plan = None;
                let s = &mut self.stats;
                s.sent = 0;
                s.accepted = 0;
                s.refused = 0;
                s.refusals.clear();
                s.deliveries = 0;
                s.stale = 0;
                s.delivery_latency = Histogram::default();
                s.ack_latency = Histogram::default();
                s.max_lag = Duration::ZERO;
                for slot in self.slots.iter_mut().flatten() {
                    slot.tracker = SeqTracker::default();
                    slot.last_from = vec![None; self.senders];
                    slot.out_of_order = 0;
                    slot.next = 0;
                }
            }
            Command::Send(plan) => self.plan = Some(plan),
            Command::Report(tally, reply) => {
                let mut stats = self.stats.clone();
                stats.in_flight = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|s| s.in_flight.len() as u64)
                    .sum();
                if let Some(count) = tally {
                    for slot in self.slots.iter().flatten() {
                        let t = slot.tracker.tally(count);
                        stats.missing += t.missing;
                        stats.duplicated += t.duplicated;
                        stats.out_of_order += slot.out_of_order;
                    }
                }
                let _ = reply.send(stats);
            }
            Command::Shutdown => {}
        }
    }

    /// The earliest send due, if a step is running.
    fn next_due(&self) -> Option<Instant> {
        let plan = self.plan?;
        self.slots
            .iter()
            .flatten()
            .filter_map(|slot| {
                let k = slot.spec.sender? as u64;
                let n = slot.next * plan.senders as u64 + k;
                (n < plan.count).then(|| plan.due(n))
            })
            .min()
    }

    fn send_due(&mut self) {
        let Some(plan) = self.plan else { return };
        let now = Instant::now();
        for index in 0..self.slots.len() {
            while let Some(slot) = self.slots[index].as_mut() {
                let Some(k) = slot.spec.sender else { break };
                let n = slot.next * plan.senders as u64 + k as u64;
                if !slot.ready || n >= plan.count || plan.due(n) > now {
                    break;
                }
                self.stats.max_lag = self.stats.max_lag.max(now - plan.due(n));
                slot.next += 1;
                let mut payload = Map::with_capacity(2);
                payload.insert("roomId", slot.spec.room.as_str());
                payload.insert("content", chat_marker(plan.base + n, now_us()));
                match slot
                    .conn
                    .emit("message:send", vec![Value::Map(payload)], true)
                {
                    Ok(Some(id)) => {
                        slot.in_flight.insert(id, Instant::now());
                        self.stats.sent += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.drop_slot(index, &e.to_string());
                        break;
                    }
                }
            }
            if let Err(e) = self.flush(index) {
                self.drop_slot(index, &e);
            }
        }
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
            match slot.conn.retry_auth(now, AUTH_RETRY) {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(e) = self.flush(index) {
                        self.drop_slot(index, &e);
                    }
                }
                Err(e) => self.drop_slot(index, &e.to_string()),
            }
        }
    }

    fn start_connects(&mut self) {
        while self.connecting < MAX_CONNECTING {
            let Some(spec) = self.queue.pop() else { return };
            match self.dial(&spec) {
                Ok((stream, conn)) => self.place(stream, conn, spec),
                Err(e) => {
                    self.stats.failed += 1;
                    note(&mut self.stats.errors, &format!("connect: {e}"));
                }
            }
        }
    }

    fn dial(&mut self, spec: &MemberSpec) -> std::io::Result<(TcpStream, Conn)> {
        let addr = self.target.addr;
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        self.seed = self.seed.wrapping_add(0x6D2B_79F5);
        let mut auth = Map::with_capacity(1);
        auth.insert("token", spec.token.as_str());
        let conn = Conn::new(&addr.to_string(), &self.target.path, self.seed).with_auth(auth);
        Ok((TcpStream::from_std(socket.into()), conn))
    }

    fn place(&mut self, mut stream: TcpStream, conn: Conn, spec: MemberSpec) {
        let index = self.slots.len();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.stats.failed += 1;
            note(&mut self.stats.errors, &format!("register: {e}"));
            return;
        }
        self.slots.push(Some(Slot {
            stream,
            conn,
            spec,
            join_ack: None,
            ready: false,
            tracker: SeqTracker::default(),
            last_from: vec![None; self.senders],
            out_of_order: 0,
            in_flight: HashMap::new(),
            next: 0,
        }));
        self.connecting += 1;
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
        if slot.ready {
            self.stats.ready -= 1;
            self.stats.lost += 1;
        } else {
            self.connecting -= 1;
            self.stats.failed += 1;
        }
        note(&mut self.stats.errors, error);
    }

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
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    fn on_event(&mut self, index: usize, event: Event) -> Result<(), String> {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        match event {
            Event::Authenticated => {
                let mut payload = Map::with_capacity(1);
                payload.insert("roomId", slot.spec.room.as_str());
                slot.join_ack = slot
                    .conn
                    .emit("room:join", vec![Value::Map(payload)], true)
                    .map_err(|e| e.to_string())?;
            }
            Event::Ack(id) if slot.join_ack == Some(id) => {
                slot.join_ack = None;
                slot.ready = true;
                self.connecting -= 1;
                self.stats.ready += 1;
            }
            Event::Nack(id) if slot.join_ack == Some(id) => {
                let reason = slot.conn.take_nack_reason().unwrap_or_default();
                return Err(format!("room:join refused: {reason}"));
            }
            Event::Ack(id) => {
                if let Some(sent) = slot.in_flight.remove(&id) {
                    self.stats.accepted += 1;
                    self.stats.accepted_total += 1;
                    self.stats
                        .ack_latency
                        .record(sent.elapsed().as_micros() as u64);
                }
            }
            Event::Nack(id) => {
                let reason = slot
                    .conn
                    .take_nack_reason()
                    .unwrap_or_else(|| "refused".into());
                if slot.in_flight.remove(&id).is_some() {
                    self.stats.refused += 1;
                    note(&mut self.stats.refusals, &reason);
                }
            }
            Event::ChatMessage { seq, sent_us } => {
                if seq < self.base {
                    self.stats.stale += 1;
                    return Ok(());
                }
                let n = seq - self.base;
                slot.tracker.record(n);
                let senders = self.senders as u64;
                if let Some(last) = slot.last_from.get_mut((n % senders) as usize) {
                    let place = n / senders;
                    if last.is_some_and(|l| place < l) {
                        slot.out_of_order += 1;
                    }
                    *last = Some(last.map_or(place, |l| l.max(place)));
                }
                self.stats.deliveries += 1;
                self.stats
                    .delivery_latency
                    .record(now_us().saturating_sub(sent_us));
            }
            Event::Delivery { .. } | Event::Recovered => {}
        }
        Ok(())
    }
}

// ---- the scenarios ----

fn header(setup: &ChatSetup, scenario: &str, database: &str) -> Json {
    json!({
        "scenario": scenario,
        "peer": setup.label,
        "database": database,
        "loadgen_threads": setup.threads,
    })
}

/// A room of `members` users (the first creates it and never sends) connected and joined; the
/// next `senders` are the senders.
struct Room {
    members: Members,
    id: String,
    observer: ChatUser,
    senders: usize,
    /// The next step's first sequence number.
    next_base: u64,
}

fn room(setup: &ChatSetup, users: &[ChatUser], members: usize, senders: usize) -> Result<Room> {
    if members < 2 || senders == 0 || senders >= members {
        return Err(ChatError::Invalid(
            "a room needs 2 members or more, and 1 to members - 1 senders".into(),
        ));
    }
    let observer = users[0].clone();
    let id = create_room(setup, &observer, &format!("bench {}", now_us()))?;
    let specs = users[..members]
        .iter()
        .enumerate()
        .map(|(i, u)| MemberSpec {
            token: u.token.clone(),
            room: id.clone(),
            sender: (1..=senders).contains(&i).then(|| i - 1),
        })
        .collect();
    let fleet = Members::start(setup.threads, setup.target.clone())?;
    fleet.connect(specs, setup.connect_timeout)?;
    Ok(Room {
        members: fleet,
        id,
        observer,
        senders,
        next_base: 0,
    })
}

/// The outcome of one step of sends.
struct Step {
    stats: ChatStats,
    count: u64,
    expected: u64,
    elapsed: Duration,
    planned: Duration,
    stored: u64,
    before: CpuSnapshot,
    after: CpuSnapshot,
}

impl Step {
    /// Every send accepted, every member got every message exactly once and each sender's in
    /// order, the database holds every accepted message, the sends kept to their schedule and the
    /// deliveries to the sends.
    fn sustained(&self) -> bool {
        let s = &self.stats;
        self.clean()
            && s.max_lag <= self.planned.mul_f64(0.1) + Duration::from_millis(100)
            && self.elapsed <= self.planned.mul_f64(1.1) + DELIVERY_SLACK
    }

    /// Nothing lost, doubled, reordered or refused, whatever the timing.
    fn clean(&self) -> bool {
        let s = &self.stats;
        s.accepted == self.count
            && s.refused == 0
            && s.lost == 0
            && s.missing == 0
            && s.duplicated == 0
            && s.out_of_order == 0
            && s.deliveries == self.expected
            && self.stored == s.accepted_total
    }

    fn report(&self, rate: f64) -> Json {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let report = json!({
            "rate": rate,
            "sends": self.count,
            "accepted": s.accepted,
            "refused": s.refused,
            "refusals": s.refusals,
            "stored_total": self.stored,
            "accepted_total": s.accepted_total,
            "db_matches": self.stored == s.accepted_total,
            "send_max_lag_ms": s.max_lag.as_millis() as u64,
            "expected": self.expected,
            "deliveries": s.deliveries,
            "missing": s.missing,
            // Deliveries missing of the messages accepted (a refused message is delivered to
            // no one, and counts as missing for every member).
            "lost": s
                .missing
                .saturating_sub(s.refused * (self.expected / self.count.max(1))),
            "duplicated": s.duplicated,
            "out_of_order": s.out_of_order,
            "stale": s.stale,
            "seconds": round(secs, 3),
            "stored_per_s": round(s.accepted as f64 / secs, 0),
            "deliveries_per_s": round(s.deliveries as f64 / secs, 0),
            "latency": latency(&s.delivery_latency),
            "ack_latency": latency(&s.ack_latency),
            "lost_clients": s.lost,
            "client_errors": s.errors,
        });
        merge(
            report,
            cpu_report(&self.before, &self.after, s.accepted, "message"),
        )
    }
}

/// Sends `rate × duration` messages over the room's senders, waits for what is due, and reads
/// back what the database holds.
fn step(setup: &ChatSetup, room: &mut Room, rate: f64, duration: Duration) -> Result<Step> {
    let count = ((rate * duration.as_secs_f64()).round() as u64).max(1);
    let base = room.next_base;
    room.next_base += count;
    let fleet = &room.members;
    fleet.broadcast(|| Command::Reset {
        base,
        senders: room.senders,
    })?;
    let ready = fleet.stats(None)?.ready;
    let expected = count * ready;
    let before = CpuSnapshot::take(&[setup.server_pid])?;
    let start = Instant::now() + Duration::from_millis(20);
    let plan = SendPlan {
        base,
        senders: room.senders,
        count,
        rate,
        start,
    };
    fleet.broadcast(|| Command::Send(plan))?;
    let planned = plan.due(count.saturating_sub(1)) - start;
    fleet.wait_until(planned + DRAIN, |s| {
        (s.deliveries >= expected && s.in_flight == 0 && s.sent >= count) || s.lost > 0
    })?;
    let elapsed = start.elapsed();
    let after = CpuSnapshot::take(&[setup.server_pid])?;
    // Answers still on their way count before the database is read.
    fleet.wait_until(Duration::from_secs(10), |s| s.in_flight == 0)?;
    let stats = fleet.stats(Some(count))?;
    let stored = stored_messages(setup, &room.observer, &room.id)?;
    Ok(Step {
        stats,
        count,
        expected,
        elapsed,
        planned,
        stored,
        before,
        after,
    })
}

/// A room of `members` connected members; messages sent by `senders` of them at rising rates,
/// two tries each, until one is not sustained, then `refine` halvings of the gap.
#[allow(clippy::too_many_arguments)]
pub fn throughput(
    setup: &ChatSetup,
    database: Database,
    users_file: &Path,
    members: usize,
    senders: usize,
    rates: &[f64],
    refine: u32,
    duration: Duration,
) -> Result<Json> {
    let users = users_for(users_file, members)?;
    let mut room = room(setup, &users, members, senders)?;
    // Warm-up: first-use costs (statements prepared, pages cached) out of the figures.
    step(
        setup,
        &mut room,
        100.0_f64.min(rates[0]),
        Duration::from_millis(500),
    )?;
    let mut steps = Vec::new();
    let mut best_step: Option<Json> = None;
    let mut attempt = |rate: f64| -> Result<Verdict> {
        for attempt in 1..=2 {
            let s = step(setup, &mut room, rate, duration)?;
            let sustained = s.sustained();
            let report = merge(
                json!({ "sustained": sustained, "attempt": attempt }),
                s.report(rate),
            );
            steps.push(report.clone());
            if sustained {
                if best_step
                    .as_ref()
                    .and_then(|b| b.get("rate"))
                    .and_then(Json::as_f64)
                    .is_none_or(|r| r < rate)
                {
                    best_step = Some(report);
                }
                std::thread::sleep(Duration::from_millis(300));
                return Ok(Verdict::Sustained);
            }
            if s.stats.lost > 0 {
                return Ok(Verdict::ClientsLost);
            }
            // Let the backlog drain before the next try.
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(Verdict::NotSustained)
    };
    let best = highest_sustained(rates, refine, &mut attempt)?;
    let report = json!({
        "members": members,
        "senders": senders,
        "seconds_per_step": duration.as_secs_f64(),
        "max_sustained_rate": best,
        "at_max": best_step,
        "steps": steps,
    });
    Ok(merge(header(setup, "chat_throughput", database), report))
}

/// A room of `members` connected members; `rate` messages per second from `senders` of them for
/// `duration`, after a second of warm-up: the latency from `message:send` to every member's
/// `message:new`.
pub fn latency_run(
    setup: &ChatSetup,
    database: Database,
    users_file: &Path,
    members: usize,
    senders: usize,
    rate: f64,
    duration: Duration,
) -> Result<Json> {
    let users = users_for(users_file, members)?;
    let mut room = room(setup, &users, members, senders)?;
    // The join announcements of the set-up out of the way, then a warm-up.
    std::thread::sleep(Duration::from_secs(1));
    step(setup, &mut room, rate, Duration::from_secs(1))?;
    let s = step(setup, &mut room, rate, duration)?;
    let p99 = s.stats.delivery_latency.quantile(0.99);
    let report = json!({
        "members": members,
        "senders": senders,
        "clean": s.clean(),
        "p99_under_50ms": p99 < 50_000,
    });
    let report = merge(header(setup, "chat_latency", database), report);
    Ok(merge(report, s.report(rate)))
}

/// `clients` users connect, authenticate and join rooms of `room_size`; the chat's RSS growth per
/// user after `settle` of quiet.
pub fn idle(
    setup: &ChatSetup,
    database: Database,
    users_file: &Path,
    clients: usize,
    room_size: usize,
    settle: Duration,
) -> Result<Json> {
    if clients == 0 || room_size == 0 {
        return Err(ChatError::Invalid(
            "clients and room size must be positive".into(),
        ));
    }
    let users = users_for(users_file, clients)?;
    let rooms: Vec<String> = (0..clients.div_ceil(room_size))
        .map(|r| create_room(setup, &users[r * room_size], &format!("idle {r}")))
        .collect::<Result<_>>()?;
    // The set-up's own allocations (rooms, the REST connections) settle before the baseline.
    std::thread::sleep(settle);
    let rss_before = procstat::process_rss(setup.server_pid)?;
    let cpu_before = CpuSnapshot::take(&[setup.server_pid])?;
    let started = Instant::now();
    let specs = users[..clients]
        .iter()
        .enumerate()
        .map(|(i, u)| MemberSpec {
            token: u.token.clone(),
            room: rooms[i / room_size].clone(),
            sender: None,
        })
        .collect();
    let fleet = Members::start(setup.threads, setup.target.clone())?;
    let stats = fleet.connect(specs, setup.connect_timeout)?;
    let connect = started.elapsed();
    let cpu_after = CpuSnapshot::take(&[setup.server_pid])?;
    std::thread::sleep(settle);
    let rss_after = procstat::process_rss(setup.server_pid)?;
    let per_user = rss_after.saturating_sub(rss_before) as f64 / clients as f64;
    let report = json!({
        "clients": clients,
        "room_size": room_size,
        "rooms": rooms.len(),
        "connect_and_join_ms": connect.as_millis() as u64,
        "rss_before_kib": rss_before / 1024,
        "rss_after_kib": rss_after / 1024,
        "rss_kib_per_user": round(per_user / 1024.0, 2),
        "lost": stats.lost,
    });
    let report = merge(header(setup, "chat_idle", database), report);
    Ok(merge(
        report,
        cpu_report(&cpu_before, &cpu_after, clients as u64, "user"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("ignis-bench-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.tsv");
        assert!(load_users(&path).unwrap().is_empty());
        std::fs::write(&path, "a\tt1\nb\tt2\n\n").unwrap();
        assert_eq!(
            load_users(&path).unwrap(),
            vec![
                ChatUser {
                    id: "a".into(),
                    token: "t1".into()
                },
                ChatUser {
                    id: "b".into(),
                    token: "t2".into()
                }
            ]
        );
        let err = users_for(&path, 3).unwrap_err().to_string();
        assert!(err.contains("holds 2 users, 3 needed"), "{err}");
        std::fs::write(&path, "no tab here\n").unwrap();
        assert!(load_users(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_plan_spreads_senders_evenly() {
        let start = Instant::now();
        let plan = SendPlan {
            base: 0,
            senders: 4,
            count: 8,
            rate: 100.0,
            start,
        };
        // Message n is due n / rate after the start, whichever sender sends it.
        assert_eq!(plan.due(0), start);
        assert_eq!(plan.due(5) - start, Duration::from_millis(50));
    }
}
