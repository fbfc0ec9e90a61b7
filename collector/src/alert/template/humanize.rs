//! Prometheus 2.42's humanize* template functions (template/template.go).

use super::format::fmt_float;
use super::value::time_string;

fn g4(v: f64) -> String {
    fmt_float(v, 'g', Some(4))
}

/// SI prefixes: 1234567 -> "1.235M", 0.000123 -> "123u".
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Binary prefixes: 1024 -> "1ki".
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// Seconds as "1d 1h 0m 0s", "1m 30s", "1.5s", "500ms".
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go's int64(v): truncation, saturating like amd64's conversion would not matter here.
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", g4(v * 100.0))
}

/// Seconds since the epoch to nanoseconds, as Prometheus's floatToTime:
/// the result is truncated to milliseconds (model.Time).
pub fn to_time(v: f64) -> Result<i128, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            fmt_float(v, 'g', None)
        ));
    }
    let ns = ns as i64;
    // model.TimeFromUnixNano divides by 1e6 (toward zero), Time() multiplies back.
    Ok(i128::from(ns / 1_000_000) * 1_000_000)
}

pub fn humanize_timestamp(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Ok(g4(v));
    }
    Ok(time_string(to_time(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_cases() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.000123), "123u");
        assert_eq!(humanize(-1500.0), "-1.5k");
        assert_eq!(humanize(f64::NAN), "NaN");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(0.5), "0.5");
        assert_eq!(humanize_duration(0.5), "500ms");
        assert_eq!(humanize_duration(90.0), "1m 30s");
        assert_eq!(humanize_duration(90000.0), "1d 1h 0m 0s");
        assert_eq!(humanize_duration(-3.25), "-3.25s");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(
            humanize_timestamp(1.5).unwrap(),
            "1970-01-01 00:00:01.5 +0000 UTC"
        );
        assert!(
            humanize_timestamp(1e20)
                .unwrap_err()
                .contains("1e+20 cannot be represented")
        );
    }
}
