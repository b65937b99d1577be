//! REST posters: a few threads, each on one keep-alive connection, sending `{topic, data}` on a
//! fixed schedule. `data` is `[seq, sent_us]`, which the clients turn into latency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::conn::BENCH_TOPIC;
use crate::fleet::now_us;
use crate::http;

/// What to post, where and how fast.
#[derive(Debug, Clone)]
pub struct PostPlan {
    /// The server's REST address.
    pub addr: SocketAddr,
    /// Paths used in turn: post `seq` goes to `paths[seq % paths.len()]`.
    pub paths: Vec<String>,
    /// Extra header lines, each ending in CRLF (an API key, say).
    pub headers: String,
    /// Posts per second over all posters.
    pub rate: f64,
    /// How many posts in all.
    pub count: u64,
    /// Poster threads, each on its own keep-alive connection.
    pub posters: usize,
    /// Added to each post's sequence number in its body (not in the choice of path), so that
    /// two streams posted at once stay apart.
    pub seq_base: u64,
}

/// What a plan's posts came to.
#[derive(Debug, Clone, Default)]
pub struct PostResult {
    /// Posts answered 2xx.
    pub ok: u64,
    /// Posts that failed or were answered otherwise.
    pub failed: u64,
    /// The first distinct errors.
    pub errors: Vec<String>,
    /// From the first scheduled post to the last answer.
    pub elapsed: Duration,
    /// How far behind its schedule the latest post went out.
    pub max_lag: Duration,
    /// Round trip of each post, µs.
    pub rtt_max_us: u64,
}

impl PostResult {
    fn merge(&mut self, other: PostResult) {
        self.ok += other.ok;
        self.failed += other.failed;
        for e in other.errors {
            if self.errors.len() < 8 && !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.max_lag = self.max_lag.max(other.max_lag);
        self.rtt_max_us = self.rtt_max_us.max(other.rtt_max_us);
    }
}

/// Sends the plan's posts and waits for every answer.
pub fn run(plan: &PostPlan) -> PostResult {
    if plan.paths.is_empty() {
        return PostResult {
            failed: plan.count,
            errors: vec!["no path to post to".into()],
            ..PostResult::default()
        };
    }
    let start = Instant::now() + Duration::from_millis(20);
    let posters = plan.posters.max(1);
    let handles: Vec<_> = (0..posters)
        .map(|first| {
            let plan = plan.clone();
            std::thread::spawn(move || poster(&plan, first as u64, posters as u64, start))
        })
        .collect();
    let mut total = PostResult::default();
    for handle in handles {
        match handle.join() {
            Ok(result) => total.merge(result),
            Err(_) => total.errors.push("a poster thread panicked".into()),
        }
    }
    total
}

fn poster(plan: &PostPlan, first: u64, step: u64, start: Instant) -> PostResult {
    let mut result = PostResult::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let host = plan.addr.to_string();
    let mut seq = first;
    while seq < plan.count {
        let due = start + Duration::from_secs_f64(seq as f64 / plan.rate.max(0.001));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            result.max_lag = result.max_lag.max(now - due);
        }
        let Some(path) = plan.paths.get((seq % plan.paths.len() as u64) as usize) else {
            break;
        };
        let body = format!(
            r#"{{"topic":"{BENCH_TOPIC}","data":[{},{}]}}"#,
            plan.seq_base + seq,
            now_us()
        );
        let request = http::post_request(&host, path, &plan.headers, body.as_bytes());
        let sent = Instant::now();
        match post_once(&mut stream, plan.addr, &request, &mut buf) {
            Ok(status) if (200..300).contains(&status) => result.ok += 1,
            Ok(status) => {
                result.failed += 1;
                note(&mut result.errors, format!("HTTP {status} on {path}"));
            }
            Err(e) => {
                stream = None;
                result.failed += 1;
                note(&mut result.errors, format!("POST {path}: {e}"));
            }
        }
        result.rtt_max_us = result.rtt_max_us.max(sent.elapsed().as_micros() as u64);
        seq += step;
    }
    result.elapsed = start.elapsed();
    result
}

fn note(errors: &mut Vec<String>, error: String) {
    if errors.len() < 8 && !errors.contains(&error) {
        errors.push(error);
    }
}

fn post_once(
    stream: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    if stream.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        *stream = Some(s);
    }
    let Some(s) = stream.as_mut() else {
        return Err(std::io::Error::other("no connection"));
    };
    s.write_all(request)?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match http::parse_response(buf) {
            Ok(Some(response)) => {
                // Keep-alive: a server that closes after answering is reconnected next time.
                return Ok(response.status);
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before answering",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
