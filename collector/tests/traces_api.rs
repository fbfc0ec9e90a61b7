//! Traces against the real binary, sent by the real OpenTelemetry Python SDK
//! with its OTLP exporters (gRPC and HTTP; `cargo xtask setup` installs them
//! into target/sonde-py): each trace comes back whole through Jaeger's API
//! with parent/child references, attributes and the Kubernetes resource
//! attributes; searches, services, operations and dependencies; bad payloads
//! and oversized traces are refused with clear errors and store nothing;
//! acknowledged spans survive kill -9.

mod api_support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use api_support::{Collector, Running, request};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    common::v1::{AnyValue, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message;
use serde_json::{Value, json};

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join("target/sonde-py/bin/python3");
    assert!(
        py.exists(),
        "{} is missing: run `cargo xtask setup` (it installs the OpenTelemetry SDK there)",
        py.display()
    );
    py
}

/// Runs the SDK script; returns its JSON report.
fn send(mode: &str, endpoint: &str, scenario: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces_support/send_spans.py");
    let out = Command::new(python())
        .arg(script)
        .args([mode, endpoint])
        .args(scenario)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "send_spans.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn send_grpc(c: SocketAddr, scenario: &[&str]) -> Value {
    send("grpc", &format!("http://{c}"), scenario)
}

fn send_http(c: SocketAddr, scenario: &[&str]) -> Value {
    send("http", &format!("http://{c}/v1/traces"), scenario)
}

fn get(http: SocketAddr, path: &str) -> (u16, Value) {
    let r = request(http, "GET", path, &[], b"").expect("GET");
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.text()));
    (r.status, v)
}

/// `data` of a 200 answer, after checking Jaeger's envelope.
fn data(http: SocketAddr, path: &str) -> Value {
    let (status, v) = get(http, path);
    assert_eq!(status, 200, "{path}: {v}");
    assert_eq!(v["errors"], Value::Null, "{path}: {v}");
    assert_eq!(
        (&v["limit"], &v["offset"]),
        (&json!(0), &json!(0)),
        "{path}"
    );
    assert_eq!(
        v["total"],
        json!(v["data"].as_array().map_or(0, |a| a.len())),
        "{path}"
    );
    v["data"].clone()
}

fn error(http: SocketAddr, path: &str, status: u16) -> String {
    let (got, v) = get(http, path);
    assert_eq!(got, status, "{path}: {v}");
    assert_eq!(v["data"], Value::Null, "{path}");
    assert_eq!(v["errors"][0]["code"], json!(status), "{path}");
    v["errors"][0]["msg"].as_str().unwrap().to_string()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn tag<'a>(tags: &'a Value, key: &str) -> &'a Value {
    tags.as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .unwrap_or_else(|| panic!("no tag {key} in {tags}"))
}

fn span_named<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operationName"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace}"))
}

