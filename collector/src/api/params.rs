//! Request parameters as Prometheus reads them: the URL query plus, for a
//! form-encoded POST, the body (`match[]` may repeat); times as RFC 3339 or
//! float Unix seconds; durations as `5m`/`1h30m` or float seconds.

use axum::{
    extract::Request,
    http::{Method, header},
};

use super::error::ApiError;
use crate::model::{MatchOp, Matcher};

/// The largest body a query request may carry (queries and selectors only).
const MAX_FORM_BYTES: usize = 4 << 20;

pub struct Params(Vec<(String, String)>);

impl Params {
    pub async fn from_request(req: Request) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = match req.uri().query() {
            Some(q) => form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            None => Vec::new(),
        };
        if req.method() == Method::POST {
            let ctype = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|_| {
                    ApiError::bad_data(format!("request body larger than {MAX_FORM_BYTES} bytes"))
                })?;
            if !body.is_empty() {
                if !ctype.starts_with("application/x-www-form-urlencoded") {
                    return Err(ApiError::bad_data(format!(
                        "unsupported Content-Type {ctype:?}: send application/x-www-form-urlencoded"
                    )));
                }
                pairs.extend(form_urlencoded::parse(&body).into_owned());
            }
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter in ms; `default` when absent or empty.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => parse_time(s).ok_or_else(|| {
                ApiError::bad_param(name, format!("cannot parse {s:?} to a valid timestamp"))
            }),
        }
    }

    /// A duration parameter in ms, if present.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_duration_ms(s).map(Some).ok_or_else(|| {
                ApiError::bad_param(name, format!("cannot parse {s:?} to a valid duration"))
            }),
        }
    }

    /// The `match[]` selectors as matcher sets (each `{a="b" or c="d"}` alternative is its own set).
    pub fn matcher_sets(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let mut sets = Vec::new();
        for s in self.all("match[]") {
            sets.extend(parse_selector(s).map_err(|e| ApiError::bad_param("match[]", e))?);
        }
        Ok(sets)
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Prometheus's `parseTime`: float Unix seconds (ms precision) or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Prometheus's `parseDuration`: float seconds, or units `y w d h m s ms`
/// in descending order (`1h30m`).
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return None;
    }
    let (mut rest, mut total, mut last) = (s, 0i64, None::<usize>);
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" before "m", so that the minute unit does not take its first letter.
        let idx = if rest.starts_with("ms") {
            6
        } else {
            UNITS[..6].iter().position(|(u, _)| rest.starts_with(u))?
        };
        if last.is_some_and(|l| idx <= l) {
            return None; // units must descend, as in Prometheus
        }
        last = Some(idx);
        rest = &rest[UNITS[idx].0.len()..];
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

/// A `match[]` selector: a PromQL vector selector without offset or `@`.
fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = promql_parser::parser::parse(s)?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    let convert = |m: &promql_parser::label::Matcher| -> Result<Matcher, String> {
        let op = match m.op {
            promql_parser::label::MatchOp::Equal => MatchOp::Equal,
            promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
            promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
            promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        Matcher::new(op, m.name.clone(), m.value.clone())
            .map_err(|e| format!("bad regex {:?}: {e}", m.value))
    };
    let name = vs
        .name
        .as_ref()
        .map(|n| Matcher::equal(crate::model::METRIC_NAME, n.clone()));
    let mut groups: Vec<Vec<&promql_parser::label::Matcher>> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        groups.push(vs.matchers.matchers.iter().collect());
    } else {
        for g in &vs.matchers.or_matchers {
            groups.push(g.iter().chain(vs.matchers.matchers.iter()).collect());
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let mut set: Vec<Matcher> = g.into_iter().map(convert).collect::<Result<_, _>>()?;
            if let Some(n) = &name
                && !set.iter().any(|m| m.name == crate::model::METRIC_NAME && m.op == MatchOp::Equal)
            {
                set.push(n.clone());
            }
            if set.iter().all(|m| m.matches_empty()) {
                return Err(format!("{s:?}: a selector needs at least one matcher that does not match the empty string"));
            }
            Ok(set)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Some(1_435_781_451_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Some(1_435_781_451_781)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("100ms"), Some(100));
        assert_eq!(parse_duration_ms("1m500ms"), Some(60_500));
        assert_eq!(parse_duration_ms("30m1h"), None);
        assert_eq!(parse_duration_ms("5x"), None);
        assert_eq!(parse_duration_ms(""), None);
    }

    #[test]
    fn selectors() {
        let sets = parse_selector(r#"up{job=~"a|b"}"#).unwrap();
        assert_eq!(sets.len(), 1);
        assert!(
            sets[0]
                .iter()
                .any(|m| m.name == "__name__" && m.value == "up")
        );
        assert!(parse_selector("rate(up[5m])").is_err());
        assert!(parse_selector(r#"{job=""}"#).is_err());
    }
}
