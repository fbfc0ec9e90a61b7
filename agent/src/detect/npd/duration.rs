//! Go's `time.ParseDuration`, which NPD configs use (`"5m"`, `"1h30m"`,
//! `"1.5s"`, `"0"`). Hand-written because humantime's grammar differs (it wants
//! no fractions and accepts units Go rejects); negative durations are refused,
//! since no NPD setting means anything with one.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (Go syntax, e.g. \"30s\", \"5m\", \"1h30m\")");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if let Some(neg) = rest.strip_prefix('-') {
        return if !neg.is_empty() && neg.chars().all(|c| c == '0') {
            Ok(Duration::ZERO)
        } else {
            Err(format!("negative duration {s:?}"))
        };
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    // Go's limit is ~292 years; anything near it is a typo.
    if !total.is_finite() || total > 9.2e18 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let secs = |s| parse(s).map(|d| d.as_secs_f64());
        assert_eq!(secs("5m"), Ok(300.0));
        assert_eq!(secs("1h30m"), Ok(5400.0));
        assert_eq!(secs("1.5s"), Ok(1.5));
        assert_eq!(secs("0"), Ok(0.0));
        assert_eq!(secs("300ms"), Ok(0.3));
        assert_eq!(secs("+20m"), Ok(1200.0));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        for bad in ["", "5", "m", "5x", "1..5s", "-5m", "5m3", ".s", "1e3s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
