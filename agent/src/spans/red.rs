//! RED metrics from the spans the agent forwards, with the names and labels of
//! Grafana Tempo's span metrics (so its dashboards and Grafana's service graph
//! views work unchanged):
//!
//! - `traces_spanmetrics_calls_total{service,span_name,span_kind,status_code}`:
//!   requests, and errors as `status_code="STATUS_CODE_ERROR"`;
//! - `traces_spanmetrics_latency_seconds{...}`: a duration histogram.
//!
//! The route is the span name: OpenTelemetry's HTTP conventions name server
//! spans `{method} {http.route}` (`GET /users/{id}`), a bounded set, where the
//! raw path is not. Label sets are bounded too ([`MAX_SERIES`]); spans past it
//! are counted in `sonde_spans_red_overflow_total` instead.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::any_value,
    trace::v1::{span::SpanKind, status::StatusCode},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Series per metric, at most.
pub const MAX_SERIES: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanLabels {
    service: String,
    span_name: String,
    span_kind: &'static str,
    status_code: &'static str,
}

pub struct Red {
    calls: Family<SpanLabels, Counter>,
    latency: Family<SpanLabels, Histogram>,
    overflow: Counter,
    seen: Mutex<HashSet<SpanLabels>>,
}

impl Red {
    pub fn register(registry: &mut Registry) -> Red {
        let red = Red {
            calls: Family::default(),
            // Tempo's buckets: 2 ms doubling to about 16 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.002, 2.0, 14))
            }),
            overflow: Counter::default(),
            seen: Mutex::default(),
        };
        registry.register(
            "traces_spanmetrics_calls",
            "Spans forwarded, by service, span name, kind and status (Tempo's span metrics).",
            red.calls.clone(),
        );
        registry.register(
            "traces_spanmetrics_latency_seconds",
            "Span durations, by service, span name, kind and status (Tempo's span metrics).",
            red.latency.clone(),
        );
        registry.register(
            "sonde_spans_red_overflow",
            "Spans left out of traces_spanmetrics_* because the label sets reached their bound.",
            red.overflow.clone(),
        );
        red
    }

    pub fn observe(&self, req: &ExportTraceServiceRequest) {
        for rs in &req.resource_spans {
            let service = service_name(rs.resource.as_ref());
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let labels = SpanLabels {
                    service: service.clone(),
                    span_name: span.name.clone(),
                    span_kind: kind_name(span.kind),
                    status_code: status_name(span.status.as_ref().map_or(0, |s| s.code)),
                };
                if !self.admit(&labels) {
                    self.overflow.inc();
                    continue;
                }
                let secs = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano) as f64
                    / 1e9;
                self.calls.get_or_create(&labels).inc();
                self.latency.get_or_create(&labels).observe(secs);
            }
        }
    }

    fn admit(&self, labels: &SpanLabels) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.contains(labels) || (seen.len() < MAX_SERIES && seen.insert(labels.clone()))
    }
}

fn service_name(r: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    let attr = r.and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"));
    match attr.and_then(|kv| kv.value.as_ref()?.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        // The SDKs' own default when the application names none.
        _ => "unknown_service".into(),
    }
}

fn kind_name(kind: i32) -> &'static str {
    SpanKind::try_from(kind).map_or("SPAN_KIND_UNSPECIFIED", |k| k.as_str_name())
}

fn status_name(code: i32) -> &'static str {
    StatusCode::try_from(code).map_or("STATUS_CODE_UNSET", |c| c.as_str_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        common::v1::{AnyValue, KeyValue},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
    };

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("cart".into())),
                        }),
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(name: &str, ms: u64, error: bool) -> Span {
        Span {
            name: name.into(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn text(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).unwrap();
        s
    }

    #[test]
    fn counts_calls_errors_and_durations_per_service_and_route() {
        let mut reg = Registry::default();
        let red = Red::register(&mut reg);
        red.observe(&request(vec![
            span("GET /items/{id}", 3, false),
            span("GET /items/{id}", 30, false),
            span("GET /items/{id}", 5, true),
        ]));
        let t = text(&reg);
        let ok = r#"service="cart",span_name="GET /items/{id}",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET""#;
        assert!(
            t.contains(&format!("traces_spanmetrics_calls_total{{{ok}}} 2")),
            "{t}"
        );
        let err = ok.replace("STATUS_CODE_UNSET", "STATUS_CODE_ERROR");
        assert!(
            t.contains(&format!("traces_spanmetrics_calls_total{{{err}}} 1")),
            "{t}"
        );
        // 3 ms and 30 ms: one under 4 ms, both under 32 ms.
        assert!(
            t.contains(&format!(
                "traces_spanmetrics_latency_seconds_bucket{{le=\"0.004\",{ok}}} 1"
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "traces_spanmetrics_latency_seconds_bucket{{le=\"0.032\",{ok}}} 2"
            )),
            "{t}"
        );
    }

    #[test]
    fn label_sets_are_bounded_and_the_rest_counted() {
        let mut reg = Registry::default();
        let red = Red::register(&mut reg);
        let spans = (0..MAX_SERIES + 5)
            .map(|i| span(&format!("op{i}"), 1, false))
            .collect();
        red.observe(&request(spans));
        red.observe(&request(vec![span("op0", 1, false)]));
        assert!(text(&reg).contains("sonde_spans_red_overflow_total 5"));
        assert_eq!(red.seen.lock().unwrap().len(), MAX_SERIES);
    }
}
