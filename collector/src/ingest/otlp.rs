//! OTLP metrics -> Prometheus series, per the mapping in the project's
//! contracts: names sanitized, monotonic cumulative sums become `_total`
//! counters, histograms and summaries are split Prometheus-style, resource
//! attributes give `job`, `instance` and `node`. Points that cannot be mapped
//! (delta temporality, exponential histograms, missing values) are refused
//! one by one and reported in OTLP's partial success.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
        metric::Data, number_data_point,
    },
};

use super::batch::WriteBatch;
use crate::model::{Labels, METRIC_NAME, MetricMetadata, Sample, format_float, stale_nan};

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;

/// The mapped write and what was refused.
#[derive(Debug, Default)]
pub struct Mapped {
    pub batch: WriteBatch,
    /// Refused data points by reason.
    pub rejected: BTreeMap<&'static str, usize>,
    /// The first refusal's explanation, for OTLP's `partial_success.error_message`.
    pub first_error: Option<String>,
    pub exemplars: usize,
}

impl Mapped {
    pub fn rejected_points(&self) -> usize {
        self.rejected.values().sum()
    }

    fn reject(&mut self, reason: &'static str, points: usize, why: impl FnOnce() -> String) {
        if points == 0 {
            return;
        }
        *self.rejected.entry(reason).or_default() += points;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }
}

pub fn map_request(req: ExportMetricsServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    for rm in req.resource_metrics {
        let resource = resource_labels(
            rm.resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]),
        );
        for sm in rm.scope_metrics {
            for metric in sm.metrics {
                map_metric(metric, &resource, &mut out);
            }
        }
    }
    out
}

/// `service.name` (with `service.namespace/`) -> job, `service.instance.id`
/// -> instance, `k8s.node.name` -> node; the rest are dropped.
fn resource_labels(attrs: &[KeyValue]) -> Vec<(String, String)> {
    let get = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| any_to_string(kv.value.as_ref()))
    };
    let mut out = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace").filter(|ns| !ns.is_empty()) {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        };
        out.push(("job".to_string(), job));
    }
    if let Some(id) = get("service.instance.id") {
        out.push(("instance".to_string(), id));
    }
    if let Some(node) = get("k8s.node.name") {
        out.push(("node".to_string(), node));
    }
    out
}

fn map_metric(metric: Metric, resource: &[(String, String)], out: &mut Mapped) {
    let Some(base) = sanitize_metric_name(&metric.name) else {
        let n = point_count(&metric);
        out.reject("invalid_name", n, || {
            format!("metric name {:?} is not usable", metric.name)
        });
        return;
    };
    let meta = |kind: &str| MetricMetadata {
        kind: kind.to_string(),
        help: metric.description.clone(),
        unit: metric.unit.clone(),
    };
    match metric.data {
        None => {}
        Some(Data::Gauge(g)) => {
            out.batch.metadata.push((base.clone(), meta("gauge")));
            for p in g.data_points {
                number_point(&base, p, resource, out);
            }
        }
        Some(Data::Sum(s)) => {
            if s.aggregation_temporality != AggregationTemporality::Cumulative as i32 {
                let reason = temporality_reason(s.aggregation_temporality);
                out.reject(reason, s.data_points.len(), || {
                    format!(
                        "metric {:?}: only cumulative sums are accepted ({reason})",
                        metric.name
                    )
                });
                return;
            }
            let (name, kind) = if s.is_monotonic {
                let name = if base.ends_with("_total") {
                    base.clone()
                } else {
                    format!("{base}_total")
                };
                (name, "counter")
            } else {
                (base.clone(), "gauge")
            };
            out.batch.metadata.push((name.clone(), meta(kind)));
            for p in s.data_points {
                number_point(&name, p, resource, out);
            }
        }
        Some(Data::Histogram(h)) => {
            if h.aggregation_temporality != AggregationTemporality::Cumulative as i32 {
                let reason = temporality_reason(h.aggregation_temporality);
                out.reject(reason, h.data_points.len(), || {
                    format!(
                        "metric {:?}: only cumulative histograms are accepted ({reason})",
                        metric.name
                    )
                });
                return;
            }
            out.batch.metadata.push((base.clone(), meta("histogram")));
            for p in h.data_points {
                histogram_point(&base, p, resource, out);
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            out.reject("exponential_histogram", h.data_points.len(), || {
                format!(
                    "metric {:?}: exponential histograms are not supported",
                    metric.name
                )
            });
        }
        Some(Data::Summary(s)) => {
            out.batch.metadata.push((base.clone(), meta("summary")));
            for p in s.data_points {
                summary_point(&base, p, resource, out);
            }
        }
    }
}

fn temporality_reason(t: i32) -> &'static str {
    if t == AggregationTemporality::Delta as i32 {
        "delta_temporality"
    } else {
        "unspecified_temporality"
    }
}

