//! The agent's metric families -> one OTLP `ExportMetricsServiceRequest`.
//!
//! The families come from prometheus-client's Prometheus protobuf encoder (typed
//! values from the same collectors that serve `/metrics`), so nothing is parsed
//! back from text. Prometheus semantics are kept so the collector's OTLP ->
//! Prometheus mapping gives back exactly the series `/metrics` shows:
//! - names are the exposition names (the encoder already adds `_total` to
//!   counters, `_info` to info families, and the unit), labels are attributes;
//! - counters are monotonic cumulative Sums, gauges and untyped families Gauges
//!   (as the OpenTelemetry Prometheus receiver reads `untyped`);
//! - histograms are explicit-bucket Histograms: Prometheus buckets are cumulative,
//!   OTLP's are per bucket, so counts are differenced; the `+Inf` bound is implied
//!   by OTLP and left out of `explicit_bounds`;
//! - cumulative points start at the agent's start time; every point carries the
//!   snapshot time.

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
    },
    resource::v1::Resource,
};
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::{
    self as pm, MetricType,
};

/// Who is sending: becomes the OTLP resource (`job`, `instance`, `node` at the collector).
#[derive(Clone, Debug)]
pub struct Origin {
    pub node_name: String,
    /// When the agent started: the start of every cumulative point, in ns since the epoch.
    pub start_unix_nano: u64,
}

/// One converted snapshot and how many data points it holds.
pub struct Batch {
    pub request: ExportMetricsServiceRequest,
    pub points: u64,
}

/// Converts one snapshot taken at `time_unix_nano`.
pub fn to_request(families: &[pm::MetricFamily], origin: &Origin, time_unix_nano: u64) -> Batch {
    let mut metrics = Vec::with_capacity(families.len());
    let mut points = 0u64;
    for family in families {
        if let Some((metric, n)) = convert_family(family, origin.start_unix_nano, time_unix_nano) {
            points += n;
            metrics.push(metric);
        }
    }
    let resource = Resource {
        attributes: vec![
            string_attr("service.name", "sonde-agent"),
            string_attr("service.instance.id", &origin.node_name),
            string_attr("k8s.node.name", &origin.node_name),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "sonde-agent".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Batch { request, points }
}

/// One family as one OTLP metric, with its point count; `None` when it has no points
/// (families are never sent empty).
fn convert_family(family: &pm::MetricFamily, start: u64, now: u64) -> Option<(Metric, u64)> {
    let kind = MetricType::try_from(family.r#type).unwrap_or(MetricType::Untyped);
    let (data, points) = match kind {
        MetricType::Counter => {
            let data_points = number_points(family, start, now);
            let n = data_points.len();
            let sum = Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            };
            (Data::Sum(sum), n)
        }
        MetricType::Histogram => {
            let data_points = histogram_points(family, start, now);
            let n = data_points.len();
            let histogram = Histogram {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            };
            (Data::Histogram(histogram), n)
        }
        // Gauges (info families included) and untyped values. The agent's
        // collectors write no summaries or gauge histograms; their points would
        // carry no gauge value and are skipped.
        _ => {
            let data_points = number_points(family, 0, now);
            let n = data_points.len();
            (Data::Gauge(Gauge { data_points }), n)
        }
    };
    let metric = Metric {
        name: family.name.clone(),
        description: family.help.clone(),
        unit: family.unit.clone(),
        metadata: Vec::new(),
        data: Some(data),
    };
    (points > 0).then_some((metric, points as u64))
}

/// Counter, gauge and untyped points. `start` is 0 for gauges (not cumulative).
fn number_points(family: &pm::MetricFamily, start: u64, now: u64) -> Vec<NumberDataPoint> {
    let mut out = Vec::with_capacity(family.metric.len());
    for metric in &family.metric {
        // prometheus-client writes untyped values as gauges; accept either field.
        let (value, start_time_unix_nano) = if let Some(c) = &metric.counter {
            (
                c.value,
                c.start_timestamp
                    .as_ref()
                    .map_or(start, |t| nanos(t.seconds, t.nanos)),
            )
        } else if let Some(g) = &metric.gauge {
            (g.value, start)
        } else if let Some(u) = &metric.untyped {
            (u.value, start)
        } else {
            continue;
        };
        out.push(NumberDataPoint {
            attributes: labels(&metric.label),
            start_time_unix_nano,
            time_unix_nano: point_time(metric, now),
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        });
    }
    out
}

fn histogram_points(family: &pm::MetricFamily, start: u64, now: u64) -> Vec<HistogramDataPoint> {
    let mut out = Vec::with_capacity(family.metric.len());
    for metric in &family.metric {
        let Some(h) = &metric.histogram else { continue };
        let count = if h.sample_count_float > 0.0 {
            h.sample_count_float as u64
        } else {
            h.sample_count
        };
        // Prometheus buckets are cumulative; OTLP's are per bucket.
        let mut explicit_bounds = Vec::with_capacity(h.bucket.len());
        let mut bucket_counts = Vec::with_capacity(h.bucket.len() + 1);
        let mut below = 0u64;
        for b in &h.bucket {
            let cumulative = if b.cumulative_count_float > 0.0 {
                b.cumulative_count_float as u64
            } else {
                b.cumulative_count
            };
            bucket_counts.push(cumulative.saturating_sub(below));
            explicit_bounds.push(b.upper_bound);
            below = below.max(cumulative);
        }
        if explicit_bounds.last() == Some(&f64::INFINITY) {
            // OTLP implies the +Inf bound: n bounds, n + 1 buckets.
            explicit_bounds.pop();
        } else {
            bucket_counts.push(count.saturating_sub(below));
        }
        out.push(HistogramDataPoint {
            attributes: labels(&metric.label),
            start_time_unix_nano: h
                .start_timestamp
                .as_ref()
                .map_or(start, |t| nanos(t.seconds, t.nanos)),
            time_unix_nano: point_time(metric, now),
            count,
            sum: Some(h.sample_sum),
            bucket_counts,
            explicit_bounds,
            ..Default::default()
        });
    }
    out
}

/// The sample's own timestamp if a collector gave one, else the snapshot time.
fn point_time(metric: &pm::Metric, now: u64) -> u64 {
    match u64::try_from(metric.timestamp_ms) {
        Ok(ms) if ms > 0 => ms.saturating_mul(1_000_000),
        _ => now,
    }
}

fn labels(labels: &[pm::LabelPair]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|l| string_attr(&l.name, &l.value))
        .collect()
}

fn string_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
    }
}

/// A protobuf timestamp (seconds, nanos) in ns since the epoch; before 1970 is 0.
fn nanos(seconds: i64, nanos: i32) -> u64 {
    (seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos.max(0) as u64)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
