//! Durations (`10s`, `1h30m`, `250ms`, `1d`) and byte sizes (`10KB`, `1.5MiB`)
//! as LogQL reads them: in the query text and in label values compared by a
//! duration or bytes label filter (Loki uses Go's `time.ParseDuration`, plus
//! Prometheus's `d`/`w`/`y`, and go-humanize's `ParseBytes`).

const NS_PER_UNIT: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
    ("d", 86400e9),
    ("w", 7.0 * 86400e9),
    ("y", 365.0 * 86400e9),
];

/// Go's own units (`time.ParseDuration`): no `d`, `w` or `y`.
pub(crate) const GO_UNITS: &[(&str, f64)] = NS_PER_UNIT.split_at(8).0;

/// Why [`sum_duration_ns`] refused a duration.
pub(crate) enum DurationError<'a> {
    /// A number is missing or malformed.
    Number,
    /// A number has no unit.
    MissingUnit,
    UnknownUnit(&'a str),
}

/// Go's duration syntax without a sign: one or more decimal numbers each
/// with a unit from `units` (name, nanoseconds), e.g. `1m30s`. The total in
/// nanoseconds, not range-checked; shared with Jaeger's query parameters.
pub(crate) fn sum_duration_ns<'a>(
    s: &'a str,
    units: &[(&str, f64)],
) -> Result<f64, DurationError<'a>> {
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().map_err(|_| DurationError::Number)?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let per = match units.iter().find(|(u, _)| *u == unit) {
            Some((_, per)) => *per,
            None if unit.is_empty() => return Err(DurationError::MissingUnit),
            None => return Err(DurationError::UnknownUnit(unit)),
        };
        total += value * per;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Parses a duration to nanoseconds; `None` if it is not one. A leading sign
/// is accepted (Go accepts it for label values like `-5s`).
pub(crate) fn parse_duration_ns(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let total = sum_duration_ns(rest, NS_PER_UNIT).ok()?;
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// Parses a byte size the way go-humanize does: a number, optional spaces, an
/// optional unit (SI `kB`/`MB`... are powers of 1000, IEC `KiB`/`MiB`... of
/// 1024), case-insensitive. `None` if it is not one.
pub(crate) fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let num: String = s[..num_len].chars().filter(|c| *c != ',').collect();
    if num.is_empty() {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let unit = s[num_len..].trim_start().to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024.0f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024.0f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024.0f64.powi(6),
        _ => return None,
    };
    Some(value * mult)
}

/// Whether `s` is a byte size as the query lexer accepts it: a number and a
/// unit ending in `b` (so `10m` stays a duration).
pub(crate) fn is_bytes_literal(s: &str) -> bool {
    s.to_ascii_lowercase().ends_with('b')
        && s.starts_with(|c: char| c.is_ascii_digit())
        && parse_bytes(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration_ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("2d"), Some(2 * 86_400_000_000_000));
        assert_eq!(parse_duration_ns("-5s"), Some(-5_000_000_000));
        assert_eq!(parse_duration_ns("0"), Some(0));
        assert_eq!(parse_duration_ns("10"), None);
        assert_eq!(parse_duration_ns("s"), None);
        assert_eq!(parse_duration_ns("10x"), None);
        assert_eq!(parse_duration_ns(""), None);
        assert_eq!(parse_duration_ns("99999999999y"), None);
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("10KB"), Some(10_000.0));
        assert_eq!(parse_bytes("10KiB"), Some(10_240.0));
        assert_eq!(parse_bytes("1.5 MB"), Some(1_500_000.0));
        assert_eq!(parse_bytes("42"), Some(42.0));
        assert_eq!(parse_bytes("3b"), Some(3.0));
        assert_eq!(parse_bytes("xb"), None);
        assert_eq!(parse_bytes("10 parsecs"), None);
        assert!(is_bytes_literal("10KB"));
        assert!(!is_bytes_literal("10m"));
    }
}