/// Checks one checkout trace as sent by send_spans.py.
fn check_checkout(trace: &Value, id: &str, user: &str) {
    assert_eq!(trace["traceID"], id);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 3, "{trace}");
    let root = span_named(trace, "GET /checkout");
    let pay = span_named(trace, "POST /pay");
    let charge = span_named(trace, "charge");
    assert_eq!(root["references"], json!([]));
    assert_eq!(
        pay["references"],
        json!([{"refType": "CHILD_OF", "traceID": id, "spanID": root["spanID"]}])
    );
    assert_eq!(
        charge["references"],
        json!([{"refType": "CHILD_OF", "traceID": id, "spanID": pay["spanID"]}])
    );
    for s in [root, pay, charge] {
        assert_eq!(s["traceID"], id);
        assert_eq!(s["spanID"].as_str().unwrap().len(), 16);
        assert_eq!(s["warnings"], Value::Null);
        assert!(
            s["startTime"].as_i64().unwrap() > 1_600_000_000_000_000,
            "µs: {s}"
        );
    }
    assert!(root["duration"].as_i64().unwrap() >= 120_000, "{root}");
    assert!(root["startTime"].as_i64() <= pay["startTime"].as_i64());
    let t = &root["tags"];
    assert_eq!(tag(t, "http.method")["value"], "GET");
    assert_eq!(
        tag(t, "http.status_code"),
        &json!({"key": "http.status_code", "type": "int64", "value": 200})
    );
    assert_eq!(tag(t, "user.id")["value"], user);
    assert_eq!(tag(t, "span.kind")["value"], "server");
    assert_eq!(tag(t, "otel.scope.name")["value"], "sonde-test");
    assert_eq!(tag(&pay["tags"], "span.kind")["value"], "client");
    assert_eq!(
        tag(&pay["tags"], "retry"),
        &json!({"key": "retry", "type": "bool", "value": false})
    );
    let ct = &charge["tags"];
    assert_eq!(
        tag(ct, "amount"),
        &json!({"key": "amount", "type": "float64", "value": 12.5})
    );
    assert_eq!(
        tag(ct, "error"),
        &json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(tag(ct, "otel.status_code")["value"], "ERROR");
    assert_eq!(tag(ct, "otel.status_description")["value"], "declined");
    let log = &charge["logs"][0];
    assert!(log["timestamp"].as_i64().unwrap() >= charge["startTime"].as_i64().unwrap());
    assert_eq!(tag(&log["fields"], "event")["value"], "card declined");
    assert_eq!(tag(&log["fields"], "code")["value"], 51);
    // Processes: the services with their Kubernetes resource attributes.
    let procs = trace["processes"].as_object().unwrap();
    assert_eq!(procs.len(), 2, "{trace}");
    let front = &procs[root["processID"].as_str().unwrap()];
    let payp = &procs[charge["processID"].as_str().unwrap()];
    assert_eq!(pay["processID"], root["processID"]);
    assert_eq!(front["serviceName"], "frontend");
    assert_eq!(payp["serviceName"], "payments");
    for (p, svc) in [(front, "frontend"), (payp, "payments")] {
        assert_eq!(tag(&p["tags"], "k8s.namespace.name")["value"], "shop");
        assert_eq!(
            tag(&p["tags"], "k8s.pod.name")["value"],
            format!("{svc}-7d9f")
        );
        assert_eq!(tag(&p["tags"], "k8s.container.name")["value"], svc);
        assert_eq!(tag(&p["tags"], "k8s.node.name")["value"], "node-1");
        assert_eq!(tag(&p["tags"], "telemetry.sdk.language")["value"], "python");
        assert!(
            p["tags"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["key"] != "service.name")
        );
    }
    assert_eq!(trace["warnings"], Value::Null);
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn search_ids(http: SocketAddr, query: &str) -> Vec<String> {
    let mut ids: Vec<String> = data(http, &format!("/api/traces?{query}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn sdk_traces_come_back_whole_and_are_searchable() {
    let c = Collector::start(&[]);
    let a = send_grpc(c.grpc, &["checkout"]);
    let b = send_http(c.otlp_http, &["checkout"]);
    assert_eq!(
        (&a["result"], &b["result"]),
        (&json!("SUCCESS"), &json!("SUCCESS"))
    );
    let (a, b) = (
        a["trace_ids"][0].as_str().unwrap().to_string(),
        b["trace_ids"][0].as_str().unwrap().to_string(),
    );
    for (id, user) in [(&a, "grpc"), (&b, "http")] {
        let d = data(c.http, &format!("/api/traces/{id}"));
        assert_eq!(d.as_array().unwrap().len(), 1);
        check_checkout(&d[0], id, user);
    }

    let services = data(c.http, "/api/services");
    assert_eq!(services, json!(["frontend", "payments"]));
    assert_eq!(
        data(c.http, "/api/services/frontend/operations"),
        json!(["GET /checkout", "POST /pay"])
    );
    assert_eq!(
        data(c.http, "/api/operations?service=frontend&spanKind=client"),
        json!([{"name": "POST /pay", "spanKind": "client"}])
    );

    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    let (start, end) = (now_us() - 600_000_000, now_us() + 1_000_000);
    let win = format!("start={start}&end={end}&limit=20");
    assert_eq!(search_ids(c.http, &format!("service=frontend&{win}")), both);
    // Each search returns whole traces, in the same JSON as by id.
    let found = data(c.http, &format!("/api/traces?service=payments&{win}"));
    for t in found.as_array().unwrap() {
        let id = t["traceID"].as_str().unwrap();
        check_checkout(t, id, if id == a { "grpc" } else { "http" });
    }
    let op = enc("GET /checkout");
    assert_eq!(
        search_ids(c.http, &format!("service=frontend&operation={op}&{win}")),
        both
    );
    assert!(search_ids(c.http, &format!("service=payments&operation={op}&{win}")).is_empty());
    // Tags as Grafana sends them (JSON) and as typed in Jaeger UI (logfmt).
    let grafana = enc(r#"{"user.id":"grpc"}"#);
    assert_eq!(
        search_ids(c.http, &format!("service=frontend&tags={grafana}&{win}")),
        vec![a.clone()]
    );
    let logfmt = enc("user.id=http http.method=GET");
    assert_eq!(
        search_ids(c.http, &format!("service=frontend&tags={logfmt}&{win}")),
        vec![b.clone()]
    );
    let process_tag = enc(r#"{"k8s.pod.name":"payments-7d9f","error":"true"}"#);
    assert_eq!(
        search_ids(
            c.http,
            &format!("service=payments&tags={process_tag}&{win}")
        ),
        both
    );
    assert_eq!(
        search_ids(c.http, &format!("service=frontend&minDuration=100ms&{win}")),
        both
    );
    assert!(search_ids(c.http, &format!("service=frontend&minDuration=1.5s&{win}")).is_empty());
    // The 100 ms+ root is excluded by maxDuration, but the short client span matches.
    assert_eq!(
        search_ids(
            c.http,
            &format!("service=frontend&operation={op}&maxDuration=50ms&{win}")
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        search_ids(c.http, &format!("service=frontend&maxDuration=50ms&{win}")),
        both
    );
    assert_eq!(
        data(
            c.http,
            &format!("/api/traces?service=frontend&start={start}&end={end}&limit=1")
        )
        .as_array()
        .unwrap()
        .len(),
        1
    );
    let future = format!(
        "start={}&end={}",
        now_us() + 60_000_000,
        now_us() + 120_000_000
    );
    assert!(search_ids(c.http, &format!("service=frontend&{future}")).is_empty());
    assert_eq!(
        search_ids(c.http, &format!("traceID={a}&traceID={b}")),
        both
    );

    let deps = data(
        c.http,
        &format!(
            "/api/dependencies?endTs={}&lookback=3600000",
            now_us() / 1000 + 1000
        ),
    );
    assert_eq!(
        deps,
        json!([{"parent": "frontend", "child": "payments", "callCount": 2}])
    );
    let old = now_us() / 1000 - 7_200_000;
    assert_eq!(
        data(
            c.http,
            &format!("/api/dependencies?endTs={old}&lookback=3600000")
        ),
        json!([])
    );

    // Bad parameters: 400 with Jaeger's error shape; unknown trace: 404.
    assert!(error(c.http, "/api/traces?limit=5", 400).contains("'service' is required"));
    assert!(
        error(c.http, "/api/traces?service=frontend&minDuration=abc", 400).contains("minDuration")
    );
    assert!(
        error(
            c.http,
            "/api/traces?service=frontend&minDuration=2s&maxDuration=1s",
            400
        )
        .contains("maxDuration")
    );
    assert!(
        error(
            c.http,
            &format!("/api/traces?service=frontend&tags={}", enc("{oops")),
            400
        )
        .contains("tags")
    );
    assert!(error(c.http, "/api/traces?service=frontend&start=soon", 400).contains("start"));
    assert!(error(c.http, "/api/traces/not-hex", 400).contains("trace id"));
    assert!(error(c.http, "/api/dependencies?endTs=x", 400).contains("endTs"));
    assert_eq!(
        error(c.http, &format!("/api/traces/{}", "ab".repeat(16)), 404),
        "trace not found"
    );

    assert_eq!(c.metric("sonde_collector_trace_stored_spans "), 6.0);
    assert!(
        c.metric("sonde_collector_spans_received_total") >= 6.0,
        "{}",
        c.own_metrics()
    );
}

fn resource_spans(service: Option<&str>, spans: Vec<Span>) -> ResourceSpans {
    let attributes = service
        .map(|s| {
            vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s.into())),
                }),
            }]
        })
        .unwrap_or_default();
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn span(trace: u8, id: u8) -> Span {
    let start = (now_us() as u64 - 5_000_000) * 1000;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("op{id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Default::default()
    }
}

fn post(c: SocketAddr, ctype: &str, body: &[u8]) -> api_support::HttpResponse {
    request(c, "POST", "/v1/traces", &[("Content-Type", ctype)], body).unwrap()
}

/// The `google.rpc.Status` message of an OTLP/HTTP protobuf error.
fn status_message(body: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    RpcStatus::decode(body).expect("google.rpc.Status").message
}

#[test]
fn bad_payloads_and_oversized_traces_are_refused_whole() {
    let c = Collector::start(&[
        "--traces-max-spans-per-trace",
        "5",
        "--max-request-bytes",
        "100000",
    ]);
    // The SDK's own exporters: one span too many fails, the limit itself passes.
    let big = send_http(c.otlp_http, &["big", "6"]);
    assert_eq!(big["result"], "FAILURE", "{big}");
    let id = big["trace_ids"][0].as_str().unwrap();
    assert_eq!(
        error(c.http, &format!("/api/traces/{id}"), 404),
        "trace not found"
    );
    let fits = send_grpc(c.grpc, &["big", "5"]);
    assert_eq!(fits["result"], "SUCCESS", "{fits}");
    let id = fits["trace_ids"][0].as_str().unwrap();
    assert_eq!(
        data(c.http, &format!("/api/traces/{id}"))[0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // A request with a good trace and one over the limit stores neither.
    let good = resource_spans(Some("good"), vec![span(1, 1)]);
    let over = resource_spans(Some("good"), (1..=6).map(|i| span(2, i)).collect());
    let req = ExportTraceServiceRequest {
        resource_spans: vec![good.clone(), over],
    };
    let r = post(c.otlp_http, "application/x-protobuf", &req.encode_to_vec());
    assert_eq!(r.status, 400, "{}", r.text());
    let msg = status_message(&r.body);
    assert!(
        msg.contains("02020202020202020202020202020202")
            && msg.contains("6 spans")
            && msg.contains("--traces-max-spans-per-trace (5)"),
        "{msg}"
    );
    // Spread over two requests, the second is refused and the first stays.
    let first = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            Some("good"),
            (1..=3).map(|i| span(3, i)).collect(),
        )],
    };
    assert_eq!(
        post(
            c.otlp_http,
            "application/x-protobuf",
            &first.encode_to_vec()
        )
        .status,
        200
    );
    let second = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            Some("good"),
            (4..=6).map(|i| span(3, i)).collect(),
        )],
    };
    let r = post(
        c.otlp_http,
        "application/x-protobuf",
        &second.encode_to_vec(),
    );
    assert!(
        status_message(&r.body).contains("6 spans (3 stored, 3 in this request)"),
        "{}",
        r.text()
    );

    // Bad ids, a missing service, undecodable bodies.
    let mut bad_id = span(4, 1);
    bad_id.span_id = vec![1; 4];
    let req = ExportTraceServiceRequest {
        resource_spans: vec![good.clone(), resource_spans(Some("good"), vec![bad_id])],
    };
    let r = post(c.otlp_http, "application/x-protobuf", &req.encode_to_vec());
    assert_eq!(r.status, 400);
    assert!(
        status_message(&r.body)
            .contains("resourceSpans[1].scopeSpans[0].spans[0].spanId: want 8 bytes, got 4"),
        "{}",
        r.text()
    );
    let req = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(None, vec![span(5, 1)])],
    };
    let r = post(c.otlp_http, "application/x-protobuf", &req.encode_to_vec());
    assert_eq!(r.status, 400);
    assert!(
        status_message(&r.body).contains("service.name"),
        "{}",
        r.text()
    );
    let r = post(
        c.otlp_http,
        "application/x-protobuf",
        b"\xff\xff\xff garbage",
    );
    assert_eq!(r.status, 400);
    assert!(status_message(&r.body).contains("ExportTraceServiceRequest"));
    let json_body = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "good"}}]},
        "scopeSpans": [{"spans": [{"traceId": "0606", "spanId": "0606060606060606", "name": "x",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]});
    let r = post(
        c.otlp_http,
        "application/json",
        json_body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("spans[0].traceId: want 32 hex digits"),
        "{v}"
    );
    let r = post(c.otlp_http, "text/plain", b"hello");
    assert_eq!(r.status, 415);
    let huge = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            Some("good"),
            (0..2000).map(|i| span(7, (i % 250) as u8 + 1)).collect(),
        )],
    };
    let r = post(c.otlp_http, "application/x-protobuf", &huge.encode_to_vec());
    assert_eq!(r.status, 413, "{}", r.text());

    // gRPC refuses the same way, with INVALID_ARGUMENT and the message.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap();
        let mut s = span(8, 1);
        s.end_time_unix_nano = 1;
        client
            .export(ExportTraceServiceRequest {
                resource_spans: vec![resource_spans(Some("good"), vec![s])],
            })
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("endTimeUnixNano"), "{status:?}");

    // Nothing of any refused request was stored.
    for t in [1u8, 2, 4, 5, 6, 7, 8] {
        let id = format!("{t:02x}").repeat(16);
        assert_eq!(
            error(c.http, &format!("/api/traces/{id}"), 404),
            "trace not found",
            "trace {id}"
        );
    }
    assert_eq!(
        data(c.http, &format!("/api/traces/{}", "03".repeat(16)))[0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let m = c.own_metrics();
    for want in [
        r#"sonde_collector_spans_rejected_total{reason="span_limit"} 16"#,
        r#"sonde_collector_spans_rejected_total{reason="invalid_span"}"#,
        r#"sonde_collector_spans_rejected_total{reason="malformed"}"#,
        r#"sonde_collector_trace_write_requests_total{protocol="otlp_grpc",outcome="invalid_span"} 1"#,
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
}

#[test]
fn acknowledged_spans_survive_kill_9_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, log) = (dir.path().join("data"), dir.path().join("collector.log"));
    let c = Running::start(&data_dir, &log);
    let sent = send_http(c.otlp_http, &["checkout"]);
    assert_eq!(sent["result"], "SUCCESS");
    let a = sent["trace_ids"][0].as_str().unwrap().to_string();
    drop(c); // SIGKILL right after the acknowledgement: only the WAL has it.

    let c = Running::start(&data_dir, &log);
    check_checkout(&data(c.http, &format!("/api/traces/{a}"))[0], &a, "http");
    let sent = send_http(c.otlp_http, &["checkout"]);
    let b = sent["trace_ids"][0].as_str().unwrap().to_string();
    assert_eq!(
        c.stop(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // A clean stop wrote a segment and left the WAL with nothing to replay.
    let segments = std::fs::read_dir(data_dir.join("traces/segments"))
        .unwrap()
        .count();
    assert!(segments >= 1);

    let c = Running::start(&data_dir, &log);
    check_checkout(&data(c.http, &format!("/api/traces/{a}"))[0], &a, "http");
    check_checkout(&data(c.http, &format!("/api/traces/{b}"))[0], &b, "http");
    assert_eq!(
        data(c.http, "/api/services"),
        json!(["frontend", "payments"])
    );
}
