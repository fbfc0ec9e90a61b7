//! Logs against the real binary: Loki push (JSON, gzip JSON, snappy
//! protobuf), OTLP logs (HTTP protobuf and JSON on both ports, gRPC with
//! zstd) read back through Loki's HTTP API with the exact lines; malformed
//! writes are refused with 4xx and change nothing; tail over a websocket;
//! a restart keeps everything.

mod api_support;

use std::{io::Write, net::SocketAddr, time::Duration};

use api_support::{Collector, Running, enc, request};
use opentelemetry_proto::tonic::{
    collector::logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use prost::Message;
use serde_json::{Value, json};
use sonde_collector::logs::ingest::loki_proto::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

fn push_json(http: SocketAddr, body: &Value) -> api_support::HttpResponse {
    request(
        http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

fn loki_proto(labels: &str, lines: &[(i64, &str)]) -> Vec<u8> {
    PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.into(),
            entries: lines
                .iter()
                .map(|(ts, l)| EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: ts / 1_000_000_000,
                        nanos: (ts % 1_000_000_000) as i32,
                    }),
                    line: l.to_string(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "origin".into(),
                        value: "proto".into(),
                    }],
                })
                .collect(),
            hash: 0,
        }],
    }
    .encode_to_vec()
}

fn push_proto(http: SocketAddr, body: &[u8]) -> api_support::HttpResponse {
    request(
        http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .unwrap()
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
    }
}

/// One pod's lines as the agent sends them.
fn otlp_request(pod: &str, lines: &[(i64, &str, &str)]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("k8s.namespace.name", "shop"),
                    kv("k8s.pod.name", pod),
                    kv("k8s.container.name", "app"),
                    kv("k8s.node.name", "node-1"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: lines
                    .iter()
                    .map(|(ts, stream, line)| LogRecord {
                        time_unix_nano: *ts as u64,
                        observed_time_unix_nano: *ts as u64 + 1000,
                        body: s(line),
                        attributes: vec![kv("log.iostream", stream)],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A Loki API GET answered 200 with JSON.
fn loki(http: SocketAddr, path_and_query: &str) -> Value {
    let r = request(http, "GET", path_and_query, &[], b"").unwrap();
    assert_eq!(r.status, 200, "{path_and_query}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path_and_query}: {e}"))
}

/// `(labels, [(ts, line)])` of a forward query_range over the last 10 minutes.
fn read(http: SocketAddr, query: &str) -> Vec<(Value, Vec<(String, String)>)> {
    let now = now_ns();
    let v = loki(
        http,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&direction=forward&limit=1000",
            enc(query),
            now - 600_000_000_000,
            now + 60_000_000_000
        ),
    );
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "streams", "{v}");
    assert!(v["data"]["stats"].is_object(), "{v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_string(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (s["stream"].clone(), values)
        })
        .collect()
}

