//! OTLP traces -> spans as stored, validated whole: any bad span refuses
//! the request (the error names it by its path, e.g.
//! `resourceSpans[0].scopeSpans[1].spans[3].spanId`). Rules:
//! - the resource's `service.name` must be a non-empty string: it is the
//!   Jaeger process's service, which every search starts from;
//! - trace ids are 16 bytes, span ids 8, neither all zeros; a parent span id
//!   is empty (a root) or 8 bytes;
//! - start time is set, end time is not before it;
//! - arrays and maps in attributes become their JSON text (Jaeger tags are
//!   scalars), other values keep their type.

use std::sync::Arc;

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::Span as OtlpSpan,
};

use crate::{
    logs::ingest::otlp::any_to_json,
    traces::model::{
        Attributes, Event, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId,
        Value,
    },
};

/// Spans in the request (for counting a refused one).
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

pub fn map_request(req: ExportTraceServiceRequest) -> Result<Vec<Span>, String> {
    let mut out = Vec::with_capacity(span_count(&req));
    for (i, rs) in req.resource_spans.into_iter().enumerate() {
        let path = format!("resourceSpans[{i}]");
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let mut service = None;
        let mut attributes = Vec::with_capacity(attrs.len());
        for kv in attrs {
            if kv.key == "service.name" {
                if let Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) = kv.value
                {
                    service = Some(s);
                }
            } else {
                attributes.push(attr(kv));
            }
        }
        let service = match service {
            Some(s) if !s.trim().is_empty() => s,
            _ => {
                return Err(format!(
                    "{path}.resource: the service.name attribute is missing, empty or not a string; every span needs a service"
                ));
            }
        };
        let resource = Arc::new(Resource {
            service,
            attributes,
        });
        for (j, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = Arc::new(
                ss.scope
                    .map(|s| Scope {
                        name: s.name,
                        version: s.version,
                    })
                    .unwrap_or_default(),
            );
            for (k, s) in ss.spans.into_iter().enumerate() {
                let path = format!("{path}.scopeSpans[{j}].spans[{k}]");
                out.push(map_span(s, &resource, &scope).map_err(|e| format!("{path}.{e}"))?);
            }
        }
    }
    Ok(out)
}

fn map_span(s: OtlpSpan, resource: &Arc<Resource>, scope: &Arc<Scope>) -> Result<Span, String> {
    let trace_id: TraceId = id(&s.trace_id, "traceId")?;
    let span_id: SpanId = id(&s.span_id, "spanId")?;
    let parent_span_id = match s.parent_span_id.len() {
        0 => None,
        8 if s.parent_span_id.iter().all(|b| *b == 0) => None,
        _ => Some(id(&s.parent_span_id, "parentSpanId")?),
    };
    if s.start_time_unix_nano == 0 {
        return Err("startTimeUnixNano: must be set".into());
    }
    let start_ns = i64::try_from(s.start_time_unix_nano).map_err(|_| {
        format!(
            "startTimeUnixNano: {} is out of range (after year 2262)",
            s.start_time_unix_nano
        )
    })?;
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err(format!(
            "endTimeUnixNano: {} is before startTimeUnixNano {}",
            s.end_time_unix_nano, s.start_time_unix_nano
        ));
    }
    let kind = u8::try_from(s.kind)
        .ok()
        .filter(|k| *k <= 5)
        .ok_or_else(|| format!("kind: {} is not a SpanKind", s.kind))?;
    let (status, status_message) = match s.status {
        None => (StatusCode::Unset, String::new()),
        Some(st) => {
            let code = u8::try_from(st.code)
                .ok()
                .filter(|c| *c <= 2)
                .ok_or_else(|| format!("status.code: {} is not a StatusCode", st.code))?;
            (StatusCode::from_u8(code), st.message)
        }
    };
    let mut events = Vec::with_capacity(s.events.len());
    for (n, e) in s.events.into_iter().enumerate() {
        let ts_ns = i64::try_from(e.time_unix_nano)
            .map_err(|_| format!("events[{n}].timeUnixNano: out of range"))?;
        events.push(Event {
            ts_ns,
            name: e.name,
            attributes: e.attributes.into_iter().map(attr).collect(),
        });
    }
    let mut links = Vec::with_capacity(s.links.len());
    for (n, l) in s.links.into_iter().enumerate() {
        links.push(Link {
            trace_id: id(&l.trace_id, &format!("links[{n}].traceId"))?,
            span_id: id(&l.span_id, &format!("links[{n}].spanId"))?,
            trace_state: l.trace_state,
            attributes: l.attributes.into_iter().map(attr).collect(),
        });
    }
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        resource: resource.clone(),
        scope: scope.clone(),
        name: s.name,
        kind: SpanKind::from_u8(kind),
        start_ns,
        duration_ns: s.end_time_unix_nano - s.start_time_unix_nano,
        status,
        status_message,
        // The W3C trace flags; the upper bits are OTLP's own.
        flags: s.flags & 0xff,
        trace_state: s.trace_state,
        attributes: s.attributes.into_iter().map(attr).collect::<Attributes>(),
        events,
        links,
    })
}

