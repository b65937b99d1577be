//! The client fleet: a few threads, each one mio event loop multiplexing thousands of
//! connections (no task per connection), driven by commands from the scenario runner.

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

use crate::conn::{Conn, Event};
use crate::histogram::Histogram;

const WAKER: Token = Token(usize::MAX);
/// Handshakes in flight per thread: more only fills the server's accept backlog.
const MAX_CONNECTING: usize = 256;
/// Distinct error messages kept for the report.
const MAX_ERRORS: usize = 8;
const READ_BUF: usize = 256 * 1024;
/// How long `authenticate` may go unanswered before it is sent again.
const AUTH_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("starting a fleet thread: {0}")]
    Io(#[from] std::io::Error),
    #[error("a fleet thread is gone")]
    WorkerGone,
}

/// Where connections go.
#[derive(Debug, Clone)]
pub struct Target {
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
    pub acks: u64,
    pub echo_latency: Histogram,
    pub deliveries: u64,
    pub delivery_latency: Histogram,
    /// `authenticate` events sent again after going unanswered.
    pub auth_retries: u64,
    pub errors: Vec<String>,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.ready += other.ready;
        self.failed += other.failed;
        self.lost += other.lost;
        self.joined += other.joined;
        self.auth_retries += other.auth_retries;
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

    pub fn reset(&self) -> Result<(), FleetError> {
        self.workers
            .iter()
            .try_for_each(|w| self.send(w, Command::Reset))
    }

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

struct Slot {
    stream: TcpStream,
    conn: Conn,
    rooms: Vec<String>,
    join_ack: Option<u64>,
    echo_member: bool,
    echo_in_flight: Option<(u64, Instant)>,
}

struct Loop {
    poll: Poll,
    rx: Receiver<Command>,
    targets: Vec<Target>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    queue: VecDeque<ConnSpec>,
    connecting: usize,
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
            connecting: 0,
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
            self.start_connects();
            self.retry_auths();
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
            Command::Open(specs) => self.queue.extend(specs),
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
            Command::Report(reply) => {
                let _ = reply.send(self.stats.clone());
            }
            Command::CloseAll => {
                self.queue.clear();
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
            let Some(spec) = self.queue.pop_front() else {
                return;
            };
            if let Err(e) = self.connect(spec) {
                self.stats.failed += 1;
                note_error(&mut self.stats.errors, &format!("connect: {e}"));
            }
        }
    }

    fn connect(&mut self, spec: ConnSpec) -> std::io::Result<()> {
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
        let mut stream = TcpStream::from_std(socket.into());
        self.seed = self.seed.wrapping_add(0x6D2B_79F5);
        let conn = Conn::new(&target.addr.to_string(), &target.path, self.seed);
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.slots[index] = Some(Slot {
            stream,
            conn,
            rooms: spec.rooms,
            join_ack: None,
            echo_member: false,
            echo_in_flight: None,
        });
        self.connecting += 1;
        Ok(())
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
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        match event {
            Event::Authenticated => {
                self.connecting -= 1;
                self.stats.ready += 1;
                if !slot.rooms.is_empty() {
                    let rooms = slot.rooms.iter().map(|r| Value::from(r.as_str())).collect();
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
            Event::Delivery { sent_us, .. } => {
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
