//! The scenarios. Each opens its own clients, measures one thing, and returns one JSON object
//! with the figures, the server's and our own CPU, and the machine's idle share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ignis_proto::Value;
use serde_json::{Value as Json, json};

use crate::flat::{Tolerance, flatness};
use crate::fleet::{Churn, ConnSpec, Fleet, FleetError, Stats, Target};
use crate::histogram::Histogram;
use crate::poster::{self, PostPlan, PostResult};
use crate::procstat::{self, CpuSnapshot, ProcError};

/// Why a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The client fleet failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A `/proc` figure could not be read.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// Not every client authenticated in time.
    #[error("only {ready} of {wanted} clients authenticated ({failed} failed): {errors:?}")]
    NotReady {
        /// Clients authenticated.
        ready: u64,
        /// Clients the scenario opened.
        wanted: u64,
        /// Clients whose connection failed.
        failed: u64,
        /// The first distinct errors.
        errors: Vec<String>,
    },
    /// Not every client joined its rooms in time.
    #[error("only {joined} of {wanted} clients joined their rooms")]
    NotJoined {
        /// Clients whose joins were acknowledged.
        joined: u64,
        /// Clients that had rooms to join.
        wanted: u64,
    },
    /// A parameter out of range.
    #[error("invalid parameter: {0}")]
    Invalid(String),
}

/// Poster threads a burst may use at most.
const MAX_POSTERS: usize = 64;

/// What every scenario needs to know about the server under test.
#[derive(Debug, Clone)]
pub struct Setup {
    /// A name for the report (`ignis`, `floor`, `node`, ...).
    pub label: String,
    /// Server processes; clients are spread over them and posts go to the first.
    pub targets: Vec<Target>,
    /// Their pids, for CPU and RSS.
    pub server_pids: Vec<u32>,
    /// Event-loop threads of the load generator.
    pub threads: usize,
    /// Source addresses 127.0.0.1, .2, ... used in turn (each has its own port range).
    pub source_ips: u8,
    /// REST path of a broadcast to everyone.
    pub broadcast_path: String,
    /// REST path of a room send, with `{room}` where the room goes.
    pub room_path: String,
    /// Where REST posts go, when not to the first target.
    pub rest_addr: Option<SocketAddr>,
    /// Extra header lines of every REST call, each ending in CRLF (an API key).
    pub rest_headers: String,
    /// Concurrent REST posters, at least.
    pub posters: usize,
    /// How long a scenario waits for clients to connect.
    pub connect_timeout: Duration,
}

impl Setup {
    fn specs(&self, n: usize, rooms: impl Fn(usize) -> Vec<String>) -> Vec<ConnSpec> {
        (0..n)
            .map(|i| {
                ConnSpec::plain(
                    i % self.targets.len().max(1),
                    (self.source_ips > 1).then(|| {
                        IpAddr::V4(Ipv4Addr::new(
                            127,
                            0,
                            0,
                            1 + (i % self.source_ips as usize) as u8,
                        ))
                    }),
                    rooms(i),
                )
            })
            .collect()
    }

    pub(crate) fn fleet(&self) -> Result<Fleet, ScenarioError> {
        if self.targets.is_empty() {
            return Err(ScenarioError::Invalid("no target".into()));
        }
        Ok(Fleet::start(self.threads, self.targets.clone())?)
    }

    /// Opens `n` clients and waits until all are ready (and joined, when they have rooms).
    pub(crate) fn connect(
        &self,
        fleet: &Fleet,
        specs: Vec<ConnSpec>,
    ) -> Result<Stats, ScenarioError> {
        let wanted = specs.len() as u64;
        let joining = specs.iter().filter(|s| !s.rooms.is_empty()).count() as u64;
        fleet.open(specs)?;
        let stats = fleet.wait_until(self.connect_timeout, |s| {
            s.ready + s.failed >= wanted && s.joined >= joining.min(s.ready)
        })?;
        if stats.ready < wanted {
            return Err(ScenarioError::NotReady {
                ready: stats.ready,
                wanted,
                failed: stats.failed,
                errors: stats.errors,
            });
        }
        if stats.joined < joining {
            return Err(ScenarioError::NotJoined {
                joined: stats.joined,
                wanted: joining,
            });
        }
        Ok(stats)
    }

