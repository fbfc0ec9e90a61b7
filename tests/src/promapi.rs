//! A client for the Prometheus HTTP query API (`/api/v1/query`, `/api/v1/query_range`),
//! the same for Sonde's collector and the real peers, and a comparison of two answers
//! within a float tolerance that says what differs.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use serde_json::Value as Json;

pub type Labels = BTreeMap<String, String>;

/// A query result, as the API's `resultType` says.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    Vector(Vec<(Labels, (f64, f64))>),
    Matrix(Vec<(Labels, Vec<(f64, f64)>)>),
    Scalar((f64, f64)),
    String((f64, String)),
}

impl QueryValue {
    pub fn kind(&self) -> &'static str {
        match self {
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
            QueryValue::Scalar(_) => "scalar",
            QueryValue::String(_) => "string",
        }
    }

    /// The series of a vector or matrix (points of a vector as one-point series), sorted by labels.
    pub fn series(&self) -> Vec<(Labels, Vec<(f64, f64)>)> {
        let mut out: Vec<(Labels, Vec<(f64, f64)>)> = match self {
            QueryValue::Vector(v) => v.iter().map(|(l, p)| (l.clone(), vec![*p])).collect(),
            QueryValue::Matrix(m) => m.clone(),
            QueryValue::Scalar(p) => vec![(Labels::new(), vec![*p])],
            QueryValue::String(_) => vec![],
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// An API answer that was not `success`: HTTP status, `errorType` and `error`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub error_type: String,
    pub error: String,
}

/// A query client for one server, e.g. `http://127.0.0.1:9090`.
#[derive(Clone)]
pub struct PromApi {
    pub base: String,
    agent: ureq::Agent,
}

impl PromApi {
    pub fn new(base: &str) -> PromApi {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        PromApi {
            base: base.trim_end_matches('/').to_string(),
            agent: config.into(),
        }
    }

    /// The HTTP client, for requests this type has no method for.
    pub fn http(&self) -> &ureq::Agent {
        &self.agent
    }

    /// `GET path` with query parameters; the body as JSON, and the status.
    pub fn get_json(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, Json), String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| format!("reading {url}: {e}"))?;
        let json = serde_json::from_str(&body)
            .map_err(|e| format!("GET {url} ({status}): not JSON ({e}): {body:.300}"))?;
        Ok((status, json))
    }

    /// An instant query at `time` (unix seconds).
    pub fn instant(&self, query: &str, time: f64) -> Result<QueryValue, ApiError> {
        self.query(
            "/api/v1/query",
            &[("query", query), ("time", &fmt_time(time))],
        )
    }

    /// A range query over `[start, end]` with `step` seconds.
    pub fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<QueryValue, ApiError> {
        let (start, end, step) = (fmt_time(start), fmt_time(end), fmt_time(step));
        self.query(
            "/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start),
                ("end", &end),
                ("step", &step),
            ],
        )
    }

    fn query(&self, path: &str, params: &[(&str, &str)]) -> Result<QueryValue, ApiError> {
        let transport = |error: String| ApiError {
            status: 0,
            error_type: "transport".into(),
            error,
        };
        let (status, json) = self.get_json(path, params).map_err(transport)?;
        if json["status"] != "success" {
            return Err(ApiError {
                status,
                error_type: json["errorType"].as_str().unwrap_or("").to_string(),
                error: json["error"].as_str().unwrap_or("").to_string(),
            });
        }
        parse_data(&json["data"]).map_err(|e| ApiError {
            status,
            error_type: "client".into(),
            error: e,
        })
    }
}

/// Seconds as the API takes them, exact to the millisecond.
pub fn fmt_time(t: f64) -> String {
    format!("{:.3}", t)
}

fn parse_data(data: &Json) -> Result<QueryValue, String> {
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let items = result.as_array().ok_or("vector result is not an array")?;
            items
                .iter()
                .map(|s| Ok((labels(&s["metric"])?, point(&s["value"])?)))
                .collect::<Result<_, String>>()
                .map(QueryValue::Vector)
        }
        Some("matrix") => {
            let items = result.as_array().ok_or("matrix result is not an array")?;
            items
                .iter()
                .map(|s| {
                    let values = s["values"]
                        .as_array()
                        .ok_or("matrix series without values")?;
                    Ok((
                        labels(&s["metric"])?,
                        values.iter().map(point).collect::<Result<_, _>>()?,
                    ))
                })
                .collect::<Result<_, String>>()
                .map(QueryValue::Matrix)
        }
        Some("scalar") => Ok(QueryValue::Scalar(point(result)?)),
        Some("string") => {
            let t = result[0].as_f64().ok_or("string result without time")?;
            Ok(QueryValue::String((
                t,
                result[1].as_str().unwrap_or("").to_string(),
            )))
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

fn labels(metric: &Json) -> Result<Labels, String> {
    let obj = metric.as_object().ok_or("metric is not an object")?;
    Ok(obj
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect())
}

fn point(p: &Json) -> Result<(f64, f64), String> {
    let t = p[0]
        .as_f64()
        .ok_or_else(|| format!("point without a time: {p}"))?;
    let v = p[1]
        .as_str()
        .ok_or_else(|| format!("point without a string value: {p}"))?;
    Ok((t, parse_float(v)?))
}

fn parse_float(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        v => v.parse().map_err(|e| format!("value {v:?}: {e}")),
    }
}

