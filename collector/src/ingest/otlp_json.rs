//! OTLP/HTTP JSON (`application/json`) -> the protobuf request types.
//!
//! Hand-written over `serde_json::Value` rather than opentelemetry-proto's
//! `with-serde` derives: those do not follow the OTLP JSON rules for every
//! field (64-bit counts, `bucketCounts` and `asInt` must accept decimal
//! strings; summary times must accept strings; enums may be names). The rules
//! applied here: lowerCamelCase keys (the proto names are accepted too),
//! 64-bit integers as strings or numbers, enums as integers or names,
//! doubles as numbers or "NaN"/"Infinity"/"-Infinity", unknown keys ignored.
//! The field helpers are `pub(crate)`: OTLP logs and traces JSON
//! (`logs::ingest`, `traces::ingest`) use them.

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value},
    metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, Summary, SummaryDataPoint, metric::Data, number_data_point,
        summary_data_point::ValueAtQuantile,
    },
    resource::v1::Resource,
};
use serde_json::{Map, Value};

pub(crate) type Obj = Map<String, Value>;

/// Parses an OTLP JSON metrics export request. The error names the path of
/// the offending field, e.g. `resourceMetrics[0].scopeMetrics[1].metrics[2].sum.dataPoints[0].asInt`.
pub fn decode(body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    Ok(ExportMetricsServiceRequest {
        resource_metrics: request(
            body,
            "resourceMetrics",
            "resource_metrics",
            resource_metrics,
        )?,
    })
}

/// An export request's body: a JSON object whose one repeated field
/// (`resourceMetrics`, `resourceLogs`, `resourceSpans`) is decoded by `f`.
pub(crate) fn request<T>(
    body: &[u8],
    camel: &str,
    snake: &str,
    f: impl Fn(&Obj, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let root = as_obj(&root, "request")?;
    list(root, camel, snake, camel, f)
}

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: want an object"))
}

pub(crate) fn get<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel)
        .or_else(|| o.get(snake))
        .filter(|v| !v.is_null())
}

/// A repeated message field: each element parsed by `f` with its path.
pub(crate) fn list<T>(
    o: &Obj,
    camel: &str,
    snake: &str,
    path: &str,
    f: impl Fn(&Obj, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    match get(o, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!("{path}[{i}]");
                f(as_obj(v, &p)?, &p)
            })
            .collect(),
        Some(_) => Err(format!("{path}: want an array")),
    }
}

