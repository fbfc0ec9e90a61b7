//! Prometheus's JSON encoding of query results: timestamps as float seconds,
//! values as strings ("NaN", "+Inf", "-Inf", else the shortest decimal that
//! round-trips, without an exponent, like Go's `FormatFloat(v, 'f', -1, 64)`).

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use crate::{
    model::{Labels, Sample, format_float},
    query::Value,
};

/// Milliseconds as Prometheus's float seconds (`1435781451.781`, or an
/// integer when whole).
pub fn timestamp(ms: i64) -> Json {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

pub fn point(t: i64, v: f64) -> Json {
    json!([timestamp(t), format_float(v)])
}

pub fn labels(l: &Labels) -> Json {
    let m: Map<String, Json> = l
        .iter()
        .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
        .collect();
    Json::Object(m)
}

fn samples(s: &[Sample]) -> Json {
    Json::Array(s.iter().map(|s| point(s.t, s.v)).collect())
}

/// `data` of a query answer: `{"resultType": ..., "result": ...}`.
pub fn query_data(v: &Value) -> Json {
    let result = match v {
        Value::Scalar { t, v } => point(*t, *v),
        Value::String { t, v } => json!([timestamp(*t), v]),
        Value::Vector(items) => Json::Array(
            items
                .iter()
                .map(|s| json!({"metric": labels(&s.labels), "value": point(s.t, s.v)}))
                .collect(),
        ),
        Value::Matrix(series) => Json::Array(
            series
                .iter()
                .map(|s| json!({"metric": labels(&s.labels), "values": samples(&s.samples)}))
                .collect(),
        ),
    };
    json!({"resultType": v.type_name(), "result": result})
}

/// `{"status":"success","data":...}`.
pub fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_prometheus_writes_them() {
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(-2.5e-7), "-0.00000025");
        assert_eq!(timestamp(1_435_781_451_781).to_string(), "1435781451.781");
        assert_eq!(timestamp(1_000).to_string(), "1");
    }
}