fn point_count(m: &Metric) -> usize {
    match &m.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// The point's time in ms, or a refusal when it has none.
fn point_time(name: &str, time_unix_nano: u64, out: &mut Mapped) -> Option<i64> {
    if time_unix_nano == 0 {
        out.reject("missing_timestamp", 1, || {
            format!("metric {name:?}: data point without time_unix_nano")
        });
        return None;
    }
    Some((time_unix_nano / 1_000_000) as i64)
}

fn number_point(name: &str, p: NumberDataPoint, resource: &[(String, String)], out: &mut Mapped) {
    out.exemplars += p.exemplars.len();
    let Some(t) = point_time(name, p.time_unix_nano, out) else {
        return;
    };
    let v = if p.flags & NO_RECORDED_VALUE != 0 {
        stale_nan()
    } else {
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => {
                out.reject("missing_value", 1, || {
                    format!("metric {name:?}: data point without a value")
                });
                return;
            }
        }
    };
    let labels = series_labels(name, &p.attributes, resource, None);
    out.batch.add_valid(labels, [Sample { t, v }]);
}

fn histogram_point(
    name: &str,
    p: HistogramDataPoint,
    resource: &[(String, String)],
    out: &mut Mapped,
) {
    out.exemplars += p.exemplars.len();
    if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        out.reject("invalid_histogram", 1, || {
            format!(
                "metric {name:?}: {} bucket counts for {} explicit bounds (want bounds + 1)",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            )
        });
        return;
    }
    let Some(t) = point_time(name, p.time_unix_nano, out) else {
        return;
    };
    let stale = p.flags & NO_RECORDED_VALUE != 0;
    let val = |v: f64| if stale { stale_nan() } else { v };
    let bucket_name = format!("{name}_bucket");
    if !p.bucket_counts.is_empty() {
        let mut cumulative = 0u64;
        for (count, bound) in p.bucket_counts.iter().zip(&p.explicit_bounds) {
            cumulative = cumulative.saturating_add(*count);
            let labels = series_labels(
                &bucket_name,
                &p.attributes,
                resource,
                Some(("le", format_float(*bound))),
            );
            out.batch.add_valid(
                labels,
                [Sample {
                    t,
                    v: val(cumulative as f64),
                }],
            );
        }
        let labels = series_labels(
            &bucket_name,
            &p.attributes,
            resource,
            Some(("le", "+Inf".into())),
        );
        out.batch.add_valid(
            labels,
            [Sample {
                t,
                v: val(p.count as f64),
            }],
        );
    }
    if let Some(sum) = p.sum {
        let labels = series_labels(&format!("{name}_sum"), &p.attributes, resource, None);
        out.batch.add_valid(labels, [Sample { t, v: val(sum) }]);
    }
    let labels = series_labels(&format!("{name}_count"), &p.attributes, resource, None);
    out.batch.add_valid(
        labels,
        [Sample {
            t,
            v: val(p.count as f64),
        }],
    );
}

fn summary_point(name: &str, p: SummaryDataPoint, resource: &[(String, String)], out: &mut Mapped) {
    let Some(t) = point_time(name, p.time_unix_nano, out) else {
        return;
    };
    let stale = p.flags & NO_RECORDED_VALUE != 0;
    let val = |v: f64| if stale { stale_nan() } else { v };
    for q in &p.quantile_values {
        let labels = series_labels(
            name,
            &p.attributes,
            resource,
            Some(("quantile", format_float(q.quantile))),
        );
        out.batch.add_valid(labels, [Sample { t, v: val(q.value) }]);
    }
    let labels = series_labels(&format!("{name}_sum"), &p.attributes, resource, None);
    out.batch.add_valid(labels, [Sample { t, v: val(p.sum) }]);
    let labels = series_labels(&format!("{name}_count"), &p.attributes, resource, None);
    out.batch.add_valid(
        labels,
        [Sample {
            t,
            v: val(p.count as f64),
        }],
    );
}

/// Point attributes (sanitized; values of names that collide after
/// sanitizing are joined with `;`, as Prometheus's OTLP translator does),
/// then resource labels, then the metric name and any `le`/`quantile`.
fn series_labels(
    name: &str,
    attrs: &[KeyValue],
    resource: &[(String, String)],
    extra: Option<(&str, String)>,
) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(attrs.len() + resource.len() + 2);
    for kv in attrs {
        let Some(key) = sanitize_label_name(&kv.key) else {
            continue;
        };
        let value = any_to_string(kv.value.as_ref());
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => pairs.push((key, value)),
        }
    }
    // Resource-derived and structural labels win over point attributes.
    let overrides = resource
        .iter()
        .cloned()
        .chain(extra.map(|(k, v)| (k.to_string(), v)))
        .chain(std::iter::once((METRIC_NAME.to_string(), name.to_string())));
    for (k, v) in overrides {
        pairs.retain(|(pk, _)| *pk != k);
        pairs.push((k, v));
    }
    Labels::new(pairs)
}

/// Characters outside `[a-zA-Z0-9_:]` become `_`; a leading digit gets a `_`
/// prefix so the result is a valid metric name. `None` for an empty name.
pub fn sanitize_metric_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Some(out)
}

