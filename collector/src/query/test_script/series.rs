//! The test scripts' series notation: `name{l="v", ...} values`, where values
//! are `a`, `axN` (N+1 copies), `a+bxN`/`a-bxN` (N+1 points stepping by b),
//! `_` / `_xN` (missing points) and `stale` (a staleness marker); plus
//! Prometheus duration strings.

use crate::model::{Labels, METRIC_NAME, stale_nan};

/// One point of a loaded sequence: `None` is a missing point (`_`).
pub(crate) type SeqValue = Option<f64>;

/// Parses `name{labels} values...` into labels and the expanded values.
pub(crate) fn parse_series(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (labels, rest) = parse_metric(line)?;
    let mut values = Vec::new();
    for item in rest.split_whitespace() {
        expand_item(item, &mut values)?;
    }
    Ok((labels, values))
}

/// Parses `name{labels}` (either part optional) and returns the rest.
pub(crate) fn parse_metric(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let name_len = line
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(line.len(), |(i, _)| i);
    let mut pairs = Vec::new();
    if name_len > 0 {
        pairs.push((METRIC_NAME.to_string(), line[..name_len].to_string()));
    }
    let mut rest = line[name_len..].trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if n == 0 {
                return Err(format!("expected a label name at {rest:?}"));
            }
            let label = rest[..n].to_string();
            rest = rest[n..].trim_start();
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| format!("expected '=' after label {label}"))?
                .trim_start();
            let (value, after) = parse_quoted(rest)?;
            pairs.push((label, value));
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    } else if name_len == 0 {
        return Err(format!("expected a metric name or '{{' at {line:?}"));
    }
    Ok((Labels::new(pairs), rest))
}

/// A quoted label value (`"..."`, `'...'` with Go escapes, or raw `` `...` ``).
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().ok_or("expected a quoted label value")?;
    if !matches!(quote, '"' | '\'' | '`') {
        return Err(format!("expected a quoted label value at {s:?}"));
    }
    let body = &s[1..];
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '`' {
            escaped = true;
        } else if c == quote {
            let raw = &body[..i];
            let value = if quote == '`' {
                raw.to_string()
            } else {
                crate::query::syntax::unescape(raw)?
            };
            return Ok((value, &body[i + 1..]));
        }
    }
    Err(format!("unterminated label value {s:?}"))
}

fn expand_item(item: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    let bad = || format!("invalid sequence item {item:?}");
    if let Some(rest) = item.strip_prefix('_') {
        if rest.is_empty() {
            out.push(None);
            return Ok(());
        }
        let n: usize = rest
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(Some(stale_nan()));
        return Ok(());
    }
    let (start, rest) = scan_number(item).ok_or_else(bad)?;
    if rest.is_empty() {
        out.push(Some(start));
        return Ok(());
    }
    let (delta, times) = if let Some(times) = rest.strip_prefix('x') {
        (0.0, times)
    } else {
        let (delta, rest) = scan_number(rest).ok_or_else(bad)?;
        (delta, rest.strip_prefix('x').ok_or_else(bad)?)
    };
    if !rest.starts_with(['+', '-', 'x']) {
        return Err(bad());
    }
    let n: usize = times.parse().map_err(|_| bad())?;
    let mut v = start;
    out.push(Some(v));
    for _ in 0..n {
        v += delta;
        out.push(Some(v));
    }
    Ok(())
}

/// Scans a leading float (`1`, `-2.5e3`, `.5`, `Inf`, `-NaN`): value and rest.
pub(crate) fn scan_number(s: &str) -> Option<(f64, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let lower = s[i..].to_ascii_lowercase();
    for word in ["inf", "nan"] {
        if lower.starts_with(word) {
            let end = i + 3;
            let v = if word == "nan" {
                f64::NAN
            } else if bytes[0] == b'-' {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            return Some((v, &s[end..]));
        }
    }
    let digits_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    s[..i].parse().ok().map(|v| (v, &s[i..]))
}

/// Prometheus duration syntax (`1h30m`, `5m`, `10s`, `1ms`, `0`) in ms.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let units: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let value: i64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let idx = units.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        // Units must come largest first, each at most once.
        if idx < last_unit || (total > 0 && idx == last_unit) {
            return Err(bad());
        }
        last_unit = idx;
        total = value
            .checked_mul(units[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    #[test]
    fn expands_sequences() {
        let (l, v) =
            parse_series(r#"m{a="x", b='y\n'} 0+10x2 1-1x1 _ _x2 stale 5x2 -Inf"#).unwrap();
        assert_eq!(l.to_string(), "m{a=\"x\", b=\"y\\n\"}");
        let shown: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        assert_eq!(
            &shown[..8],
            [
                "Some(0.0)",
                "Some(10.0)",
                "Some(20.0)",
                "Some(1.0)",
                "Some(0.0)",
                "None",
                "None",
                "None"
            ]
        );
        assert!(is_stale_nan(v[8].unwrap()));
        assert_eq!(
            &v[9..],
            [Some(5.0), Some(5.0), Some(5.0), Some(f64::NEG_INFINITY)]
        );
    }

    #[test]
    fn parses_bare_label_sets_and_rejects_garbage() {
        let (l, rest) = parse_metric(r#"{job="1"} -10"#).unwrap();
        assert_eq!(l.to_string(), r#"{job="1"}"#);
        assert_eq!(rest.trim(), "-10");
        assert!(parse_series("m{a=x} 1").is_err());
        assert!(parse_series("m 1+x").is_err());
        assert!(parse_series("m{a=\"x} 1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("8000s").unwrap(), 8_000_000);
        assert_eq!(parse_duration("1ms").unwrap(), 1);
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("5m1h").is_err());
    }
}