pub(crate) fn string(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<String, String> {
    match get(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{path}.{camel}: want a string")),
    }
}

fn boolean(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<bool, String> {
    match get(o, camel, snake) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{path}.{camel}: want true or false")),
    }
}

/// A 64-bit unsigned integer: number or decimal string.
pub(crate) fn u64_field(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<u64, String> {
    match get(o, camel, snake) {
        None => Ok(0),
        Some(v) => u64_value(v).ok_or_else(|| {
            format!("{path}.{camel}: want an unsigned integer (number or decimal string), got {v}")
        }),
    }
}

fn u64_value(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn i64_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn f64_value(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    }
}

fn f64_field(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<Option<f64>, String> {
    match get(o, camel, snake) {
        None => Ok(None),
        Some(v) => f64_value(v)
            .map(Some)
            .ok_or_else(|| format!("{path}.{camel}: want a number, got {v}")),
    }
}

/// An enum: integer, or its name from `names` (index = value).
pub(crate) fn enum_field(
    o: &Obj,
    camel: &str,
    snake: &str,
    path: &str,
    names: &[&str],
) -> Result<i32, String> {
    match get(o, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("{path}.{camel}: want an enum value")),
        Some(Value::String(s)) => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i32)
            .ok_or_else(|| {
                format!(
                    "{path}.{camel}: unknown value {s:?} (known: {})",
                    names.join(", ")
                )
            }),
        Some(v) => Err(format!("{path}.{camel}: want an enum value, got {v}")),
    }
}

pub(crate) fn u32_field(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<u32, String> {
    let n = u64_field(o, camel, snake, path)?;
    u32::try_from(n).map_err(|_| format!("{path}.{camel}: out of range"))
}

const TEMPORALITY: &[&str] = &[
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

/// The `resource` of a `resourceMetrics`/`resourceLogs` element (its attributes).
pub(crate) fn resource(o: &Obj, path: &str) -> Result<Option<Resource>, String> {
    let Some(v) = get(o, "resource", "resource") else {
        return Ok(None);
    };
    let p = format!("{path}.resource");
    let r = as_obj(v, &p)?;
    Ok(Some(Resource {
        attributes: attributes(r, &p)?,
        ..Default::default()
    }))
}

fn resource_metrics(o: &Obj, path: &str) -> Result<ResourceMetrics, String> {
    Ok(ResourceMetrics {
        resource: resource(o, path)?,
        scope_metrics: list(
            o,
            "scopeMetrics",
            "scope_metrics",
            &format!("{path}.scopeMetrics"),
            scope_metrics,
        )?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

fn scope_metrics(o: &Obj, path: &str) -> Result<ScopeMetrics, String> {
    Ok(ScopeMetrics {
        metrics: list(o, "metrics", "metrics", &format!("{path}.metrics"), metric)?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
        ..Default::default()
    })
}

/// A metric's `dataPoints`, each decoded by `f`; errors name `<path>.dataPoints[i]`.
fn data_points<T>(
    o: &Obj,
    path: &str,
    f: impl Fn(&Obj, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    list(
        o,
        "dataPoints",
        "data_points",
        &format!("{path}.dataPoints"),
        f,
    )
}

fn temporality(o: &Obj, path: &str) -> Result<i32, String> {
    enum_field(
        o,
        "aggregationTemporality",
        "aggregation_temporality",
        path,
        TEMPORALITY,
    )
}

fn metric(o: &Obj, path: &str) -> Result<Metric, String> {
    let mut data = None;
    if let Some(v) = get(o, "gauge", "gauge") {
        let p = format!("{path}.gauge");
        data = Some(Data::Gauge(Gauge {
            data_points: data_points(as_obj(v, &p)?, &p, number_point)?,
        }));
    } else if let Some(v) = get(o, "sum", "sum") {
        let p = format!("{path}.sum");
        let s = as_obj(v, &p)?;
        data = Some(Data::Sum(Sum {
            data_points: data_points(s, &p, number_point)?,
            aggregation_temporality: temporality(s, &p)?,
            is_monotonic: boolean(s, "isMonotonic", "is_monotonic", &p)?,
        }));
    } else if let Some(v) = get(o, "histogram", "histogram") {
        let p = format!("{path}.histogram");
        let h = as_obj(v, &p)?;
        data = Some(Data::Histogram(Histogram {
            data_points: data_points(h, &p, histogram_point)?,
            aggregation_temporality: temporality(h, &p)?,
        }));
    } else if let Some(v) = get(o, "summary", "summary") {
        let p = format!("{path}.summary");
        data = Some(Data::Summary(Summary {
            data_points: data_points(as_obj(v, &p)?, &p, summary_point)?,
        }));
    } else if let Some(v) = get(o, "exponentialHistogram", "exponential_histogram") {
        // Refused later, point by point; only the count of points matters here.
        let p = format!("{path}.exponentialHistogram");
        let n = match get(as_obj(v, &p)?, "dataPoints", "data_points") {
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        };
        data = Some(Data::ExponentialHistogram(
            opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                data_points: vec![Default::default(); n],
                aggregation_temporality: 0,
            },
        ));
    }
    Ok(Metric {
        name: string(o, "name", "name", path)?,
        description: string(o, "description", "description", path)?,
        unit: string(o, "unit", "unit", path)?,
        metadata: Vec::new(),
        data,
    })
}

fn number_point(o: &Obj, path: &str) -> Result<NumberDataPoint, String> {
    let value = if let Some(v) = get(o, "asDouble", "as_double") {
        Some(number_data_point::Value::AsDouble(
            f64_value(v).ok_or_else(|| format!("{path}.asDouble: want a number, got {v}"))?,
        ))
    } else if let Some(v) = get(o, "asInt", "as_int") {
        Some(number_data_point::Value::AsInt(i64_value(v).ok_or_else(
            || format!("{path}.asInt: want an integer (number or decimal string), got {v}"),
        )?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano", path)?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        exemplars: exemplars(o),
        flags: u32_field(o, "flags", "flags", path)?,
        value,
    })
}

/// Exemplars are not stored; only how many arrived (to count them dropped).
fn exemplars<T: Default + Clone>(o: &Obj) -> Vec<T> {
    match get(o, "exemplars", "exemplars") {
        Some(Value::Array(a)) => vec![T::default(); a.len()],
        _ => Vec::new(),
    }
}

fn histogram_point(o: &Obj, path: &str) -> Result<HistogramDataPoint, String> {
    let bucket_counts = match get(o, "bucketCounts", "bucket_counts") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                u64_value(v).ok_or_else(|| {
                    format!("{path}.bucketCounts[{i}]: want an unsigned integer, got {v}")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{path}.bucketCounts: want an array")),
    };
    let explicit_bounds = match get(o, "explicitBounds", "explicit_bounds") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                f64_value(v)
                    .ok_or_else(|| format!("{path}.explicitBounds[{i}]: want a number, got {v}"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{path}.explicitBounds: want an array")),
    };
    Ok(HistogramDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano", path)?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        count: u64_field(o, "count", "count", path)?,
        sum: f64_field(o, "sum", "sum", path)?,
        bucket_counts,
        explicit_bounds,
        exemplars: exemplars(o),
        flags: u32_field(o, "flags", "flags", path)?,
        min: f64_field(o, "min", "min", path)?,
        max: f64_field(o, "max", "max", path)?,
    })
}

fn summary_point(o: &Obj, path: &str) -> Result<SummaryDataPoint, String> {
    Ok(SummaryDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano", path)?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        count: u64_field(o, "count", "count", path)?,
        sum: f64_field(o, "sum", "sum", path)?.unwrap_or(0.0),
        quantile_values: list(
            o,
            "quantileValues",
            "quantile_values",
            &format!("{path}.quantileValues"),
            |q, p| {
                Ok(ValueAtQuantile {
                    quantile: f64_field(q, "quantile", "quantile", p)?.unwrap_or(0.0),
                    value: f64_field(q, "value", "value", p)?.unwrap_or(0.0),
                })
            },
        )?,
        flags: u32_field(o, "flags", "flags", path)?,
    })
}

/// The `attributes` of a message.
pub(crate) fn attributes(o: &Obj, path: &str) -> Result<Vec<KeyValue>, String> {
    list(
        o,
        "attributes",
        "attributes",
        &format!("{path}.attributes"),
        key_value,
    )
}

/// The `droppedAttributesCount` beside a message's attributes.
pub(crate) fn dropped_attributes_count(o: &Obj, path: &str) -> Result<u32, String> {
    u32_field(
        o,
        "droppedAttributesCount",
        "dropped_attributes_count",
        path,
    )
}

/// A hex-encoded id of `len` bytes (OTLP JSON's trace and span ids, not
/// base64); empty when absent or "".
pub(crate) fn hex_field(
    o: &Obj,
    camel: &str,
    snake: &str,
    path: &str,
    len: usize,
) -> Result<Vec<u8>, String> {
    let s = string(o, camel, snake, path)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || format!("{path}.{camel}: want {} hex digits, got {s:?}", len * 2);
    if s.len() != len * 2 || !s.is_ascii() {
        return Err(bad());
    }
    (0..len)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad()))
        .collect()
}

pub(crate) fn key_value(o: &Obj, path: &str) -> Result<KeyValue, String> {
    let value = match get(o, "value", "value") {
        None => None,
        Some(v) => Some(any_value(v, &format!("{path}.value"))?),
    };
    Ok(KeyValue {
        key: string(o, "key", "key", path)?,
        value,
    })
}

pub(crate) fn any_value(v: &Value, path: &str) -> Result<AnyValue, String> {
    let o = as_obj(v, path)?;
    let value = if let Some(v) = get(o, "stringValue", "string_value") {
        Some(any_value::Value::StringValue(
            v.as_str()
                .ok_or_else(|| format!("{path}.stringValue: want a string"))?
                .to_string(),
        ))
    } else if let Some(v) = get(o, "boolValue", "bool_value") {
        Some(any_value::Value::BoolValue(v.as_bool().ok_or_else(
            || format!("{path}.boolValue: want true or false"),
        )?))
    } else if let Some(v) = get(o, "intValue", "int_value") {
        Some(any_value::Value::IntValue(i64_value(v).ok_or_else(
            || format!("{path}.intValue: want an integer, got {v}"),
        )?))
    } else if let Some(v) = get(o, "doubleValue", "double_value") {
        Some(any_value::Value::DoubleValue(f64_value(v).ok_or_else(
            || format!("{path}.doubleValue: want a number, got {v}"),
        )?))
    } else if let Some(v) = get(o, "arrayValue", "array_value") {
        let p = format!("{path}.arrayValue");
        let values = match get(as_obj(v, &p)?, "values", "values") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| any_value(v, &format!("{p}.values[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{p}.values: want an array")),
        };
        Some(any_value::Value::ArrayValue(ArrayValue { values }))
    } else if let Some(v) = get(o, "kvlistValue", "kvlist_value") {
        let p = format!("{path}.kvlistValue");
        Some(any_value::Value::KvlistValue(KeyValueList {
            values: list(
                as_obj(v, &p)?,
                "values",
                "values",
                &format!("{p}.values"),
                key_value,
            )?,
        }))
    } else if let Some(v) = get(o, "bytesValue", "bytes_value") {
        // Base64 in JSON; kept as its text (labels are strings anyway).
        Some(any_value::Value::StringValue(
            v.as_str()
                .ok_or_else(|| format!("{path}.bytesValue: want a string"))?
                .to_string(),
        ))
    } else {
        None
    };
    Ok(AnyValue { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_for_64_bit_fields_and_enum_names() {
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeMetrics":[{"metrics":[
            {"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
              "dataPoints":[{"timeUnixNano":"1000000000","asInt":"7","attributes":[{"key":"n","value":{"intValue":"3"}}]}]}},
            {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":2000000000,"count":"3",
              "sum":1.5,"bucketCounts":["1",2],"explicitBounds":[0.5]}]}}]}]}]}"#;
        let req = decode(body).unwrap();
        let m = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Sum(s)) = &m[0].data else {
            panic!()
        };
        assert_eq!(s.aggregation_temporality, 2);
        assert_eq!(s.data_points[0].time_unix_nano, 1_000_000_000);
        assert_eq!(
            s.data_points[0].value,
            Some(number_data_point::Value::AsInt(7))
        );
        let Some(Data::Histogram(h)) = &m[1].data else {
            panic!()
        };
        assert_eq!(
            (
                h.data_points[0].count,
                h.data_points[0].bucket_counts.clone()
            ),
            (3, vec![1, 2])
        );
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asInt":"x"}]}}]}]}]}"#).unwrap_err();
        assert!(
            e.contains("resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asInt"),
            "{e}"
        );
        assert!(
            decode(b"{not json")
                .unwrap_err()
                .starts_with("invalid JSON")
        );
        assert!(decode(b"[]").is_err());
    }
}
