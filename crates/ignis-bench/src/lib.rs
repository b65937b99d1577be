//! A load generator and benchmark scenarios for Socket.IO servers that follow the bench
//! contract (`bench/CONTRACT.md`): the Ignis server, Node socket.io, socketioxide and a
//! hand-written epoll floor.
//!
//! Clients speak WebSocket, Engine.IO v4 and Socket.IO v5 themselves with the workspace codecs
//! (`ignis-ws`, `ignis-proto`). A few threads each run one mio event loop over thousands of
//! connections, so the generator costs little beside the server; every scenario reports the
//! generator's CPU and the machine's idle share next to the server's CPU, so a run where the
//! generator was the bottleneck shows it.
//!
//! ```
//! use ignis_bench::conn::{Conn, Event};
//!
//! // A connection starts with its upgrade request queued.
//! let conn = Conn::new("127.0.0.1:3000", "/io/", 1);
//! assert!(conn.output().starts_with(b"GET /io/?EIO=4&transport=websocket HTTP/1.1\r\n"));
//!
//! // Latencies go into log-linear histograms.
//! let mut h = ignis_bench::histogram::Histogram::default();
//! for us in [10, 20, 30] {
//!     h.record(us);
//! }
//! assert_eq!(h.quantile(0.5), 20);
//! # let _ = Event::Authenticated;
//! ```

pub mod chat;
pub mod conn;
pub mod flat;
pub mod fleet;
pub mod histogram;
pub mod http;
pub mod poster;
pub mod procstat;
pub mod scale;
pub mod scenario;
pub mod seqs;

/// Lifts the soft open-file limit to the hard one: each connection is a descriptor.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}