/// The lines of every result stream, oldest first (structured metadata can
/// split one pushed stream into several result streams).
fn lines(http: SocketAddr, query: &str) -> Vec<String> {
    let mut all: Vec<(i64, String)> = read(http, query)
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().map(|(t, l)| (t.parse().unwrap(), l)))
        .collect();
    all.sort_by_key(|(t, _)| *t);
    all.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn every_protocol_reads_back_exactly() {
    let c = Collector::start(&[]);
    let t = now_ns() - 60_000_000_000;

    // Loki JSON, with structured metadata on one line.
    let r = push_json(
        c.http,
        &json!({"streams":[{"stream":{"app":"json","env":"test"},"values":[
            [(t + 1).to_string(), "json one"],
            [(t + 2).to_string(), "json two", {"trace_id":"abc"}]]}]}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // Loki JSON, gzip.
    let body =
        json!({"streams":[{"stream":{"app":"gz"},"values":[[(t + 3).to_string(), "gzipped"]]}]});
    let r = request(
        c.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(body.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    // Loki snappy protobuf.
    let r = push_proto(
        c.http,
        &snappy(&loki_proto(
            r#"{app="proto", env="test"}"#,
            &[(t + 5, "proto b"), (t + 4, "proto a")],
        )),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // OTLP/HTTP protobuf on the OTLP port, JSON on the main port.
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        &otlp_request(
            "web-1",
            &[(t + 6, "stdout", "otlp out"), (t + 7, "stderr", "otlp err")],
        )
        .encode_to_vec(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let otlp_json = json!({"resourceLogs":[{"resource":{"attributes":[
        {"key":"k8s.namespace.name","value":{"stringValue":"shop"}},
        {"key":"k8s.pod.name","value":{"stringValue":"web-2"}}]},
        "scopeLogs":[{"logRecords":[
            {"timeUnixNano":(t + 8).to_string(),"body":{"stringValue":"from json"},
             "attributes":[{"key":"log.iostream","value":{"stringValue":"stdout"}}],
             "traceId":"5b8efff798038103d269b633813fc60c"}]}]}]});
    let r = request(
        c.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        otlp_json.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!((r.status, r.text()), (200, "{}".to_string()));
    // OTLP/gRPC with zstd, as the agent sends.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Zstd);
        let resp = client
            .export(otlp_request("web-3", &[(t + 9, "stdout", "over grpc")]))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.partial_success.is_none());
    });

    // Exact lines, in order, with the contract's labels.
    assert_eq!(lines(c.http, r#"{app="json"}"#), ["json one", "json two"]);
    let json_streams = read(c.http, r#"{app="json"}"#);
    // Structured metadata shows in the result labels, as Loki does.
    assert!(
        json_streams.iter().any(
            |(l, v)| l["trace_id"] == "abc" && v == &[((t + 2).to_string(), "json two".into())]
        ),
        "{json_streams:?}"
    );
    assert_eq!(lines(c.http, r#"{app="gz"}"#), ["gzipped"]);
    assert_eq!(lines(c.http, r#"{app="proto"}"#), ["proto a", "proto b"]);
    let web1 = read(c.http, r#"{pod="web-1"}"#);
    assert_eq!(web1.len(), 2, "{web1:?}");
    for (labels, values) in &web1 {
        let stream = labels["stream"].as_str().unwrap();
        assert_eq!(labels["namespace"], "shop");
        assert_eq!(labels["container"], "app");
        assert_eq!(labels["node"], "node-1");
        let want = if stream == "stdout" {
            ((t + 6).to_string(), "otlp out".to_string())
        } else {
            ((t + 7).to_string(), "otlp err".to_string())
        };
        assert_eq!(values, &[want]);
    }
    assert_eq!(lines(c.http, r#"{pod="web-2"}"#), ["from json"]);
    assert_eq!(
        lines(c.http, r#"{pod="web-3", stream="stdout"}"#),
        ["over grpc"]
    );
    // Backward (the default) returns newest first; limit cuts.
    let v = loki(
        c.http,
        &format!(
            "/loki/api/v1/query_range?query={}&limit=1",
            enc(r#"{app="proto"}"#)
        ),
    );
    assert_eq!(v["data"]["result"][0]["values"][0][1], "proto b", "{v}");

    // Metadata endpoints.
    let labels = loki(c.http, "/loki/api/v1/labels");
    assert_eq!(labels["status"], "success");
    for name in [
        "app",
        "env",
        "namespace",
        "pod",
        "container",
        "node",
        "stream",
    ] {
        assert!(
            labels["data"].as_array().unwrap().iter().any(|n| n == name),
            "{name} missing: {labels}"
        );
    }
    assert_eq!(
        loki(c.http, "/loki/api/v1/label/app/values")["data"],
        json!(["gz", "json", "proto"])
    );
    assert_eq!(
        loki(
            c.http,
            &format!(
                "/loki/api/v1/label/pod/values?query={}",
                enc(r#"{namespace="shop"}"#)
            )
        )["data"],
        json!(["web-1", "web-2", "web-3"])
    );
    let series = loki(
        c.http,
        &format!("/loki/api/v1/series?match[]={}", enc(r#"{env="test"}"#)),
    );
    assert_eq!(
        series["data"],
        json!([{"app":"json","env":"test"},{"app":"proto","env":"test"}]),
        "{series}"
    );
    // A metric query over the pushed lines.
    let v = loki(
        c.http,
        &format!(
            "/loki/api/v1/query?query={}",
            enc(r#"sum(count_over_time({namespace="shop"}[10m]))"#)
        ),
    );
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "4", "{v}");

    let m = c.own_metrics();
    assert!(
        m.lines()
            .any(|l| l == "sonde_collector_log_entries_received_total 9"),
        "{m}"
    );
}

#[test]
fn malformed_writes_are_refused_and_change_nothing() {
    let c = Collector::start(&["--max-request-bytes", "4KiB"]);
    let t = now_ns() - 60_000_000_000;
    let ts = t.to_string();
    // (what, headers, body, status, part of the message)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad JSON",
            vec![("Content-Type", "application/json")],
            b"{\"streams\":[".to_vec(),
            400,
            "invalid JSON",
        ),
        (
            "bad timestamp",
            vec![("Content-Type", "application/json")],
            json!({"streams":[{"stream":{"app":"bad"},"values":[[ts, "ok"],["yesterday","x"]]}]})
                .to_string()
                .into_bytes(),
            400,
            "streams[0].values[1][0]",
        ),
        (
            "bad label name",
            vec![("Content-Type", "application/json")],
            json!({"streams":[{"stream":{"app":"bad","bad-name":"x"},"values":[[ts, "x"]]}]})
                .to_string()
                .into_bytes(),
            400,
            "bad-name",
        ),
        (
            "too old",
            vec![("Content-Type", "application/json")],
            json!({"streams":[{"stream":{"app":"bad"},"values":[[ts, "x"],["1000000000000000000","old"]]}]})
                .to_string()
                .into_bytes(),
            400,
            "",
        ),
        (
            "bad labels in protobuf",
            vec![("Content-Type", "application/x-protobuf")],
            snappy(&loki_proto(r#"{app="bad",}x"#, &[(t, "x")])),
            400,
            "streams[0].labels",
        ),
        (
            "garbage protobuf",
            vec![("Content-Type", "application/x-protobuf")],
            snappy(b"\xff\xff\xff\xff\xff garbage"),
            400,
            "protobuf PushRequest",
        ),
        (
            "not snappy",
            vec![("Content-Type", "application/x-protobuf")],
            b"\xff\xff\xff\xff\xff\xff\xff".to_vec(),
            400,
            "snappy",
        ),
        (
            "oversized",
            vec![("Content-Type", "application/json")],
            json!({"streams":[{"stream":{"app":"bad"},"values":[[ts, "x".repeat(8192)]]}]})
                .to_string()
                .into_bytes(),
            413,
            "--max-request-bytes",
        ),
        (
            "oversized after gunzip",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            gzip(
                json!({"streams":[{"stream":{"app":"bad"},"values":[[ts, "x".repeat(8192)]]}]})
                    .to_string()
                    .as_bytes(),
            ),
            413,
            "decompressed",
        ),
        (
            "unsupported type",
            vec![("Content-Type", "text/plain")],
            b"hello".to_vec(),
            415,
            "Content-Type",
        ),
    ];
    for (what, headers, body, status, want) in &cases {
        let r = request(c.http, "POST", "/loki/api/v1/push", headers, body).unwrap();
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert!(r.text().contains(want), "{what}: {}", r.text());
    }
    // OTLP: garbage protobuf, bad JSON field, past-2262 timestamp.
    let otlp_cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/x-protobuf", b"\x0a\xff\xff\xff".to_vec()),
        (
            "application/json",
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"noon"}]}]}]}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"app","value":{"stringValue":"bad"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"18446744073709551615"}]}]}]}"#.to_vec(),
        ),
    ];
    for (ctype, body) in &otlp_cases {
        let r = request(
            c.otlp_http,
            "POST",
            "/v1/logs",
            &[("Content-Type", ctype)],
            body,
        )
        .unwrap();
        assert_eq!(r.status, 400, "{ctype}: {}", r.text());
    }
    // Nothing of any refused write is stored.
    let v = loki(c.http, "/loki/api/v1/label/app/values");
    assert_eq!(v["data"], json!([]), "{v}");
    assert!(lines(c.http, r#"{app="bad"}"#).is_empty());
    // Every refusal is counted by reason.
    let m = c.own_metrics();
    let rejected: f64 = m
        .lines()
        .filter(|l| l.starts_with("sonde_collector_log_entries_rejected_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rejected >= (cases.len() + otlp_cases.len()) as f64, "{m}");
    assert!(
        m.contains(r#"sonde_collector_log_entries_rejected_total{reason="malformed"}"#),
        "{m}"
    );
}

#[test]
fn bad_queries_get_loki_errors() {
    let c = Collector::start(&["--logs-max-lines", "50"]);
    for (q, status, want) in [
        (
            format!("/loki/api/v1/query_range?query={}", enc("{app=")),
            400,
            "parse error",
        ),
        (
            "/loki/api/v1/query_range".to_string(),
            400,
            "query parameter is required",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&limit=51",
                enc(r#"{a="b"}"#)
            ),
            400,
            "max entries limit per query exceeded",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=soon",
                enc(r#"{a="b"}"#)
            ),
            400,
            "invalid start parameter",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=10&end=5",
                enc(r#"{a="b"}"#)
            ),
            400,
            "end timestamp",
        ),
        (
            format!("/loki/api/v1/series?match[]={}", enc("rate(x[1m])")),
            400,
            "invalid match[] parameter",
        ),
    ] {
        let r = request(c.http, "GET", &q, &[], b"").unwrap();
        assert_eq!(r.status, status, "{q}: {}", r.text());
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{q}"
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["code"].as_u64()),
            (Some("error"), Some(status as u64))
        );
        assert!(v["message"].as_str().unwrap().contains(want), "{q}: {v}");
    }
    // POST form queries work as GET.
    let r = request(
        c.http,
        "POST",
        "/loki/api/v1/query_range",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("query={}&limit=5", enc(r#"{a="b"}"#)).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // What Grafana probes: "Save & test" runs vector(1)+vector(1) as an instant query.
    let v = loki(
        c.http,
        &format!("/loki/api/v1/query?query={}", enc("vector(1)+vector(1)")),
    );
    assert_eq!(
        (
            &v["data"]["resultType"],
            &v["data"]["result"][0]["value"][1]
        ),
        (&json!("vector"), &json!("2")),
        "{v}"
    );
    let b = loki(c.http, "/loki/api/v1/status/buildinfo");
    assert!(b["version"].is_string(), "{b}");
    let r = request(c.http, "GET", "/ready", &[], b"").unwrap();
    assert_eq!((r.status, r.text().trim()), (200, "ready"));
}

#[test]
fn tail_sends_backfill_then_new_lines_and_does_not_block_shutdown() {
    let c = Collector::start(&[]);
    let t = now_ns() - 5_000_000_000;
    let r = push_json(
        c.http,
        &json!({"streams":[{"stream":{"app":"tail"},"values":[[t.to_string(), "before"]]}]}),
    );
    assert_eq!(r.status, 204);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _open_socket = rt.block_on(async {
        use futures_util::StreamExt;
        let url = format!(
            "ws://{}/loki/api/v1/tail?query={}",
            c.http,
            enc(r#"{app="tail"} != "filtered""#)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut next = async || -> Value {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                    .await
                    .expect("a tail message within 10s")
                    .expect("socket open")
                    .expect("no socket error");
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    return serde_json::from_str(&t).unwrap();
                }
            }
        };
        let first = next().await;
        assert_eq!(
            first["streams"][0]["values"],
            json!([[t.to_string(), "before"]]),
            "{first}"
        );
        let http = c.http;
        let t2 = now_ns();
        tokio::task::spawn_blocking(move || {
            let r = push_json(
                http,
                &json!({"streams":[{"stream":{"app":"tail"},"values":[
                    [t2.to_string(), "filtered out"], [(t2 + 1).to_string(), "after"]]},
                    {"stream":{"app":"other"},"values":[[t2.to_string(), "else"]]}]}),
            );
            assert_eq!(r.status, 204);
        })
        .await
        .unwrap();
        let msg = next().await;
        assert_eq!(
            msg["streams"],
            json!([{"stream":{"app":"tail"},"values":[[(t2 + 1).to_string(), "after"]]}]),
            "{msg}"
        );
        assert_eq!(msg["dropped_entries"], json!([]));
        ws
    });
    // An open tail does not hold up a clean stop.
    let mut c = c;
    assert_eq!(c.terminate(), Some(0), "{}", c.log());
    drop(_open_socket);
}

#[test]
fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("collector.log"));
    let t = now_ns() - 30_000_000_000;
    let c = Running::start(&data, &log);
    let r = push_json(
        c.http,
        &json!({"streams":[{"stream":{"app":"keep"},"values":[[t.to_string(), "one"],[(t + 1).to_string(), "two"]]}]}),
    );
    assert_eq!(r.status, 204);
    let r = push_proto(
        c.http,
        &snappy(&loki_proto(r#"{app="keep2"}"#, &[(t + 2, "three")])),
    );
    assert_eq!(r.status, 204);
    assert_eq!(c.stop(), Some(0));
    assert!(data.join("logs").is_dir());

    // A clean stop flushed; a second round is killed hard (only the WAL has it).
    let c = Running::start(&data, &log);
    assert_eq!(lines(c.http, r#"{app="keep"}"#), ["one", "two"]);
    assert_eq!(lines(c.http, r#"{app="keep2"}"#), ["three"]);
    let r = push_json(
        c.http,
        &json!({"streams":[{"stream":{"app":"keep"},"values":[[(t + 3).to_string(), "four"]]}]}),
    );
    assert_eq!(r.status, 204);
    drop(c); // SIGKILL

    let c = Running::start(&data, &log);
    assert_eq!(lines(c.http, r#"{app="keep"}"#), ["one", "two", "four"]);
    assert_eq!(
        loki(c.http, "/loki/api/v1/label/app/values")["data"],
        json!(["keep", "keep2"])
    );
}

#[test]
fn stream_limit_refuses_the_whole_write() {
    let c = Collector::start(&["--logs-max-streams", "2"]);
    let t = now_ns() - 10_000_000_000;
    let three = json!({"streams":[
        {"stream":{"app":"a"},"values":[[t.to_string(), "a"]]},
        {"stream":{"app":"b"},"values":[[t.to_string(), "b"]]},
        {"stream":{"app":"c"},"values":[[t.to_string(), "c"]]}]});
    let r = push_json(c.http, &three);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("too many streams"), "{}", r.text());
    assert_eq!(
        loki(c.http, "/loki/api/v1/label/app/values")["data"],
        json!([])
    );
    let r = push_json(
        c.http,
        &json!({"streams":[{"stream":{"app":"a"},"values":[[t.to_string(), "a"]]},
                           {"stream":{"app":"b"},"values":[[t.to_string(), "b"]]}]}),
    );
    assert_eq!(r.status, 204, "{}", r.text());

    // OTLP/gRPC: the limit is RESOURCE_EXHAUSTED, a bad record INVALID_ARGUMENT.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let e = client
            .export(otlp_request("new-pod", &[(t, "stdout", "x")]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
        let mut past_2262 = otlp_request("a", &[(t, "stdout", "x")]);
        past_2262.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano = u64::MAX;
        let e = client.export(past_2262).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    });
    assert_eq!(
        loki(c.http, "/loki/api/v1/label/app/values")["data"],
        json!(["a", "b"])
    );
    assert!(loki(c.http, "/loki/api/v1/label/pod/values")["data"] == json!([]));
    let m = c.own_metrics();
    assert!(
        m.contains(r#"sonde_collector_log_entries_rejected_total{reason="stream_limit"} 4"#),
        "{m}"
    );
    assert!(m.contains("sonde_collector_log_streams 2"), "{m}");
}
