//! Where the logs go: stderr, or with `--log-dir` files that rotate (hourly by default) and are
//! kept for a while (`--log-keep`), errors also in files of their own; text or JSON either way.
//!
//! Log fields that come from clients (token headers, topics, room names, reasons built from
//! them) are written through [`Escaped`], so a newline or a control character in them cannot
//! start a forged line in the text log.

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, LogFormat};

/// When a log file is closed and the next one begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogRotation {
    Hourly,
    Daily,
    /// One file, which grows for ever.
    Never,
}

impl LogRotation {
    fn period(self) -> Option<Duration> {
        match self {
            LogRotation::Hourly => Some(Duration::from_secs(3600)),
            LogRotation::Daily => Some(Duration::from_secs(86_400)),
            LogRotation::Never => None,
        }
    }

    /// As in the configuration.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogRotation::Hourly => "hourly",
            LogRotation::Daily => "daily",
            LogRotation::Never => "never",
        }
    }
}

/// How many old log files are kept: a count, or an age (`5d`), which is a count of files of
/// the rotation's period, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogKeep {
    Files(usize),
    Age(Duration),
}

impl LogKeep {
    /// Files of each kind kept, the one being written included.
    fn files(self, rotation: LogRotation) -> Option<usize> {
        let period = rotation.period()?;
        Some(match self {
            LogKeep::Files(n) => n,
            LogKeep::Age(age) => age.as_secs().div_ceil(period.as_secs()).max(1) as usize,
        })
    }

    /// As in the configuration.
    pub(crate) fn to_setting(self) -> String {
        match self {
            LogKeep::Files(n) => n.to_string(),
            LogKeep::Age(age) => {
                let secs = age.as_secs();
                if secs % 86_400 == 0 {
                    format!("{}d", secs / 86_400)
                } else if secs % 3600 == 0 {
                    format!("{}h", secs / 3600)
                } else {
                    format!("{}m", secs / 60)
                }
            }
        }
    }
}

/// Where the logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogSettings {
    pub format: LogFormat,
    /// `None`: stderr.
    pub dir: Option<PathBuf>,
    pub rotation: LogRotation,
    pub keep: LogKeep,
}

/// Logs are kept five days unless configured otherwise.
pub(crate) const DEFAULT_LOG_KEEP: LogKeep = LogKeep::Age(Duration::from_secs(5 * 86_400));

impl LogSettings {
    /// The file settings from their text (flags, environment or file); `--log-keep` without a
    /// rotation to apply it to is refused, as is a keep of nothing.
    pub(crate) fn load(
        format: LogFormat,
        dir: Option<PathBuf>,
        rotation: Option<&str>,
        keep: Option<&str>,
    ) -> Result<LogSettings, ConfigError> {
        let invalid = |name: &'static str, reason: String| ConfigError::Invalid { name, reason };
        let rotation = match rotation.map(str::trim) {
            None | Some("hourly") => LogRotation::Hourly,
            Some("daily") => LogRotation::Daily,
            Some("never") => LogRotation::Never,
            Some(other) => {
                return Err(invalid(
                    "log rotation (log_rotation, --log-rotation)",
                    format!("{other:?} is not hourly, daily or never"),
                ));
            }
        };
        let keep = match keep.map(str::trim) {
            None => DEFAULT_LOG_KEEP,
            Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                match text.parse::<usize>() {
                    Ok(0) | Err(_) => {
                        return Err(invalid(
                            "log keep (log_keep, --log-keep)",
                            format!("{text:?}: keep at least one file"),
                        ));
                    }
                    Ok(n) => LogKeep::Files(n),
                }
            }
            Some(text) => LogKeep::Age(crate::config::parse_ttl(text).map_err(|reason| {
                invalid(
                    "log keep (log_keep, --log-keep)",
                    format!("{reason} (or a number of files)"),
                )
            })?),
        };
        if keep != DEFAULT_LOG_KEEP && rotation == LogRotation::Never {
            return Err(invalid(
                "log keep (log_keep, --log-keep)",
                "is set but the logs do not rotate (log rotation never)".into(),
            ));
        }
        if dir.is_none() && (keep != DEFAULT_LOG_KEEP || rotation != LogRotation::Hourly) {
            return Err(invalid(
                "log rotation and keep (--log-rotation, --log-keep)",
                "are set but no log directory is (--log-dir)".into(),
            ));
        }
        Ok(LogSettings {
            format,
            dir,
            rotation,
            keep,
        })
    }
}

/// The name of the log files (`ignis.2026-01-31-17.log`) and of those of errors
/// (`error.2026-01-31-17.log`): neither name begins with the other, since the retention of each
/// kind counts the files that begin with its own.
pub(crate) const LOG_FILE_PREFIX: &str = "ignis";
pub(crate) const ERROR_FILE_PREFIX: &str = "error";

