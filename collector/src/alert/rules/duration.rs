//! Durations in rule files (`interval`, `for`, `keep_firing_for`).
//!
//! Prometheus's `model.ParseDuration`: units `y w d h m s ms`, descending,
//! each at most once; `0` alone is allowed; no float seconds (unlike the
//! HTTP API's durations), and the total must fit Go's int64 nanoseconds.
//! The unit walk is the API's `parse_duration_ms`; this adds the stricter
//! edges.

use std::time::Duration;

use crate::api::params::parse_duration_ms;

/// Go's `time.Duration` limit, in ms (about 292 years).
const MAX_MS: i64 = i64::MAX / 1_000_000;

pub fn parse(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    // The API parser also takes bare (float) seconds; rule files do not.
    let has_unit = s.ends_with(|c: char| c.is_ascii_alphabetic());
    let ms = parse_duration_ms(s)
        .filter(|_| has_unit)
        .ok_or_else(|| format!("not a valid duration string: {s:?}"))?;
    if ms > MAX_MS {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prometheus_forms() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("2w1d"), Ok(Duration::from_secs(15 * 86_400)));
        assert_eq!(parse("292y"), Ok(Duration::from_secs(292 * 365 * 86_400)));
    }

    #[test]
    fn rejects_what_promtool_rejects() {
        for bad in [
            "", "5", "1.5", "1.5m", "-1m", "30m1h", "1h1h", "5x", "m", "300y", "1e3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