    fn post_plan(&self, paths: Vec<String>, rate: f64, count: u64) -> PostPlan {
        PostPlan {
            addr: self.rest_addr.unwrap_or(self.targets[0].addr),
            paths,
            headers: self.rest_headers.clone(),
            rate,
            count,
            // A poster waits for each answer: at high rates more of them keep to the schedule,
            // so a missed schedule means a slow server, not too few posters.
            posters: self
                .posters
                .max((rate / 150.0).ceil() as usize)
                .min(MAX_POSTERS),
            seq_base: 0,
        }
    }
}

/// CPU spent between two snapshots, per unit of work.
pub(crate) fn cpu_report(
    before: &CpuSnapshot,
    after: &CpuSnapshot,
    units: u64,
    unit: &str,
) -> Json {
    let server = after.server.saturating_sub(before.server).as_micros() as u64;
    let loadgen = after.loadgen.saturating_sub(before.loadgen).as_micros() as u64;
    let per = |us: u64| {
        if units == 0 {
            0.0
        } else {
            us as f64 / units as f64
        }
    };
    json!({
        "server_cpu_us": server,
        "loadgen_cpu_us": loadgen,
        format!("server_cpu_us_per_{unit}"): round(per(server), 3),
        format!("loadgen_cpu_us_per_{unit}"): round(per(loadgen), 3),
        "machine_idle": round(before.machine.idle_share(&after.machine), 3),
    })
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) fn latency(h: &Histogram) -> Json {
    json!({
        "p50_us": h.quantile(0.5),
        "p99_us": h.quantile(0.99),
        "p999_us": h.quantile(0.999),
        "max_us": h.max(),
    })
}

