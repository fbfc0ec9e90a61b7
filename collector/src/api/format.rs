//! Prometheus's JSON encoding of query results: timestamps as float seconds,
//! values as strings ("NaN", "+Inf", "-Inf", else the shortest decimal that
//! round-trips, without an exponent, like Go's `FormatFloat(v, 'f', -1, 64)`).

use std::io::Write;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value as Json, json};

use crate::{model::Labels, query::Value};

pub fn labels(l: &Labels) -> Json {
    let m: Map<String, Json> = l
        .iter()
        .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
        .collect();
    Json::Object(m)
}

/// The whole success answer of `/api/v1/query` and `/api/v1/query_range`,
/// written straight into one buffer: building a `serde_json::Value` tree first
/// and serialising it took 11-14 ms of a 92-series range answer.
pub fn query_answer(v: &Value) -> Response {
    let mut out = Vec::with_capacity(answer_size_hint(v));
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.extend_from_slice(v.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    match v {
        Value::Scalar { t, v } => write_point(&mut out, *t, *v),
        Value::String { t, v } => {
            out.push(b'[');
            write_timestamp(&mut out, *t);
            out.push(b',');
            write_str(&mut out, v);
            out.push(b']');
        }
        Value::Vector(items) => write_list(&mut out, items, |out, s| {
            out.extend_from_slice(b"{\"metric\":");
            write_labels(out, &s.labels);
            out.extend_from_slice(b",\"value\":");
            write_point(out, s.t, s.v);
            out.push(b'}');
        }),
        Value::Matrix(series) => write_list(&mut out, series, |out, s| {
            out.extend_from_slice(b"{\"metric\":");
            write_labels(out, &s.labels);
            out.extend_from_slice(b",\"values\":");
            write_list(out, &s.samples, |out, p| write_point(out, p.t, p.v));
            out.push(b'}');
        }),
    }
    out.extend_from_slice(b"}}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// About 30 bytes per point and 100 per label set: one allocation for most answers.
fn answer_size_hint(v: &Value) -> usize {
    match v {
        Value::Vector(items) => 64 + items.len() * 130,
        Value::Matrix(series) => {
            64 + series
                .iter()
                .map(|s| 100 + s.samples.len() * 30)
                .sum::<usize>()
        }
        _ => 128,
    }
}

fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    out.push(b'{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

/// A JSON string literal, escaped by serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `[<seconds>,"<value>"]`.
fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_timestamp(out, t);
    out.extend_from_slice(b",\"");
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        // Display is format_float's shortest round-trip decimal, without a String per point.
        let _ = write!(out, "{v}");
    }
    out.extend_from_slice(b"\"]");
}

/// Milliseconds as Prometheus's float seconds (`1435781451.781`, or an
/// integer when whole).
fn write_timestamp(out: &mut Vec<u8>, ms: i64) {
    if ms % 1000 == 0 {
        let _ = write!(out, "{}", ms / 1000);
    } else {
        let _ = write!(out, "{}", ms as f64 / 1000.0);
    }
}

/// `{"status":"success","data":...}`.
pub fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Sample, format_float};

    #[test]
    fn floats_as_prometheus_writes_them() {
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(-2.5e-7), "-0.00000025");
        let ts = |ms| {
            let mut out = Vec::new();
            write_timestamp(&mut out, ms);
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(ts(1_000), "1");
        assert_eq!(ts(-500), "-0.5");
    }

    /// The direct writer against the same answer built as a serde_json tree.
    #[test]
    fn query_answer_is_the_json_prometheus_writes() {
        use crate::query::value::{InstantSample, RangeSeries};
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b\\c\n")]);
        let cases = [
            (
                Value::Scalar {
                    t: 1_500,
                    v: f64::NAN,
                },
                json!([1.5, "NaN"]),
            ),
            (
                Value::String {
                    t: 2_000,
                    v: "x\"y".into(),
                },
                json!([2, "x\"y"]),
            ),
            (
                Value::Vector(vec![InstantSample {
                    labels: l.clone(),
                    t: 1_435_781_451_781,
                    v: -2.5e-7,
                }]),
                json!([{"metric": {"__name__": "up", "job": "a\"b\\c\n"}, "value": [1435781451.781, "-0.00000025"]}]),
            ),
            (
                Value::Matrix(vec![
                    RangeSeries {
                        labels: l,
                        samples: vec![
                            Sample {
                                t: 0,
                                v: f64::INFINITY,
                            },
                            Sample { t: 10, v: 1e21 },
                        ],
                    },
                    RangeSeries {
                        labels: Labels::default(),
                        samples: vec![],
                    },
                ]),
                json!([
                    {"metric": {"__name__": "up", "job": "a\"b\\c\n"}, "values": [[0, "+Inf"], [0.01, "1000000000000000000000"]]},
                    {"metric": {}, "values": []}
                ]),
            ),
        ];
        for (v, result) in cases {
            let want = json!({"status": "success", "data": {"resultType": v.type_name(), "result": result}});
            let body = query_answer(&v).into_body();
            let bytes = futures_body(body);
            let got: Json = serde_json::from_slice(&bytes).expect("valid JSON");
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    fn futures_body(body: axum::body::Body) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(axum::body::to_bytes(body, usize::MAX))
            .expect("body")
            .to_vec()
    }
}
