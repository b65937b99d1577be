//! The process's own figures for `/metrics`: CPU time, memory, open files and start time, read
//! at scrape time from `/proc/self` (Linux). Elsewhere, or when a file cannot be read, the
//! figure is left out rather than made up.

/// What could be read; `None` for what could not.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessFigures {
    /// User and system CPU time.
    pub cpu_seconds: Option<f64>,
    /// Resident set size.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size.
    pub virtual_bytes: Option<u64>,
    /// File descriptors open now (sockets included).
    pub open_fds: Option<u64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// The fields of `/proc/self/stat` this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    /// User plus system time, in clock ticks.
    cpu_ticks: u64,
    /// Start, in clock ticks since boot.
    start_ticks: u64,
    virtual_bytes: u64,
    resident_pages: u64,
}

/// Reads the fields of the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses: fields are counted from the last `)`, field 3 first.
fn parse_stat(stat: &str) -> Option<StatFields> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Field n of proc(5) is at index n - 3 here.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
        resident_pages: field(24)?,
    })
}

/// The soft limit of open files from the text of `/proc/<pid>/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.get("Max open files".len()..)?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// When the machine booted, in seconds since the epoch, from the text of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .unwrap_or(fallback)
}

/// The figures now.
pub(crate) fn read() -> ProcessFigures {
    let mut figures = ProcessFigures::default();
    let ticks = sysconf(libc::_SC_CLK_TCK, 100) as f64;
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
    {
        figures.cpu_seconds = Some(stat.cpu_ticks as f64 / ticks);
        figures.virtual_bytes = Some(stat.virtual_bytes);
        figures.resident_bytes = Some(
            stat.resident_pages
                .saturating_mul(sysconf(libc::_SC_PAGESIZE, 4096)),
        );
        figures.start_time_seconds = std::fs::read_to_string("/proc/stat")
            .ok()
            .as_deref()
            .and_then(parse_boot_time)
            .map(|boot| boot as f64 + stat.start_ticks as f64 / ticks);
    }
    figures.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    figures.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(parse_max_fds);
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis; fields 14, 15, 22, 23, 24 set apart.
        let stat = "4242 (ig nis) x) S 1 2 3 4 5 6 7 8 9 10 110 7 0 0 20 0 9 0 555 4096000 300 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let fields = parse_stat(stat).unwrap();
        assert_eq!(
            fields,
            StatFields {
                cpu_ticks: 117,
                start_ticks: 555,
                virtual_bytes: 4_096_000,
                resident_pages: 300,
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn limits_and_boot_time_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63459                63459                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_is_read() {
        let figures = read();
        if cfg!(target_os = "linux") {
            assert!(figures.resident_bytes.is_some_and(|b| b > 0));
            assert!(figures.open_fds.is_some_and(|n| n > 0));
            assert!(figures.cpu_seconds.is_some());
            assert!(figures.max_fds.is_some());
            assert!(figures.start_time_seconds.is_some_and(|s| s > 1e9));
        }
    }
}
