//! Structured logs with `tracing`: logfmt (`ts=... level=info target=... msg="..." k=v`, the
//! shape of Prometheus' go-kit logs) or one JSON object per line, to stderr.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. A second call (tests) is a no-op.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
}

/// The logfmt event formatter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let meta = event.metadata();
        write!(w, "ts={} level={} target={}", rfc3339_millis(now), meta.level().as_str().to_ascii_lowercase(), meta.target())?;
        let mut v = LogfmtVisitor { out: String::new(), msg: None };
        event.record(&mut v);
        if let Some(m) = v.msg {
            write!(w, " msg={}", quote(&m))?;
        }
        writeln!(w, "{}", v.out)
    }
}

struct LogfmtVisitor {
    out: String,
    msg: Option<String>,
}

impl Visit for LogfmtVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = Some(value.to_string());
        } else {
            let _ = write!(self.out, " {}={}", field.name(), quote(value));
        }
    }
}

/// Quotes a logfmt value when it holds a space, `=`, a quote or is empty.
fn quote(s: &str) -> String {
    if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '=' || c == '"' || c.is_control()) {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

/// `2006-01-02T15:04:05.000Z` for a time since the epoch (UTC, civil-from-days algorithm).
pub fn rfc3339_millis(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_quoting() {
        assert_eq!(rfc3339_millis(std::time::Duration::from_millis(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(std::time::Duration::from_millis(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote(""), "\"\"");
    }
}