/// A non-zero id of exactly N bytes.
fn id<const N: usize>(b: &[u8], field: &str) -> Result<[u8; N], String> {
    let out: [u8; N] = b
        .try_into()
        .map_err(|_| format!("{field}: want {N} bytes, got {}", b.len()))?;
    if out.iter().all(|x| *x == 0) {
        return Err(format!("{field}: must not be all zeros"));
    }
    Ok(out)
}

fn attr(kv: KeyValue) -> (String, Value) {
    let v = match kv.value.and_then(|v| v.value) {
        None => Value::Str(String::new()),
        Some(any_value::Value::StringValue(s)) => Value::Str(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::Int(i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(d),
        Some(any_value::Value::BytesValue(b)) => Value::Bytes(b),
        Some(v) => Value::Str(any_to_json(&AnyValue { value: Some(v) }).to_string()),
    };
    (kv.key, v)
}

/// OTLP's `Span.SpanKind` numbers, for tests and the JSON decoder.
pub const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// OTLP's `Status.StatusCode` names.
pub const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        common::v1::InstrumentationScope,
        resource::v1::Resource as OtlpResource,
        trace::v1::{ResourceSpans, ScopeSpans, Status, span::Event as OtlpEvent},
    };

    use super::*;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn request(spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: vec![
                        kv("service.name", any_value::Value::StringValue("web".into())),
                        kv(
                            "k8s.pod.name",
                            any_value::Value::StringValue("web-1".into()),
                        ),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "2".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn good() -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_005_000_000,
            attributes: vec![
                kv("http.status_code", any_value::Value::IntValue(200)),
                kv(
                    "list",
                    any_value::Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::StringValue("a".into())),
                            }],
                        },
                    ),
                ),
            ],
            events: vec![OtlpEvent {
                time_unix_nano: 1_700_000_000_001_000_000,
                name: "retry".into(),
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "bad".into(),
            }),
            flags: 0x301,
            ..Default::default()
        }
    }

    #[test]
    fn maps_a_span_with_its_resource_and_scope() {
        let spans = map_request(request(vec![good()])).unwrap();
        let s = &spans[0];
        assert_eq!(s.resource.service, "web");
        assert_eq!(
            s.resource.attributes,
            vec![("k8s.pod.name".to_string(), Value::Str("web-1".into()))]
        );
        assert_eq!(s.scope.name, "lib");
        assert_eq!(s.parent_span_id, Some([3; 8]));
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.duration_ns, 5_000_000);
        assert_eq!(s.status, StatusCode::Error);
        assert_eq!(s.flags, 1);
        assert_eq!(s.attributes[0].1, Value::Int(200));
        assert_eq!(s.attributes[1].1, Value::Str(r#"["a"]"#.into()));
        assert_eq!(s.events[0].ts_ns, 1_700_000_000_001_000_000);
    }

    type Mutation = Box<dyn Fn(&mut OtlpSpan)>;

    #[test]
    fn bad_spans_refuse_the_request_and_name_the_field() {
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|s| s.trace_id = vec![1; 8]),
                "spans[0].traceId: want 16 bytes, got 8",
            ),
            (
                Box::new(|s| s.trace_id = vec![0; 16]),
                "spans[0].traceId: must not be all zeros",
            ),
            (
                Box::new(|s| s.span_id = vec![]),
                "spans[0].spanId: want 8 bytes, got 0",
            ),
            (
                Box::new(|s| s.parent_span_id = vec![1; 3]),
                "spans[0].parentSpanId",
            ),
            (
                Box::new(|s| s.start_time_unix_nano = 0),
                "startTimeUnixNano: must be set",
            ),
            (
                Box::new(|s| s.end_time_unix_nano = 1),
                "endTimeUnixNano: 1 is before",
            ),
            (Box::new(|s| s.kind = 9), "kind: 9"),
        ];
        for (mutate, want) in cases {
            let mut s = good();
            mutate(&mut s);
            let e = map_request(request(vec![good(), s])).unwrap_err();
            let want = want.replace("spans[0]", "spans[1]");
            assert!(e.contains(&want), "{e} lacks {want}");
            assert!(
                e.starts_with("resourceSpans[0].scopeSpans[0].spans[1]."),
                "{e}"
            );
        }
    }

    #[test]
    fn a_resource_without_a_service_is_refused() {
        let mut req = request(vec![good()]);
        req.resource_spans[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .remove(0);
        let e = map_request(req).unwrap_err();
        assert!(
            e.contains("resourceSpans[0].resource: the service.name attribute is missing"),
            "{e}"
        );
        let mut req = request(vec![good()]);
        req.resource_spans[0].resource.as_mut().unwrap().attributes[0] =
            kv("service.name", any_value::Value::StringValue(" ".into()));
        assert!(map_request(req).is_err());
    }

    #[test]
    fn an_all_zero_parent_is_a_root() {
        let mut s = good();
        s.parent_span_id = vec![0; 8];
        assert_eq!(
            map_request(request(vec![s])).unwrap()[0].parent_span_id,
            None
        );
    }
}
