//! The scale benchmark (issue 17): more clients than one process may hold (the open-file limit
//! is per process), so the run is split over several processes that meet in a control
//! directory:
//!
//! - each *holder* (`scale-hold`) opens its share `first..first+count` of the clients, spread
//!   over the nodes, authenticated with a JWT and joined to room `scale-{i / room_size}`, writes
//!   `ready-<first>.json`, waits for `go`, counts deliveries until `done` and the stragglers
//!   after it, and prints one JSON report with its latency histogram's buckets;
//! - the *poster* (`scale-post`) writes `go`, posts a numbered stream of broadcasts to everyone
//!   and, at the same time, a numbered stream of room sends going round the rooms, then writes
//!   `done` with how many of each it posted.
//!
//! `scripts/bench-scale.sh` starts the nodes, the holders and the poster, reads the servers' and
//! Redis' CPU and memory, and merges the reports into one table row.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::fleet::{ConnSpec, ROOM_SEQ_BASE, RoomStream};
use crate::poster::{self, PostPlan, PostResult};
use crate::procstat;
use crate::scenario::{ScenarioError, Setup, latency, round};
use crate::seqs::{Summary, Tally};

/// The file the poster writes when it starts posting.
pub const GO_FILE: &str = "go";
/// The file the poster writes when it is done: `{"broadcasts": n, "room_sends": n}`.
pub const DONE_FILE: &str = "done";

/// How often a holder looks for the poster's files.
const POLL: Duration = Duration::from_millis(20);

/// One holder's share of a scale run.
#[derive(Debug, Clone)]
pub struct HoldPlan {
    /// Clients over all holders: rooms are numbered over all of them.
    pub total: usize,
    /// This holder's first client (global index).
    pub first: usize,
    /// How many clients this holder opens.
    pub count: usize,
    /// Clients per room: client `i` is in room `scale-{i / room_size}`.
    pub room_size: usize,
    /// The JWT every client sends as its CONNECT's `auth.token`.
    pub token: Option<Arc<str>>,
    /// Where the holders and the poster meet.
    pub control: PathBuf,
    /// How long after `done` stragglers may still arrive.
    pub drain: Duration,
    /// The longest a holder waits for `go`, and then for `done`.
    pub max_wait: Duration,
}

impl HoldPlan {
    fn rooms(&self) -> u64 {
        self.total.div_ceil(self.room_size.max(1)) as u64
    }

    /// The client specs of this share: client `i` goes to node `i % nodes`, from source address
    /// `127.0.0.{1 + (i / nodes) % source_ips}`, so each (source, node) pair gets its share of
    /// ephemeral ports.
    fn specs(&self, setup: &Setup) -> Vec<ConnSpec> {
        let nodes = setup.targets.len().max(1);
        let rooms = self.rooms();
        (self.first..self.first + self.count)
            .map(|i| {
                let room = (i / self.room_size.max(1)) as u64;
                let source = (setup.source_ips > 1).then(|| {
                    let host = 1 + ((i / nodes) % usize::from(setup.source_ips)) as u8;
                    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, host))
                });
                let mut spec = ConnSpec::plain(i % nodes, source, vec![format!("scale-{room}")]);
                spec.track = true;
                spec.token = self.token.clone();
                spec.room_stream = Some(RoomStream { rooms, room });
                spec
            })
            .collect()
    }

    /// Deliveries this share should get of `broadcasts` broadcasts and `room_sends` room sends.
    fn expected(&self, broadcasts: u64, room_sends: u64) -> u64 {
        let rooms = self.rooms();
        let mut expected = broadcasts * self.count as u64;
        for i in self.first..self.first + self.count {
            let room = (i / self.room_size.max(1)) as u64;
            expected += RoomStream { rooms, room }.expected(room_sends);
        }
        expected
    }
}

/// Writes `text` to `dir/name` whole: a reader sees the file complete or not at all.
fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<(), ScenarioError> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |e: std::io::Error| ScenarioError::Invalid(format!("writing {name}: {e}"));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io)
}