fn appender(
    dir: &Path,
    prefix: &str,
    settings: &LogSettings,
) -> Result<RollingFileAppender, String> {
    let rotation = match settings.rotation {
        LogRotation::Hourly => Rotation::HOURLY,
        LogRotation::Daily => Rotation::DAILY,
        LogRotation::Never => Rotation::NEVER,
    };
    let mut builder = RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(prefix)
        .filename_suffix("log");
    if let Some(files) = settings.keep.files(settings.rotation) {
        builder = builder.max_log_files(files);
    }
    builder
        .build(dir)
        .map_err(|e| format!("cannot write logs in {}: {e}", dir.display()))
}

/// What must live as long as the process for the log files to be written: dropped, the lines
/// still queued are written out.
pub(crate) struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// A layer that writes lines to `writer`, as text or JSON; `Registry` is the subscriber every
/// layer of the server stacks on.
type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn format_layer<W>(writer: W, json: bool, ansi: bool) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt.boxed()
    }
}

/// Sets up logging as configured: `RUST_LOG` (default `info`) filters what is written; with a
/// directory, every line goes to its files and errors to the error files as well.
pub(crate) fn init(settings: &LogSettings) -> Result<LogGuards, String> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = settings.format == LogFormat::Json;
    let Some(dir) = &settings.dir else {
        // As before files existed: straight to stderr, in colour on a terminal.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::registry()
            .with(format_layer(std::io::stderr, json, ansi).with_filter(filter()))
            .try_init()
            .map_err(|e| e.to_string())?;
        return Ok(LogGuards(Vec::new()));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    // Lines are handed to a writer thread, so a slow disk does not hold a worker thread. Its
    // queue is bounded; past it, lines are dropped rather than stalling the server.
    let (all, all_guard) =
        tracing_appender::non_blocking(appender(dir, LOG_FILE_PREFIX, settings)?);
    let (errors, error_guard) =
        tracing_appender::non_blocking(appender(dir, ERROR_FILE_PREFIX, settings)?);
    let layers = vec![
        format_layer(all, json, false).with_filter(filter()).boxed(),
        format_layer(errors, json, false)
            .with_filter(LevelFilter::ERROR)
            .boxed(),
    ];
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(LogGuards(vec![all_guard, error_guard]))
}

/// Displays a string with newlines, quotes and control characters escaped as Rust does
/// (`\n`, `\u{1b}`), without the surrounding quotes `{:?}` would add.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable text, accents and other scripts included, stays readable.
        for c in self.0.chars() {
            if c == '\\' || c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        dir: Option<&str>,
        rotation: Option<&str>,
        keep: Option<&str>,
    ) -> Result<LogSettings, String> {
        LogSettings::load(LogFormat::Text, dir.map(PathBuf::from), rotation, keep)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keep_is_a_count_or_an_age_in_files_of_the_period() {
        let s = load(Some("/l"), None, None).unwrap();
        assert_eq!(
            (s.rotation, s.keep),
            (LogRotation::Hourly, DEFAULT_LOG_KEEP)
        );
        assert_eq!(
            s.keep.files(s.rotation),
            Some(120),
            "5 days of hourly files"
        );
        let s = load(Some("/l"), Some("daily"), Some("5d")).unwrap();
        assert_eq!(s.keep.files(s.rotation), Some(5));
        let s = load(Some("/l"), Some("daily"), Some("36h")).unwrap();
        assert_eq!(s.keep.files(s.rotation), Some(2), "rounded up");
        let s = load(Some("/l"), Some("hourly"), Some("48")).unwrap();
        assert_eq!(s.keep, LogKeep::Files(48));
        assert_eq!(s.keep.files(s.rotation), Some(48));
        let s = load(Some("/l"), Some("never"), None).unwrap();
        assert_eq!(s.keep.files(s.rotation), None, "one file, nothing to prune");
        for (keep, setting) in [(LogKeep::Files(7), "7"), (DEFAULT_LOG_KEEP, "5d")] {
            assert_eq!(keep.to_setting(), setting);
        }
        assert_eq!(LogKeep::Age(Duration::from_secs(7200)).to_setting(), "2h");
    }

    #[test]
    fn bad_log_settings_name_their_key() {
        for (dir, rotation, keep, expected) in [
            (Some("/l"), Some("weekly"), None, "log rotation"),
            (Some("/l"), None, Some("0"), "log keep"),
            (Some("/l"), None, Some("5y"), "log keep"),
            (Some("/l"), Some("never"), Some("3"), "log keep"),
            (None, Some("daily"), None, "no log directory"),
        ] {
            let err = load(dir, rotation, keep).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let cases = [
            ("plain room", "plain room"),
            ("a\nb", "a\\nb"),
            (
                "a\r\n2026-01-01T00:00:00Z  INFO forged",
                "a\\r\\n2026-01-01T00:00:00Z  INFO forged",
            ),
            ("esc\u{1b}[31m", "esc\\u{1b}[31m"),
            ("back\\slash", "back\\\\slash"),
            ("é ü 東", "é ü 東"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (raw, shown) in cases {
            assert_eq!(Escaped(raw).to_string(), shown, "{raw:?}");
        }
    }
}