/// As metric names, but `:` is not allowed in label names either; a leading
/// digit gets `key_` and a reserved `__` prefix gets `key` (Prometheus's
/// translator rules), so an attribute can never overwrite `__name__`.
pub fn sanitize_label_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        Some(format!("key_{out}"))
    } else if out.starts_with("__") {
        Some(format!("key{out}"))
    } else {
        Some(out)
    }
}

fn any_to_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => format_float(*d),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|v| serde_json::Value::String(any_to_string(Some(v))).to_string())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|kv| {
                    let k = serde_json::Value::String(kv.key.clone());
                    let v = serde_json::Value::String(any_to_string(kv.value.as_ref()));
                    format!("{k}:{v}")
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;
    use opentelemetry_proto::tonic::{
        metrics::v1::{Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum},
        resource::v1::Resource,
    };

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "api"),
                        kv("service.namespace", "shop"),
                        kv("k8s.node.name", "n1"),
                        kv("host.arch", "x"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn point(t_s: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            time_unix_nano: t_s * 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn series(m: Mapped) -> Vec<(String, Vec<Sample>)> {
        // Merged by label set, as storage does.
        let mut merged: std::collections::BTreeMap<crate::model::Labels, Vec<Sample>> =
            Default::default();
        for ts in m.batch.into_series().0 {
            merged.entry(ts.labels).or_default().extend(ts.samples);
        }
        for v in merged.values_mut() {
            v.sort_by_key(|s| s.t);
        }
        merged
            .into_iter()
            .map(|(labels, samples)| crate::model::TimeSeries { labels, samples })
            .map(|s| (s.labels.to_string(), s.samples))
            .collect()
    }

    #[test]
    fn counter_gets_total_and_resource_labels() {
        let m = map_request(request(vec![Metric {
            name: "http.requests".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![point(10, 5.0, vec![kv("http.method", "GET")])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }]));
        assert_eq!(m.rejected_points(), 0);
        assert_eq!(m.batch.metadata[0].0, "http_requests_total");
        let s = series(m);
        assert_eq!(
            s[0].0,
            r#"http_requests_total{http_method="GET", job="shop/api", node="n1"}"#
        );
        assert_eq!(s[0].1, vec![Sample { t: 10_000, v: 5.0 }]);
    }

    #[test]
    fn delta_and_missing_values_are_refused_and_counted() {
        let mut missing = point(1, 0.0, vec![]);
        missing.value = None;
        let m = map_request(request(vec![
            Metric {
                name: "d".into(),
                data: Some(Data::Sum(Sum {
                    data_points: vec![point(1, 1.0, vec![]), point(2, 1.0, vec![])],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            Metric {
                name: "g".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![missing, point(1, 2.0, vec![])],
                })),
                ..Default::default()
            },
        ]));
        assert_eq!(m.rejected.get("delta_temporality"), Some(&2));
        assert_eq!(m.rejected.get("missing_value"), Some(&1));
        assert_eq!(m.batch.sample_count(), 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_stale_flag_marks_all() {
        let m = map_request(request(vec![Metric {
            name: "lat".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![
                    HistogramDataPoint {
                        time_unix_nano: 1_000_000_000,
                        count: 6,
                        sum: Some(2.5),
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![0.1, 1.0],
                        ..Default::default()
                    },
                    HistogramDataPoint {
                        time_unix_nano: 2_000_000_000,
                        flags: NO_RECORDED_VALUE,
                        bucket_counts: vec![0, 0, 0],
                        explicit_bounds: vec![0.1, 1.0],
                        ..Default::default()
                    },
                ],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        }]));
        let s = series(m);
        let find = |want: &str| {
            s.iter()
                .find(|(l, _)| l == want)
                .unwrap_or_else(|| panic!("{want} in {s:?}"))
                .1
                .clone()
        };
        assert_eq!(
            find(r#"lat_bucket{job="shop/api", le="0.1", node="n1"}"#)[0].v,
            1.0
        );
        assert_eq!(
            find(r#"lat_bucket{job="shop/api", le="1", node="n1"}"#)[0].v,
            3.0
        );
        let inf = find(r#"lat_bucket{job="shop/api", le="+Inf", node="n1"}"#);
        assert_eq!(inf[0].v, 6.0);
        assert!(is_stale_nan(inf[1].v));
        assert_eq!(find(r#"lat_sum{job="shop/api", node="n1"}"#)[0].v, 2.5);
        assert_eq!(find(r#"lat_count{job="shop/api", node="n1"}"#)[0].v, 6.0);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_metric_name("a.b-c:d").as_deref(), Some("a_b_c:d"));
        assert_eq!(sanitize_metric_name("1x").as_deref(), Some("_1x"));
        assert_eq!(
            sanitize_label_name("__name__").as_deref(),
            Some("key__name__")
        );
        assert_eq!(sanitize_label_name("a:b").as_deref(), Some("a_b"));
    }
}