/// Whether two sample values agree: equal, both NaN, or within `rel` of the larger
/// magnitude (plus a tiny absolute slack for values near zero).
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-12 + rel * a.abs().max(b.abs())
}

fn fmt_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Compares `got` with `want` (result type, label sets, timestamps, values within `rel`);
/// `None` if they agree, else a readable diff naming `got_name` and `want_name`.
pub fn diff(
    want_name: &str,
    want: &QueryValue,
    got_name: &str,
    got: &QueryValue,
    rel: f64,
) -> Option<String> {
    let mut out = String::new();
    if want.kind() != got.kind() {
        let _ = writeln!(
            out,
            "result type: {want_name} {} vs {got_name} {}",
            want.kind(),
            got.kind()
        );
        return Some(out);
    }
    if let (QueryValue::String(a), QueryValue::String(b)) = (want, got) {
        return (a != b).then(|| format!("string: {want_name} {a:?} vs {got_name} {b:?}\n"));
    }
    let (w, g) = (want.series(), got.series());
    let (wl, gl): (Vec<&Labels>, Vec<&Labels>) = (
        w.iter().map(|s| &s.0).collect(),
        g.iter().map(|s| &s.0).collect(),
    );
    for l in wl.iter().filter(|l| !gl.contains(l)) {
        let _ = writeln!(out, "only in {want_name}: {}", fmt_labels(l));
    }
    for l in gl.iter().filter(|l| !wl.contains(l)) {
        let _ = writeln!(out, "only in {got_name}: {}", fmt_labels(l));
    }
    for (labels, wp) in &w {
        let Some((_, gp)) = g.iter().find(|(l, _)| l == labels) else {
            continue;
        };
        if wp.len() != gp.len() {
            let _ = writeln!(
                out,
                "{}: {} points in {want_name}, {} in {got_name}",
                fmt_labels(labels),
                wp.len(),
                gp.len()
            );
        }
        let mut shown = 0;
        for ((wt, wv), (gt, gv)) in wp.iter().zip(gp) {
            if (wt - gt).abs() > 1e-6 || !close(*wv, *gv, rel) {
                if shown < 5 {
                    let _ = writeln!(
                        out,
                        "{} at {wt}: {want_name} {wv} vs {got_name} {gv} (t {gt})",
                        fmt_labels(labels)
                    );
                }
                shown += 1;
            }
        }
        if shown > 5 {
            let _ = writeln!(
                out,
                "{}: ... {} differing points in all",
                fmt_labels(labels),
                shown
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_results() {
        let json: Json = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[10.5,"2"]},{"metric":{"a":"2"},"value":[10.5,"NaN"]}]}"#,
        )
        .unwrap();
        let a = parse_data(&json).unwrap();
        assert_eq!(a.kind(), "vector");
        assert!(diff("x", &a, "y", &a, 1e-9).is_none());
        let json: Json = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[10.5,"2.0000001"]},{"metric":{"a":"3"},"value":[10.5,"1"]}]}"#,
        )
        .unwrap();
        let b = parse_data(&json).unwrap();
        let d = diff("x", &a, "y", &b, 1e-9).unwrap();
        assert!(
            d.contains("only in x: {a=\"2\"}")
                && d.contains("only in y: {a=\"3\"}")
                && d.contains("2.0000001"),
            "{d}"
        );
        assert!(diff("x", &a, "y", &b, 1e-6).is_some_and(|d| !d.contains("2.0000001")));
        let s = parse_data(
            &serde_json::from_str(r#"{"resultType":"scalar","result":[1,"+Inf"]}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(s, QueryValue::Scalar((1.0, f64::INFINITY)));
        assert!(
            diff("x", &s, "y", &a, 1e-9)
                .unwrap()
                .contains("result type")
        );
    }
}
