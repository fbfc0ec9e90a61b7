//! The spans the traces bench sends, generated once from a fixed seed and
//! encoded as OTLP `ExportTraceServiceRequest` protobuf bodies before the clock
//! starts. Shaped like a service mesh's traffic: traces of 10 spans across a
//! few services, each span with the HTTP attributes the SDKs set (method, route,
//! status, peer) plus one high-cardinality attribute (a request id), resources
//! with service and Kubernetes attributes, 1 % of spans with error status.

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
};
use prost::Message;
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

pub const SPANS_PER_TRACE: usize = 10;
const SERVICES: [&str; 6] = [
    "frontend", "cart", "checkout", "payments", "catalog", "shipping",
];
const ROUTES: [&str; 8] = [
    "/",
    "/cart",
    "/cart/{id}",
    "/checkout",
    "/pay",
    "/items/{id}",
    "/search",
    "/ship",
];

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn text(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn resource(service: &str, pod: usize) -> Resource {
    Resource {
        attributes: vec![
            text("service.name", service),
            text("service.version", "1.4.2"),
            text("k8s.namespace.name", "shop"),
            text("k8s.pod.name", &format!("{service}-7d9f-{pod}")),
            text("k8s.node.name", &format!("node-{}", pod % 3)),
            text("telemetry.sdk.language", "python"),
        ],
        ..Default::default()
    }
}

/// `requests` bodies of `spans_per_request` spans each (whole traces per request).
pub fn generate(requests: usize, spans_per_request: usize) -> Vec<Vec<u8>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5ade);
    let traces_per_request = (spans_per_request / SPANS_PER_TRACE).max(1);
    // Spans start a second apart per trace, ending now-ish: the store takes recent spans.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut t0 = now_ns - (requests * traces_per_request) as u64 * 1_000_000;
    (0..requests)
        .map(|_| {
            let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
            for _ in 0..traces_per_request {
                let trace_id: [u8; 16] = rng.random();
                let mut parent = Vec::new();
                t0 += 1_000_000;
                for i in 0..SPANS_PER_TRACE {
                    let svc = if i == 0 {
                        0
                    } else {
                        rng.random_range(1..SERVICES.len())
                    };
                    let span_id: [u8; 8] = rng.random();
                    let route = ROUTES[rng.random_range(0..ROUTES.len())];
                    let start = t0 + i as u64 * 50_000;
                    let error = rng.random_range(0..100) == 0;
                    by_service[svc].push(Span {
                        trace_id: trace_id.to_vec(),
                        span_id: span_id.to_vec(),
                        parent_span_id: parent.clone(),
                        name: format!("GET {route}"),
                        kind: if i % 2 == 0 {
                            SpanKind::Server
                        } else {
                            SpanKind::Client
                        } as i32,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + rng.random_range(100_000..50_000_000),
                        attributes: vec![
                            text("http.request.method", "GET"),
                            text("http.route", route),
                            kv(
                                "http.response.status_code",
                                Value::IntValue(if error { 500 } else { 200 }),
                            ),
                            text("server.address", SERVICES[svc]),
                            kv("server.port", Value::IntValue(8080)),
                            text("request.id", &format!("{:016x}", rng.random::<u64>())),
                        ],
                        status: error.then(|| Status {
                            code: StatusCode::Error as i32,
                            message: "upstream failed".into(),
                        }),
                        ..Default::default()
                    });
                    parent = span_id.to_vec();
                }
            }
            let pod = rng.random_range(0..20);
            ExportTraceServiceRequest {
                resource_spans: by_service
                    .into_iter()
                    .enumerate()
                    .filter(|(_, spans)| !spans.is_empty())
                    .map(|(i, spans)| ResourceSpans {
                        resource: Some(resource(SERVICES[i], pod)),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        })
        .collect()
}