/// Waits until `dir/name` exists and `parse` accepts its text, at most `max_wait`.
fn wait_file<T>(
    dir: &Path,
    name: &str,
    max_wait: Duration,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ScenarioError> {
    let deadline = Instant::now() + max_wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name))
            && let Some(value) = parse(&text)
        {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(ScenarioError::Invalid(format!(
                "no {name} in {} after {} s",
                dir.display(),
                max_wait.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn tally_json(summary: &Summary) -> Json {
    let Tally {
        expected,
        received,
        unique,
        missing,
        duplicated,
        out_of_order,
        unexpected,
    } = summary.total;
    json!({
        "clients": summary.clients,
        "expected": expected,
        "received": received,
        "unique": unique,
        "missing": missing,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "unexpected": unexpected,
        "clients_complete": summary.complete,
        "worst_client_pct": round(summary.worst_share * 100.0, 2),
    })
}

/// One holder: opens its share, reports ready, counts what arrives between `go` and `done`
/// (and the drain after it), and returns its report.
pub fn hold(setup: &Setup, plan: &HoldPlan) -> Result<Json, ScenarioError> {
    if plan.room_size == 0 || plan.count == 0 || plan.first + plan.count > plan.total {
        return Err(ScenarioError::Invalid(
            "need 0 < count, first + count <= total and a room size".into(),
        ));
    }
    let fleet = setup.fleet()?;
    let started = Instant::now();
    let connected = setup.connect(&fleet, plan.specs(setup))?;
    let connect_ms = started.elapsed().as_millis() as u64;
    let ready = json!({
        "first": plan.first,
        "count": plan.count,
        "ready": connected.ready,
        "connect_ms": connect_ms,
        "auth_retries": connected.auth_retries,
    });
    write_atomic(
        &plan.control,
        &format!("ready-{}.json", plan.first),
        &ready.to_string(),
    )?;
    wait_file(&plan.control, GO_FILE, plan.max_wait, |_| Some(()))?;
    fleet.reset()?;
    let before = fleet.stats()?;
    let cpu_before = procstat::process_cpu(std::process::id())?;
    let (broadcasts, room_sends) = wait_file(&plan.control, DONE_FILE, plan.max_wait, |text| {
        let done: Json = serde_json::from_str(text).ok()?;
        Some((done["broadcasts"].as_u64()?, done["room_sends"].as_u64()?))
    })?;
    let expected = plan.expected(broadcasts, room_sends);
    let drain_started = Instant::now();
    // A lost client never gets what it is due: then the drain runs out, so that the others
    // still get theirs (a loaded server delivers late rather than not at all).
    fleet.wait_until(plan.drain, |s| s.deliveries >= expected)?;
    let drain_ms = drain_started.elapsed().as_millis() as u64;
    let cpu_after = procstat::process_cpu(std::process::id())?;
    let stats = fleet.stats()?;
    let (b, r) = fleet.tally_split(broadcasts, room_sends)?;
    let missing = b.total.missing + r.total.missing;
    fleet.close_all()?;
    let buckets: Vec<[u64; 2]> = stats
        .delivery_latency
        .buckets()
        .into_iter()
        .map(|(value, count)| [value, count])
        .collect();
    Ok(json!({
        "scenario": "scale-hold",
        "peer": setup.label,
        "nodes": setup.targets.len(),
        "total": plan.total,
        "first": plan.first,
        "count": plan.count,
        "room_size": plan.room_size,
        "rooms": plan.rooms(),
        "ready": connected.ready,
        "connect_ms": connect_ms,
        "broadcasts": broadcasts,
        "room_sends": room_sends,
        "expected": expected,
        "deliveries": stats.deliveries,
        "missing": missing,
        "duplicated": b.total.duplicated + r.total.duplicated,
        "out_of_order": b.total.out_of_order + r.total.out_of_order,
        "unexpected": b.total.unexpected + r.total.unexpected,
        "broadcast": tally_json(&b),
        "room": tally_json(&r),
        "drain_ms": drain_ms,
        "latency": latency(&stats.delivery_latency),
        "latency_buckets": buckets,
        "lost": stats.lost - before.lost,
        "failed": stats.failed,
        "auth_retries": stats.auth_retries,
        "loadgen_cpu_us": cpu_after.saturating_sub(cpu_before).as_micros() as u64,
        "client_errors": stats.errors,
    }))
}

/// What the poster sends.
#[derive(Debug, Clone)]
pub struct PostStreams {
    /// How long the streams run.
    pub duration: Duration,
    /// Broadcasts to everyone per second.
    pub broadcast_rate: f64,
    /// Room sends per second, going round the rooms `scale-0..scale-{rooms}`.
    pub room_rate: f64,
    /// How many rooms the room sends go round.
    pub rooms: usize,
    /// Where the holders wait for `go` and `done`.
    pub control: PathBuf,
}

fn plan(setup: &Setup, paths: Vec<String>, rate: f64, duration: Duration, base: u64) -> PostPlan {
    PostPlan {
        addr: setup
            .rest_addr
            .or(setup.targets.first().map(|t| t.addr))
            .unwrap_or_else(|| ([127, 0, 0, 1], 3000).into()),
        paths,
        headers: setup.rest_headers.clone(),
        rate,
        count: (rate * duration.as_secs_f64()).round() as u64,
        // One poster waits for each answer: the stream is broadcast in its order, so "out of
        // order" measures the delivery, not posters overtaking each other.
        posters: 1,
        seq_base: base,
    }
}

fn posts_json(result: &PostResult, count: u64) -> Json {
    json!({
        "posts": count,
        "ok": result.ok,
        "failed": result.failed,
        "errors": result.errors,
        "max_lag_ms": result.max_lag.as_millis() as u64,
        "rtt_max_us": result.rtt_max_us,
    })
}

/// The poster: writes `go`, posts both streams at once, writes `done`, returns its report.
pub fn post(setup: &Setup, streams: &PostStreams) -> Result<Json, ScenarioError> {
    if streams.broadcast_rate <= 0.0 || streams.room_rate < 0.0 || streams.rooms == 0 {
        return Err(ScenarioError::Invalid(
            "the broadcast rate and the room count must be positive".into(),
        ));
    }
    let broadcasts = plan(
        setup,
        vec![setup.broadcast_path.clone()],
        streams.broadcast_rate,
        streams.duration,
        0,
    );
    let rooms = plan(
        setup,
        (0..streams.rooms)
            .map(|r| setup.room_path.replace("{room}", &format!("scale-{r}")))
            .collect(),
        streams.room_rate,
        streams.duration,
        ROOM_SEQ_BASE,
    );
    write_atomic(&streams.control, GO_FILE, "go\n")?;
    // The holders poll for `go` and reset their counters: let them, before the first post.
    std::thread::sleep(POLL * 10);
    let started = Instant::now();
    let room_thread = {
        let rooms = rooms.clone();
        std::thread::spawn(move || poster::run(&rooms))
    };
    let b = poster::run(&broadcasts);
    let r = room_thread
        .join()
        .map_err(|_| ScenarioError::Invalid("the room poster panicked".into()))?;
    let seconds = started.elapsed().as_secs_f64();
    let done = json!({ "broadcasts": broadcasts.count, "room_sends": rooms.count });
    write_atomic(&streams.control, DONE_FILE, &done.to_string())?;
    Ok(json!({
        "scenario": "scale-post",
        "peer": setup.label,
        "seconds": round(seconds, 3),
        "broadcast_rate": streams.broadcast_rate,
        "room_rate": streams.room_rate,
        "rooms": streams.rooms,
        "broadcasts": broadcasts.count,
        "room_sends": rooms.count,
        "broadcast_posts": posts_json(&b, broadcasts.count),
        "room_posts": posts_json(&r, rooms.count),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(total: usize, first: usize, count: usize) -> HoldPlan {
        HoldPlan {
            total,
            first,
            count,
            room_size: 1000,
            token: None,
            control: PathBuf::new(),
            drain: Duration::ZERO,
            max_wait: Duration::ZERO,
        }
    }

    #[test]
    fn shares_add_up_to_the_whole_run() {
        // 2 500 clients: rooms of 1000, 1000 and 500; 7 room sends go 0,1,2,0,1,2,0.
        let whole = plan(2500, 0, 2500).expected(3, 7);
        assert_eq!(whole, 3 * 2500 + 3 * 1000 + 2 * 1000 + 2 * 500);
        // Split anywhere, even inside a room, the shares add up to the same.
        let parts = plan(2500, 0, 700).expected(3, 7)
            + plan(2500, 700, 1100).expected(3, 7)
            + plan(2500, 1800, 700).expected(3, 7);
        assert_eq!(parts, whole);
    }

    #[test]
    fn room_stream_expectations() {
        let s = |room| RoomStream { rooms: 3, room };
        assert_eq!([s(0), s(1), s(2)].map(|r| r.expected(7)), [3, 2, 2]);
        assert_eq!(s(0).expected(0), 0);
        assert_eq!(s(2).expected(3), 1);
    }

    #[test]
    fn specs_spread_over_nodes_sources_and_rooms() {
        let setup = Setup {
            label: "ignis".into(),
            targets: (0..3)
                .map(|i| crate::fleet::Target {
                    addr: ([127, 0, 0, 1], 4000 + i).into(),
                    path: "/io/".into(),
                })
                .collect(),
            server_pids: Vec::new(),
            threads: 1,
            source_ips: 2,
            broadcast_path: String::new(),
            room_path: String::new(),
            rest_addr: None,
            rest_headers: String::new(),
            posters: 1,
            connect_timeout: Duration::ZERO,
        };
        let mut share = plan(3000, 998, 4);
        share.token = Some("jwt".into());
        let specs = share.specs(&setup);
        let targets: Vec<usize> = specs.iter().map(|s| s.target).collect();
        assert_eq!(targets, [2, 0, 1, 2]);
        let rooms: Vec<&str> = specs.iter().map(|s| s.rooms[0].as_str()).collect();
        assert_eq!(rooms, ["scale-0", "scale-0", "scale-1", "scale-1"]);
        assert_eq!(specs[2].room_stream, Some(RoomStream { rooms: 3, room: 1 }));
        // Client 998 is the 332nd on its node (998 / 3), from 127.0.0.1; 999 from 127.0.0.2.
        let sources: Vec<String> = specs
            .iter()
            .map(|s| s.source.map(|a| a.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(
            sources,
            ["127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"]
        );
        assert!(
            specs
                .iter()
                .all(|s| s.track && s.token.as_deref() == Some("jwt"))
        );
    }
}
