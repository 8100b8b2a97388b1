//! Parsing of the two unit syntaxes the flags and the query API use, with Prometheus' semantics:
//!
//! - Durations: Prometheus' `model.ParseDuration` syntax, `[0-9]+(ms|s|m|h|d|w|y)` units
//!   concatenated from the largest to the smallest (`1h30m`, `15d`, `500ms`); `y` is 365 days,
//!   `w` is 7 days. The query API additionally accepts float seconds (`1.5`), see
//!   [`parse_duration_or_seconds`].
//! - Byte sizes: `units.ParseBase2Bytes` as Prometheus' `--storage.tsdb.retention.size` uses it:
//!   an integer with `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB`, `PB`/`PiB`, `EB`/`EiB`,
//!   all powers of 1024 (so `512MB` is 512 × 2^20 bytes); a bare `0` means "off".

use std::time::Duration;

/// Why a duration or size string was refused; the message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

/// Parses a Prometheus duration (`15d`, `1h30m`, `0s`).
///
/// # Errors
/// [`UnitError`] for an empty string, an unknown unit, units out of order or an overflow.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let bad = |why: &str| UnitError(format!("invalid duration {s:?}: {why}"));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("empty"));
    }
    // Units in the only order model.ParseDuration accepts, with their length in ms.
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let i = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(|| bad("unknown or out-of-order unit (use y, w, d, h, m, s, ms in this order)"))?;
        let ms = UNITS[next_unit + i].1;
        next_unit += i + 1;
        total_ms = n
            .checked_mul(ms)
            .and_then(|v| total_ms.checked_add(v))
            .filter(|v| *v <= i64::MAX as u64)
            .ok_or_else(|| bad("overflows int64 milliseconds"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a query-API duration: a Prometheus duration or a float number of seconds (`"5m"`,
/// `"300"`, `"0.5"`), as Prometheus' `parseDuration` in `web/api/v1/api.go`.
///
/// # Errors
/// [`UnitError`] for anything else, negative or non-finite seconds, or more than `i64::MAX` ms.
pub fn parse_duration_or_seconds(s: &str) -> Result<Duration, UnitError> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms < 0.0 || ms >= i64::MAX as f64 {
            return Err(UnitError(format!("cannot parse {s:?} to a valid duration. It overflows int64")));
        }
        return Ok(Duration::from_millis(ms.round() as u64));
    }
    promql_parser::util::parse_duration(s)
        .map_err(|_| UnitError(format!("cannot parse {s:?} to a valid duration")))
}

/// Parses a base-2 byte size (`512MB`, `10GiB`, `0`). Returns bytes.
///
/// # Errors
/// [`UnitError`] for a missing number, an unknown unit or an overflow.
pub fn parse_bytes(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(UnitError(format!("invalid size {s:?}: missing number")));
    }
    let n: u64 = num.parse().map_err(|_| UnitError(format!("invalid size {s:?}: number too large")))?;
    let shift = match unit {
        "" if n == 0 => 0,
        "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "EB" | "EiB" => 60,
        _ => return Err(UnitError(format!("invalid size {s:?}: unit must be one of B, KB, MB, GB, TB, PB, EB"))),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| UnitError(format!("invalid size {s:?}: overflows 64 bits")))
}

/// Formats a duration the way Prometheus prints one (`15d`, `1h30m`, `0s`).
pub fn format_duration(d: Duration) -> String {
    promql_parser::util::display_duration(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_prometheus_syntax() {
        assert_eq!(parse_duration("15d").unwrap(), Duration::from_secs(15 * 86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1y").unwrap(), Duration::from_secs(365 * 86400));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("1h1h").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1d2h3m4s5ms").unwrap(), Duration::from_millis(93_784_005));
    }

    #[test]
    fn query_durations_accept_float_seconds() {
        assert_eq!(parse_duration_or_seconds("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration_or_seconds("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration_or_seconds("-1").is_err());
        assert!(parse_duration_or_seconds("NaN").is_err());
        assert!(parse_duration_or_seconds("1e300").is_err());
    }

    #[test]
    fn sizes_are_base_two() {
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert_eq!(parse_bytes("7B").unwrap(), 7);
        assert!(parse_bytes("12").is_err());
        assert!(parse_bytes("MB").is_err());
        assert!(parse_bytes("1ZB").is_err());
        assert!(parse_bytes("20EB").is_err());
    }

    #[test]
    fn duration_round_trips_through_display() {
        assert_eq!(format_duration(Duration::from_secs(15 * 86400)), "15d");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