pub(crate) fn merge(mut a: Json, b: Json) -> Json {
    if let (Some(a), Json::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn header(setup: &Setup, scenario: &str) -> Json {
    json!({
        "scenario": scenario,
        "peer": setup.label,
        "servers": setup.targets.len(),
        "loadgen_threads": setup.threads,
    })
}

/// N clients connect and authenticate: time, server CPU and RSS per connection (idle).
pub fn connect(setup: &Setup, clients: usize, settle: Duration) -> Result<Json, ScenarioError> {
    let fleet = setup.fleet()?;
    let rss_before = procstat::total_rss(&setup.server_pids)?;
    let before = CpuSnapshot::take(&setup.server_pids)?;
    let started = Instant::now();
    setup.connect(&fleet, setup.specs(clients, |_| Vec::new()))?;
    let elapsed = started.elapsed();
    let after = CpuSnapshot::take(&setup.server_pids)?;
    // Idle: let the server settle (allocators, deferred frees) before reading RSS.
    std::thread::sleep(settle);
    let rss_after = procstat::total_rss(&setup.server_pids)?;
    let stats = fleet.stats()?;
    let per_conn = rss_after.saturating_sub(rss_before) as f64 / clients.max(1) as f64;
    let report = json!({
        "clients": clients,
        "connect_ms": elapsed.as_millis() as u64,
        "connections_per_s": round(clients as f64 / elapsed.as_secs_f64().max(1e-9), 0),
        "rss_before_kib": rss_before / 1024,
        "rss_after_kib": rss_after / 1024,
        "rss_kib_per_connection": round(per_conn / 1024.0, 3),
        "lost": stats.lost,
        "auth_retries": stats.auth_retries,
    });
    let report = merge(header(setup, "connect"), report);
    Ok(merge(
        report,
        cpu_report(&before, &after, clients as u64, "connection"),
    ))
}

/// C clients in a closed loop of `echo` with an ack for `duration`.
pub fn echo(setup: &Setup, clients: usize, duration: Duration) -> Result<Json, ScenarioError> {
    let fleet = setup.fleet()?;
    setup.connect(&fleet, setup.specs(clients, |_| Vec::new()))?;
    let payload = Value::from("hello from ignis-bench");
    // Warm-up, so the figures do not include first-use costs.
    fleet.echo(clients, &payload)?;
    std::thread::sleep(Duration::from_millis(300));
    fleet.reset()?;
    let before = CpuSnapshot::take(&setup.server_pids)?;
    let started = Instant::now();
    std::thread::sleep(duration);
    let stats = fleet.stats()?;
    let elapsed = started.elapsed();
    let after = CpuSnapshot::take(&setup.server_pids)?;
    fleet.echo(0, &payload)?;
    let report = json!({
        "clients": clients,
        "seconds": round(elapsed.as_secs_f64(), 3),
        "acks": stats.acks,
        "acks_per_s": round(stats.acks as f64 / elapsed.as_secs_f64(), 0),
        "latency": latency(&stats.echo_latency),
        "lost": stats.lost,
        "auth_retries": stats.auth_retries,
        "errors": stats.errors,
    });
    let report = merge(header(setup, "echo"), report);
    Ok(merge(
        report,
        cpu_report(&before, &after, stats.acks, "ack"),
    ))
}

/// The result of one timed burst of posts.
struct Burst {
    stats: Stats,
    posts: PostResult,
    expected: u64,
    before: CpuSnapshot,
    after: CpuSnapshot,
    elapsed: Duration,
}

/// How long after the planned end of a burst its last delivery may arrive, for the rate to
/// count as sustained: a few rounds of writes to every client, and the load generator's reads.
const DELIVERY_SLACK: Duration = Duration::from_millis(500);

impl Burst {
    fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.stats.deliveries)
    }

    /// Every post answered well, every delivery arrived, the posters kept to the schedule, and
    /// the deliveries kept pace with the posts: a server that answers posts at once and delivers
    /// later (its backlog growing, however long the burst) does not sustain the rate.
    fn sustained(&self, planned: Duration) -> bool {
        self.missing() == 0
            && self.posts.failed == 0
            && self.stats.lost == 0
            && self.posts.elapsed <= planned.mul_f64(1.1) + Duration::from_millis(100)
            && self.elapsed <= planned.mul_f64(1.1) + DELIVERY_SLACK
    }

    fn report(&self, rate: f64, count: u64) -> Json {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let report = json!({
            "rate": rate,
            "posts": count,
            "posts_ok": self.posts.ok,
            "posts_failed": self.posts.failed,
            "post_errors": self.posts.errors,
            "post_max_lag_ms": self.posts.max_lag.as_millis() as u64,
            "post_rtt_max_us": self.posts.rtt_max_us,
            "expected": self.expected,
            "deliveries": self.stats.deliveries,
            "missing": self.missing(),
            "deliveries_per_s": round(self.stats.deliveries as f64 / secs, 0),
            "seconds": round(secs, 3),
            "latency": latency(&self.stats.delivery_latency),
            "lost_clients": self.stats.lost,
            "auth_retries": self.stats.auth_retries,
            "client_errors": self.stats.errors,
        });
        merge(
            report,
            cpu_report(&self.before, &self.after, self.stats.deliveries, "delivery"),
        )
    }
}

/// Posts `count` sends at `rate`, then waits (at most `drain`) for the deliveries.
fn burst(
    setup: &Setup,
    fleet: &Fleet,
    plan: PostPlan,
    expected: u64,
    drain: Duration,
) -> Result<Burst, ScenarioError> {
    fleet.reset()?;
    let before = CpuSnapshot::take(&setup.server_pids)?;
    let started = Instant::now();
    let posts = poster::run(&plan);
    let stats = fleet.wait_until(drain, |s| s.deliveries >= expected || s.lost > 0)?;
    let elapsed = started.elapsed();
    let after = CpuSnapshot::take(&setup.server_pids)?;
    Ok(Burst {
        stats,
        posts,
        expected,
        before,
        after,
        elapsed,
    })
}

fn count_for(rate: f64, duration: Duration) -> u64 {
    ((rate * duration.as_secs_f64()).round() as u64).max(1)
}

