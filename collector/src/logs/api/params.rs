//! Request parameters as Loki reads them: times as integer nanoseconds (or
//! seconds when at most 10 digits), float seconds or RFC 3339; `step` as float
//! seconds or a duration; `direction`, `limit`, and Loki's defaults.

use super::error::LokiError;
use crate::api::params::{Params, parse_duration_ms};

/// Loki's default `limit` for log queries.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's default look-back of a range query without `start`.
pub const DEFAULT_SINCE_NS: i64 = 3600 * 1_000_000_000;
/// Loki's default look-back for `labels`, `label/<name>/values` and `series`.
pub const DEFAULT_METADATA_SINCE_NS: i64 = 6 * 3600 * 1_000_000_000;
/// Loki's (and Prometheus's) bound on points per series.
pub const MAX_POINTS: i64 = 11_000;

pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Loki's `parseTimestamp`: a value with a `.` is float seconds (ms kept);
/// an integer of at most 10 digits is seconds, longer ones nanoseconds;
/// otherwise RFC 3339 (with nanoseconds).
pub fn parse_time_ns(s: &str) -> Option<i64> {
    if s.contains('.')
        && let Ok(f) = s.parse::<f64>()
    {
        let ms = (f * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e15).then(|| ms as i64 * 1_000_000);
    }
    if let Ok(n) = s.parse::<i64>() {
        let digits = s.trim_start_matches(['-', '+']).len();
        return if digits <= 10 {
            n.checked_mul(1_000_000_000)
        } else {
            Some(n)
        };
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

/// Loki's `parseSecondsOrDuration`: float seconds or `5m`/`1h30m`, in ns.
pub fn parse_step_ns(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        return (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64);
    }
    parse_duration_ms(s)?.checked_mul(1_000_000)
}

/// Loki's default step: the range over 250 points, whole seconds, at least 1s.
pub fn default_step_ns(start_ns: i64, end_ns: i64) -> i64 {
    let secs = (end_ns.saturating_sub(start_ns) / 1_000_000_000) / 250;
    secs.max(1) * 1_000_000_000
}

/// A time parameter; `default` when absent or empty.
pub fn time(p: &Params, name: &str, default: i64) -> Result<i64, LokiError> {
    match p.get(name).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => parse_time_ns(s).ok_or_else(|| {
            LokiError::bad_request(format!(
                "invalid {name} parameter {s:?}: want Unix nanoseconds, float seconds or RFC 3339"
            ))
        }),
    }
}

/// A duration parameter (`since`, `step`) in ns, if present.
pub fn duration(p: &Params, name: &str) -> Result<Option<i64>, LokiError> {
    match p.get(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_step_ns(s).map(Some).ok_or_else(|| {
            LokiError::bad_request(format!(
                "invalid {name} parameter {s:?}: want seconds or a duration like 5m"
            ))
        }),
    }
}

/// `limit`: default 100 (or `max` if lower); must be positive and at most `max` (`--logs-max-lines`,
/// Loki's max_entries_limit_per_query), else 400 as Loki answers.
pub fn limit(p: &Params, max: usize) -> Result<usize, LokiError> {
    let n = match p.get("limit").filter(|s| !s.is_empty()) {
        // A --logs-max-lines below Loki's default caps the default too.
        None => DEFAULT_LIMIT.min(max),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Ok(_) => return Err(LokiError::bad_request("limit must be a positive value")),
            Err(_) => {
                return Err(LokiError::bad_request(format!(
                    "invalid limit parameter {s:?}: not an integer"
                )));
            }
        },
    };
    if n > max {
        return Err(LokiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({n} > {max})"
        )));
    }
    Ok(n)
}

/// `direction`: `backward` (default) or `forward`, any case.
pub fn direction(p: &Params) -> Result<crate::logs::model::Direction, LokiError> {
    use crate::logs::model::Direction;
    match p
        .get("direction")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(other) => Err(LokiError::bad_request(format!(
            "invalid direction {other:?}: want forward or backward"
        ))),
    }
}

/// `[start, end]` for metadata endpoints and range queries: `end` defaults to
/// now, `start` to `end - since` (`since` defaulting to `default_since`).
pub fn bounds(p: &Params, default_since: i64) -> Result<(i64, i64), LokiError> {
    let end = time(p, "end", now_ns())?;
    let since = duration(p, "since")?.unwrap_or(default_since);
    let start = time(p, "start", end.saturating_sub(since))?;
    if end < start {
        return Err(LokiError::bad_request(
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_loki_reads_them() {
        assert_eq!(parse_time_ns("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(
            parse_time_ns("1700000000123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_time_ns("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20.000000001Z"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(parse_time_ns("tomorrow"), None);
        assert_eq!(parse_time_ns(""), None);
    }

    #[test]
    fn steps_and_default_step() {
        assert_eq!(parse_step_ns("15"), Some(15_000_000_000));
        assert_eq!(parse_step_ns("0.5"), Some(500_000_000));
        assert_eq!(parse_step_ns("1m"), Some(60_000_000_000));
        assert_eq!(parse_step_ns("soon"), None);
        assert_eq!(default_step_ns(0, 3600 * 1_000_000_000), 14_000_000_000);
        assert_eq!(default_step_ns(0, 60 * 1_000_000_000), 1_000_000_000);
    }
}
