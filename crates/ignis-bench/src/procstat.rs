//! CPU and memory figures from `/proc`: the server's and the load generator's CPU time, the
//! server's RSS, and the machine's idle share, so every result says who spent what.

use std::time::Duration;

/// Why a `/proc` figure could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A `/proc` file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected shape.
    #[error("unexpected format in {0}")]
    Format(String),
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Io {
        path: path.to_string(),
        source,
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// User plus system time from the text of `/proc/<pid>/stat`, in clock ticks. The command name
/// may hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state (3), ppid (4) ... utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time a process (all its threads, living and exited) has used.
pub fn process_cpu(pid: u32) -> Result<Duration, ProcError> {
    let path = format!("/proc/{pid}/stat");
    let ticks = parse_stat_ticks(&read(&path)?).ok_or(ProcError::Format(path))?;
    let hz = clock_ticks_per_second();
    Ok(Duration::from_micros(ticks.saturating_mul(1_000_000) / hz))
}

/// Resident set size in bytes, from the second field of `/proc/<pid>/statm`.
pub fn process_rss(pid: u32) -> Result<u64, ProcError> {
    let path = format!("/proc/{pid}/statm");
    let pages: u64 = read(&path)?
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or(ProcError::Format(path))?;
    Ok(pages * page_size())
}

/// Open file descriptors of a process: the entries of `/proc/<pid>/fd`.
pub fn open_fds(pid: u32) -> Result<u64, ProcError> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(|source| ProcError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(entries.filter(|e| e.is_ok()).count() as u64)
}

/// Cumulative jiffies of the whole machine: idle (idle + iowait) and total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineTicks {
    /// Idle and iowait jiffies.
    pub idle: u64,
    /// All jiffies.
    pub total: u64,
}

impl MachineTicks {
    /// Share of the machine left idle between `self` (earlier) and `later`, 0..=1.
    pub fn idle_share(&self, later: &MachineTicks) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.idle.saturating_sub(self.idle) as f64 / total as f64
    }
}

/// The aggregate `cpu` line of `/proc/stat`.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    if values.len() < 5 {
        return None;
    }
    let idle = values[3] + values[4];
    let total = values.iter().take(8).sum();
    Some(MachineTicks { idle, total })
}

/// The machine's jiffies now, from `/proc/stat`.
pub fn machine_ticks() -> Result<MachineTicks, ProcError> {
    parse_machine_ticks(&read("/proc/stat")?).ok_or(ProcError::Format("/proc/stat".into()))
}

/// One reading of everything a scenario reports about CPU.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    /// CPU time of the servers, summed.
    pub server: Duration,
    /// CPU time of this process.
    pub loadgen: Duration,
    /// The machine's jiffies.
    pub machine: MachineTicks,
}

impl CpuSnapshot {
    /// Reads the servers' CPU (summed over `server_pids`), ours and the machine's.
    pub fn take(server_pids: &[u32]) -> Result<CpuSnapshot, ProcError> {
        let mut server = Duration::ZERO;
        for pid in server_pids {
            server += process_cpu(*pid)?;
        }
        Ok(CpuSnapshot {
            server,
            loadgen: process_cpu(std::process::id())?,
            machine: machine_ticks()?,
        })
    }
}

/// Sum of the RSS of several processes.
pub fn total_rss(pids: &[u32]) -> Result<u64, ProcError> {
    pids.iter().map(|pid| process_rss(*pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "42 (ignis-server) S 1 42 42 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0",
                Some(325),
            ),
            (
                "7 (a (weird) name) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0",
                Some(3),
            ),
            ("7 (short) R 1 2", None),
            ("no parenthesis at all", None),
            ("7 (x) R 1 7 7 0 -1 0 0 0 0 0 abc 2 0", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_stat_ticks(text), *expected, "{text}");
        }
    }

    #[test]
    fn machine_stat() {
        let cases: &[(&str, Option<MachineTicks>)] = &[
            (
                "cpu  10 0 5 80 5 0 0 0 0 0\ncpu0 1 2 3 4 5\n",
                Some(MachineTicks {
                    idle: 85,
                    total: 100,
                }),
            ),
            ("cpu  1 2 3\n", None),
            ("cpu0 1 2 3 4 5 6 7 8\n", None),
            ("cpu  1 2 x 4 5\n", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_machine_ticks(text), *expected, "{text}");
        }
        let a = MachineTicks {
            idle: 10,
            total: 100,
        };
        let b = MachineTicks {
            idle: 60,
            total: 200,
        };
        assert!((a.idle_share(&b) - 0.5).abs() < 1e-9);
        assert_eq!(a.idle_share(&a), 0.0);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(process_rss(pid).expect("rss") > 0);
        process_cpu(pid).expect("cpu");
        CpuSnapshot::take(&[pid]).expect("snapshot");
        // At least stdin, stdout and stderr, or whatever the harness put there.
        assert!(open_fds(pid).expect("fds") >= 1);
        assert!(open_fds(u32::MAX).is_err());
        assert!(process_cpu(u32::MAX).is_err());
    }
}
