//! Query parameters as Jaeger's query service reads them: Go durations
//! (`1.2s`, `100ms`), microsecond timestamps, tags as JSON (`{"k":"v"}`,
//! what Grafana and Jaeger UI send), logfmt (`k=v k2="a b"`, what users type)
//! or repeated `tag=k:v`.

use std::collections::HashMap;

use super::error::ApiError;
use crate::logs::logql::units::{DurationError, GO_UNITS, sum_duration_ns};

/// Repeated keys kept (Jaeger takes `traceID` and `tag` more than once).
pub struct Params(HashMap<String, Vec<String>>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Params(m)
    }

    /// The first non-empty value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .get(k)
            .and_then(|v| v.iter().find(|s| !s.is_empty()))
            .map(|s| s.as_str())
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], |v| v.as_slice())
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|s| {
                s.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "unable to parse param '{k}': {s:?} is not an integer"
                    ))
                })
            })
            .transpose()
    }

    pub fn duration_ns(&self, k: &str) -> Result<Option<u64>, ApiError> {
        self.get(k)
            .map(|s| {
                parse_duration_ns(s)
                    .map_err(|e| ApiError::bad_request(format!("unable to parse param '{k}': {e}")))
            })
            .transpose()
    }
}

/// A Go duration: one or more decimal numbers each with a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), e.g. `1.5s`, `1m30s`. Negative is refused.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t == "0" {
        return Ok(0);
    }
    let total = sum_duration_ns(t, GO_UNITS).map_err(|e| match e {
        DurationError::Number => format!("invalid duration {s:?} (want e.g. 100ms, 1.2s, 1m)"),
        DurationError::MissingUnit => {
            format!("missing unit in duration {s:?} (want e.g. 100ms, 1.2s)")
        }
        DurationError::UnknownUnit(u) => format!("unknown unit {u:?} in duration {s:?}"),
    })?;
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(total.round() as u64)
}

/// `tags=` as JSON object or logfmt, plus `tag=k:v` params.
pub fn tags(p: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for t in p.all("tags").iter().filter(|t| !t.trim().is_empty()) {
        let t = t.trim();
        if t.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(t)
                .map_err(|e| ApiError::bad_request(format!("malformed 'tags' parameter: {e}")))?;
            let obj = v.as_object().ok_or_else(|| {
                ApiError::bad_request("malformed 'tags' parameter: want a JSON object")
            })?;
            for (k, v) in obj {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push((k.clone(), v));
            }
        } else {
            out.extend(
                logfmt(t).map_err(|e| {
                    ApiError::bad_request(format!("malformed 'tags' parameter: {e}"))
                })?,
            );
        }
    }
    for t in p.all("tag") {
        let (k, v) = t.split_once(':').ok_or_else(|| {
            ApiError::bad_request(format!("malformed 'tag' parameter {t:?}: want key:value"))
        })?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `k=v k2="quoted value"` pairs.
fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!("{s:?}: want key=value pairs"));
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("{s:?}: unterminated quote")),
                    Some('"') => break,
                    Some('\\') => val.extend(chars.next()),
                    Some(c) => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key, val));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_ns("1.2s"), Ok(1_200_000_000));
        assert_eq!(parse_duration_ns("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration_ns("250us"), Ok(250_000));
        assert_eq!(parse_duration_ns("250µs"), Ok(250_000));
        assert_eq!(parse_duration_ns("0"), Ok(0));
        for bad in ["", "10", "1x", "-1s", "ms"] {
            assert!(parse_duration_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_as_json_logfmt_and_tag_params() {
        let p = Params::parse(Some(
            "tags=%7B%22http.status_code%22%3A%22500%22%2C%22error%22%3Atrue%7D&tag=a:b",
        ));
        let mut t = tags(&p).unwrap();
        t.sort();
        assert_eq!(
            t,
            vec![
                ("a".into(), "b".into()),
                ("error".into(), "true".into()),
                ("http.status_code".into(), "500".into())
            ]
        );
        let p = Params::parse(Some("tags=k%3Dv+q%3D%22a+b%22"));
        assert_eq!(
            tags(&p).unwrap(),
            vec![("k".into(), "v".into()), ("q".into(), "a b".into())]
        );
        for bad in [
            "tags=%7Bnope",
            "tags=novalue",
            "tag=nocolon",
            "tags=%5B1%5D",
        ] {
            assert!(tags(&Params::parse(Some(bad))).is_err(), "{bad}");
        }
    }
}