/// N clients; REST broadcasts at a fixed rate.
pub fn broadcast(
    setup: &Setup,
    clients: usize,
    rate: f64,
    duration: Duration,
) -> Result<Json, ScenarioError> {
    let fleet = setup.fleet()?;
    setup.connect(&fleet, setup.specs(clients, |_| Vec::new()))?;
    let count = count_for(rate, duration);
    let plan = setup.post_plan(vec![setup.broadcast_path.clone()], rate, count);
    let burst = burst(
        setup,
        &fleet,
        plan,
        count * clients as u64,
        Duration::from_secs(5),
    )?;
    let name = if setup.targets.len() > 1 {
        "cluster_broadcast"
    } else {
        "broadcast"
    };
    let report = merge(header(setup, name), json!({ "clients": clients }));
    Ok(merge(report, burst.report(rate, count)))
}

/// Rooms of the given sizes, in turn, until `clients` are placed; room sends at a fixed rate,
/// to each room in turn.
pub fn rooms(
    setup: &Setup,
    clients: usize,
    sizes: &[usize],
    rate: f64,
    duration: Duration,
) -> Result<Json, ScenarioError> {
    if sizes.is_empty() || sizes.contains(&0) {
        return Err(ScenarioError::Invalid("room sizes must be positive".into()));
    }
    let mut members = Vec::new();
    let mut placed = 0;
    while placed < clients {
        let size = sizes[members.len() % sizes.len()].min(clients - placed);
        members.push(size);
        placed += size;
    }
    let room_of = |client: usize| {
        let mut first = 0;
        for (room, size) in members.iter().enumerate() {
            if client < first + size {
                return room;
            }
            first += size;
        }
        0
    };
    let fleet = setup.fleet()?;
    setup.connect(
        &fleet,
        setup.specs(clients, |i| vec![format!("bench-{}", room_of(i))]),
    )?;
    let count = count_for(rate, duration);
    let paths: Vec<String> = (0..members.len())
        .map(|r| setup.room_path.replace("{room}", &format!("bench-{r}")))
        .collect();
    let expected: u64 = (0..count)
        .map(|seq| members[seq as usize % members.len()] as u64)
        .sum();
    let plan = setup.post_plan(paths, rate, count);
    let burst = burst(setup, &fleet, plan, expected, Duration::from_secs(5))?;
    let report = merge(
        header(setup, "rooms"),
        json!({ "clients": clients, "rooms": members.len(), "room_sizes": sizes }),
    );
    Ok(merge(report, burst.report(rate, count)))
}

/// Broadcast bursts at rising rates, on one set of clients, until one is not sustained; then
/// `refine` bursts halve the gap between the last rate sustained and the first not. The highest
/// sustained rate is the answer.
///
/// The rates of the list grow by half or double at each step, so without refining two servers
/// within 10 % of each other could come out 2x apart, depending on which side of one step each
/// fell in that run.
pub fn sweep(
    setup: &Setup,
    clients: usize,
    rates: &[f64],
    refine: u32,
    duration: Duration,
) -> Result<Json, ScenarioError> {
    let fleet = setup.fleet()?;
    setup.connect(&fleet, setup.specs(clients, |_| Vec::new()))?;
    let mut steps = Vec::new();
    // On a shared machine one burst can miss its schedule by bad luck: a rate fails only when
    // two bursts in a row miss it. A lost client ends the sweep: the fleet is no longer whole.
    let attempt_rate = |rate: f64, steps: &mut Vec<Json>| -> Result<Verdict, ScenarioError> {
        let count = count_for(rate, duration);
        for attempt in 1..=2 {
            let plan = setup.post_plan(vec![setup.broadcast_path.clone()], rate, count);
            let expected = count * clients as u64;
            let burst = burst(setup, &fleet, plan, expected, Duration::from_secs(3))?;
            let sustained = burst.sustained(duration);
            let head = json!({ "sustained": sustained, "attempt": attempt });
            steps.push(merge(head, burst.report(rate, count)));
            if sustained {
                // Let queues drain so the next step starts clean.
                std::thread::sleep(Duration::from_millis(200));
                return Ok(Verdict::Sustained);
            }
            if burst.stats.lost > 0 {
                return Ok(Verdict::ClientsLost);
            }
            if attempt == 1 {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(Verdict::NotSustained)
    };
    let best = highest_sustained(rates, refine, |rate| attempt_rate(rate, &mut steps))?;
    let report = json!({
        "clients": clients,
        "max_sustained_rate": best,
        "max_sustained_deliveries_per_s": best.map(|rate| rate * clients as f64),
        "steps": steps,
    });
    Ok(merge(header(setup, "sweep"), report))
}

/// The jitter benchmark's parameters.
#[derive(Debug, Clone)]
pub struct JitterPlan {
    /// Clients in the run.
    pub clients: usize,
    /// Each connection is cut around this often (between half and one and a half times).
    pub cut_every: Duration,
    /// Broadcasts per second.
    pub rate: f64,
    /// How long broadcasts are posted.
    pub duration: Duration,
    /// Reconnect as socket.io-client does with connection state recovery: `{pid, offset}`.
    pub recovery: bool,
    /// How long a cut client waits before it reconnects (0: at once).
    pub reconnect_after: Duration,
    /// How long, after the last post, clients have to come back and receive what is due.
    pub drain: Duration,
}

/// N clients receive a numbered stream of REST broadcasts while each connection is cut (reset)
/// around every `cut_every` and reconnects at once; every client's deliveries are accounted
/// for: received, missing, duplicated, out of order.
pub fn jitter(setup: &Setup, plan: &JitterPlan) -> Result<Json, ScenarioError> {
    if plan.cut_every.is_zero() || plan.rate <= 0.0 {
        return Err(ScenarioError::Invalid(
            "the cut period and the rate must be positive".into(),
        ));
    }
    let fleet = setup.fleet()?;
    let specs = setup
        .specs(plan.clients, |_| Vec::new())
        .into_iter()
        .map(|mut spec| {
            spec.track = true;
            spec.recovery = plan.recovery;
            spec
        })
        .collect();
    setup.connect(&fleet, specs)?;
    let count = count_for(plan.rate, plan.duration);
    let mut posts = setup.post_plan(vec![setup.broadcast_path.clone()], plan.rate, count);
    // One poster waits for each answer before the next post, so the server broadcasts the stream
    // in sequence order; concurrent posters on a loaded server reorder the stream itself, and
    // "out of order" would measure the posters instead of the deliveries.
    posts.posters = 1;
    fleet.churn(Some(Churn::Cut {
        every: plan.cut_every,
        reconnect_after: plan.reconnect_after,
    }))?;
    fleet.reset()?;
    let rss_before = procstat::total_rss(&setup.server_pids)?;
    let before = CpuSnapshot::take(&setup.server_pids)?;
    let started = Instant::now();
    let post_result = poster::run(&posts);
    let posting = started.elapsed();
    // No more cuts; clients still away come back, and have `drain` to get what is due.
    fleet.churn(None)?;
    let clients = plan.clients as u64;
    let expected = count * clients;
    let drained_by = Instant::now() + plan.drain;
    let stats = fleet.wait_until(plan.drain, |s| {
        s.ready >= clients && s.deliveries >= expected
    })?;
    // Whatever was still on its way when all were back: a short grace, within the drain.
    if stats.deliveries < expected {
        std::thread::sleep(drained_by.saturating_duration_since(Instant::now()));
    }
    let after = CpuSnapshot::take(&setup.server_pids)?;
    let rss_after = procstat::total_rss(&setup.server_pids)?;
    let stats = fleet.stats()?;
    let summary = fleet.tally(count)?;
    let t = summary.total;
    let report = json!({
        "clients": plan.clients,
        "recovery": plan.recovery,
        "cut_every_ms": plan.cut_every.as_millis() as u64,
        "reconnect_after_ms": plan.reconnect_after.as_millis() as u64,
        "rate": plan.rate,
        "seconds": round(posting.as_secs_f64(), 3),
        "posts": count,
        "posts_ok": post_result.ok,
        "posts_failed": post_result.failed,
        "post_errors": post_result.errors,
        "post_max_lag_ms": post_result.max_lag.as_millis() as u64,
        "cuts": stats.cuts,
        // Every new connection after the first: the cuts, and the redials after a failure.
        "reconnects": stats.cuts + stats.redialed,
        "recovered": stats.recovered,
        "recovered_share": round(ratio(stats.recovered, stats.cuts + stats.redialed), 4),
        "expected": t.expected,
        "received": t.received,
        "unique": t.unique,
        "missing": t.missing,
        "duplicated": t.duplicated,
        "out_of_order": t.out_of_order,
        "unexpected": t.unexpected,
        "delivery_pct": round(summary.delivery_share() * 100.0, 4),
        "clients_complete": summary.complete,
        "worst_client_pct": round(summary.worst_share * 100.0, 2),
        "latency": latency(&stats.delivery_latency),
        "ready_at_end": stats.ready,
        "redialed": stats.redialed,
        "failed_connects": stats.failed,
        "auth_retries": stats.auth_retries,
        "client_errors": stats.errors,
        "rss_before_kib": rss_before / 1024,
        "rss_after_kib": rss_after / 1024,
    });
    let report = merge(header(setup, "jitter"), report);
    Ok(merge(
        report,
        cpu_report(&before, &after, t.received, "delivery"),
    ))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The soak benchmark's parameters.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// Clients at any time.
    pub clients: usize,
    /// How long the soak runs.
    pub duration: Duration,
    /// How often the server is sampled.
    pub sample_every: Duration,
    /// A client leaves after between half and one and a half times this.
    pub lifetime: Duration,
    /// A client emits `echo` around this often.
    pub echo_every: Duration,
    /// REST posts per second, broadcasts and room sends in turn.
    pub rate: f64,
    /// Rooms `soak-0..` clients join from.
    pub rooms: usize,
    /// Rooms each client joins.
    pub rooms_per_client: usize,
}

/// RSS may grow by 10 % or 8 MiB over the steady part of a soak and still count as flat:
/// allocators keep freed memory in their pools, and grow them by steps.
pub const RSS_TOLERANCE: Tolerance = Tolerance {
    relative: 0.10,
    absolute: 8.0 * 1024.0,
};
/// Open descriptors follow the connections, which move while clients come and go.
pub const FD_TOLERANCE: Tolerance = Tolerance {
    relative: 0.05,
    absolute: 64.0,
};

/// A population of clients that come and go (connect, authenticate, join rooms, echo at a low
/// rate, leave after a random lifetime, replaced at once) under steady REST broadcasts and room
/// sends; the server's RSS, open descriptors and CPU are sampled at regular times, and the
/// verdict says whether memory and descriptors stayed flat.
pub fn soak(setup: &Setup, plan: &SoakPlan) -> Result<Json, ScenarioError> {
    if plan.sample_every.is_zero() || plan.rate <= 0.0 || plan.rooms == 0 {
        return Err(ScenarioError::Invalid(
            "the sample period, the rate and the room count must be positive".into(),
        ));
    }
    let fleet = setup.fleet()?;
    let mut draw = 0x2545_F491_4F6C_DD1Du64;
    let mut next_room = move || {
        draw ^= draw << 13;
        draw ^= draw >> 7;
        draw ^= draw << 17;
        format!("soak-{}", draw % plan.rooms as u64)
    };
    let rooms: Vec<Vec<String>> = (0..plan.clients)
        .map(|_| {
            let mut rooms: Vec<String> = Vec::new();
            for _ in 0..plan.rooms_per_client.min(plan.rooms) {
                let room = next_room();
                if !rooms.contains(&room) {
                    rooms.push(room);
                }
            }
            rooms
        })
        .collect();
    setup.connect(&fleet, setup.specs(plan.clients, |i| rooms[i].clone()))?;
    fleet.churn(Some(Churn::Replace {
        lifetime: plan.lifetime,
        echo_every: Some(plan.echo_every),
        room_pool: plan.rooms,
        rooms_per_client: plan.rooms_per_client,
    }))?;
    let paths: Vec<String> = (0..plan.rooms)
        .flat_map(|r| {
            [
                setup.broadcast_path.clone(),
                setup.room_path.replace("{room}", &format!("soak-{r}")),
            ]
        })
        .collect();
    let count = count_for(plan.rate, plan.duration);
    let posts = setup.post_plan(paths, plan.rate, count);
    let posting = std::thread::spawn(move || poster::run(&posts));

    let started = Instant::now();
    let first_cpu = CpuSnapshot::take(&setup.server_pids)?;
    let mut last_cpu = first_cpu;
    let mut last_stats = fleet.stats()?;
    let first_stats = last_stats.clone();
    let mut samples = Vec::new();
    let mut rss_series = Vec::new();
    let mut fd_series = Vec::new();
    let mut sample_at = Duration::ZERO;
    let mut last_at = Duration::ZERO;
    loop {
        let now = started.elapsed();
        if sample_at > now {
            std::thread::sleep(sample_at - now);
        }
        let t_min = started.elapsed().as_secs_f64() / 60.0;
        let rss = procstat::total_rss(&setup.server_pids)? as f64 / 1024.0;
        let fds: u64 = setup
            .server_pids
            .iter()
            .map(|pid| procstat::open_fds(*pid))
            .sum::<Result<u64, ProcError>>()?;
        let cpu = CpuSnapshot::take(&setup.server_pids)?;
        let stats = fleet.stats()?;
        let elapsed = started.elapsed();
        let window = elapsed.saturating_sub(last_at).as_secs_f64();
        last_at = elapsed;
        let server_cpu = cpu.server.saturating_sub(last_cpu.server);
        samples.push(json!({
            "t_min": round(t_min, 2),
            "rss_kib": rss as u64,
            "fds": fds,
            "server_cpu_ms": server_cpu.as_millis() as u64,
            // Of one core, over the window since the previous sample.
            "server_cpu_pct": round(100.0 * server_cpu.as_secs_f64() / window.max(1e-9), 1),
            "machine_idle": round(last_cpu.machine.idle_share(&cpu.machine), 3),
            "connections": stats.ready,
            "opened": stats.opened - last_stats.opened,
            "left": stats.left - last_stats.left,
            "deliveries": stats.deliveries - last_stats.deliveries,
            "acks": stats.acks - last_stats.acks,
            "errors": (stats.failed + stats.lost) - (last_stats.failed + last_stats.lost),
        }));
        rss_series.push((t_min, rss));
        fd_series.push((t_min, fds as f64));
        last_cpu = cpu;
        last_stats = stats;
        if sample_at >= plan.duration {
            break;
        }
        sample_at = (sample_at + plan.sample_every).min(plan.duration);
    }
    fleet.churn(None)?;
    let post_result = posting
        .join()
        .map_err(|_| ScenarioError::Invalid("the poster thread panicked".into()))?;
    let warmup = plan.sample_every.as_secs_f64() / 60.0;
    let rss = flatness(&rss_series, warmup, RSS_TOLERANCE);
    let fds = flatness(&fd_series, warmup, FD_TOLERANCE);
    let flat = match (&rss, &fds) {
        (Some(r), Some(f)) => Json::Bool(r.flat && f.flat),
        _ => Json::Null,
    };
    let s = &last_stats;
    let f = &first_stats;
    let report = json!({
        "clients": plan.clients,
        "minutes": round(plan.duration.as_secs_f64() / 60.0, 2),
        "sample_s": plan.sample_every.as_secs_f64(),
        "lifetime_s": plan.lifetime.as_secs_f64(),
        "echo_every_s": plan.echo_every.as_secs_f64(),
        "rate": plan.rate,
        "rooms": plan.rooms,
        "rooms_per_client": plan.rooms_per_client,
        "flat": flat,
        "rss_kib": rss.map(|v| v.to_json()),
        "fds": fds.map(|v| v.to_json()),
        "rss_tolerance": {"relative": RSS_TOLERANCE.relative, "absolute_kib": RSS_TOLERANCE.absolute},
        "fd_tolerance": {"relative": FD_TOLERANCE.relative, "absolute": FD_TOLERANCE.absolute},
        "opened": s.opened - f.opened,
        "left": s.left - f.left,
        "deliveries": s.deliveries - f.deliveries,
        "acks": s.acks - f.acks,
        "echo_latency": latency(&s.echo_latency),
        "delivery_latency": latency(&s.delivery_latency),
        "lost": s.lost - f.lost,
        "failed_connects": s.failed - f.failed,
        "redialed": s.redialed - f.redialed,
        "auth_retries": s.auth_retries,
        "client_errors": s.errors,
        "posts": count,
        "posts_ok": post_result.ok,
        "posts_failed": post_result.failed,
        "post_errors": post_result.errors,
        "post_max_lag_ms": post_result.max_lag.as_millis() as u64,
        "samples": samples,
    });
    let report = merge(header(setup, "soak"), report);
    Ok(merge(
        report,
        cpu_report(
            &first_cpu,
            &last_cpu,
            s.deliveries - f.deliveries,
            "delivery",
        ),
    ))
}

/// The highest rate `attempt` sustains: the rates of the list in turn until one is not
/// sustained, then `refine` halvings of the gap between the last sustained and the first not.
pub(crate) fn highest_sustained<E>(
    rates: &[f64],
    refine: u32,
    mut attempt: impl FnMut(f64) -> Result<Verdict, E>,
) -> Result<Option<f64>, E> {
    let mut best: Option<f64> = None;
    let mut failed: Option<f64> = None;
    for &rate in rates {
        match attempt(rate)? {
            Verdict::Sustained => best = Some(rate),
            Verdict::NotSustained => {
                failed = Some(rate);
                break;
            }
            Verdict::ClientsLost => return Ok(best),
        }
    }
    // Below the list's first rate there is nothing to refine: the sweep says "none".
    let (Some(mut low), Some(mut high)) = (best, failed) else {
        return Ok(best);
    };
    for _ in 0..refine {
        let rate = ((low + high) / 2.0).round();
        if rate <= low || rate >= high {
            break;
        }
        match attempt(rate)? {
            Verdict::Sustained => low = rate,
            Verdict::NotSustained => high = rate,
            Verdict::ClientsLost => break,
        }
    }
    Ok(Some(low))
}

/// How one rate of a sweep went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    Sustained,
    NotSustained,
    /// A client was lost: the sweep stops here.
    ClientsLost,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sustains every rate up to `limit`; the rates tried, in order.
    fn sweep_to(limit: f64, rates: &[f64], refine: u32) -> (Option<f64>, Vec<f64>) {
        let mut tried = Vec::new();
        let best = highest_sustained::<()>(rates, refine, |rate| {
            tried.push(rate);
            Ok(if rate <= limit {
                Verdict::Sustained
            } else {
                Verdict::NotSustained
            })
        })
        .unwrap();
        (best, tried)
    }

    #[test]
    fn the_sweep_halves_the_gap_after_the_first_rate_not_sustained() {
        let rates = [100.0, 200.0, 400.0, 800.0];
        // Sustains 700: 400 passes, 800 fails, then 600 passes, 700 passes, 750 fails.
        let (best, tried) = sweep_to(700.0, &rates, 3);
        assert_eq!(best, Some(700.0));
        assert_eq!(tried, [100.0, 200.0, 400.0, 800.0, 600.0, 700.0, 750.0]);
        // Without refining, the answer is the list's step below.
        assert_eq!(sweep_to(700.0, &rates, 0).0, Some(400.0));
        // Every rate sustained: nothing to refine.
        assert_eq!(sweep_to(1e9, &rates, 3), (Some(800.0), rates.to_vec()));
        // Not even the first: no answer.
        assert_eq!(sweep_to(50.0, &rates, 3), (None, vec![100.0]));
    }

    #[test]
    fn a_lost_client_ends_the_sweep_with_what_was_sustained_before() {
        let mut tried = Vec::new();
        let best = highest_sustained::<()>(&[100.0, 200.0, 400.0], 3, |rate| {
            tried.push(rate);
            Ok(if rate < 200.0 {
                Verdict::Sustained
            } else {
                Verdict::ClientsLost
            })
        })
        .unwrap();
        assert_eq!(best, Some(100.0));
        assert_eq!(tried, [100.0, 200.0]);
    }
}
