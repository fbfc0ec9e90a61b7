//! OTLP metrics against the real binary: HTTP protobuf (with gzip), HTTP JSON
//! and gRPC writes are mapped as the contract says and queryable; refusals
//! follow the OTLP spec (google.rpc.Status, partial success, gRPC codes).

mod api_support;

use std::io::Write;

use api_support::{Collector, enc, now_ms, request};
use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_client::MetricsServiceClient,
    },
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
    },
    resource::v1::Resource,
};
use prost::Message;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

fn request_with(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "sonde-agent"),
                    kv("service.instance.id", "node-1"),
                    kv("k8s.node.name", "node-1"),
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

fn number(t_ms: i64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t_ms as u64 * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn sum(name: &str, temporality: AggregationTemporality, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn http_protobuf_gzip_and_partial_success() {
    let c = Collector::start(&[]);
    let t = now_ms() - 30_000;
    let req = request_with(vec![
        sum(
            "sonde.net.bytes",
            AggregationTemporality::Cumulative,
            vec![number(t, 42.0, vec![kv("device", "eth0")])],
        ),
        sum(
            "deltas",
            AggregationTemporality::Delta,
            vec![number(t, 1.0, vec![]), number(t, 2.0, vec![])],
        ),
        Metric {
            name: "req_seconds".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: t as u64 * 1_000_000,
                    count: 4,
                    sum: Some(1.25),
                    bucket_counts: vec![1, 2, 1],
                    explicit_bounds: vec![0.1, 0.5],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
    ]);
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/metrics",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&req.encode_to_vec()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    let resp = ExportMetricsServiceResponse::decode(r.body.as_slice()).unwrap();
    let partial = resp
        .partial_success
        .expect("partial success for the delta sum");
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("deltas"),
        "{}",
        partial.error_message
    );

    let at = t / 1000;
    let d = c.data(&format!(
        "/api/v1/query?query=sonde_net_bytes_total&time={at}"
    ));
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"__name__": "sonde_net_bytes_total", "job": "sonde-agent", "instance": "node-1", "node": "node-1", "device": "eth0"})
    );
    assert_eq!(d["result"][0]["value"][1], "42");
    let d = c.data(&format!(
        "/api/v1/query?query={}&time={at}",
        enc("req_seconds_bucket")
    ));
    let mut buckets: Vec<(String, String)> = d["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["le"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    buckets.sort();
    assert_eq!(
        buckets,
        vec![
            ("+Inf".into(), "4".into()),
            ("0.1".into(), "1".into()),
            ("0.5".into(), "3".into())
        ]
    );
    assert_eq!(
        c.data(&format!("/api/v1/query?query=req_seconds_sum&time={at}"))["result"][0]["value"][1],
        "1.25"
    );
    assert_eq!(
        c.data("/api/v1/series?match[]=deltas")
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        c.data("/api/v1/metadata?metric=req_seconds"),
        serde_json::json!({"req_seconds": [{"type": "histogram", "help": "", "unit": "s"}]})
    );
    assert_eq!(
        c.data("/api/v1/metadata?metric=sonde_net_bytes_total")["sonde_net_bytes_total"][0]["type"],
        "counter"
    );
    assert!(c.metric("sonde_collector_samples_rejected_total{protocol=\"otlp_http\",reason=\"delta_temporality\"}") == 2.0);
}

#[test]
fn http_json_and_its_errors() {
    let c = Collector::start(&[]);
    let t_ns = (now_ms() - 30_000) as u64 * 1_000_000;
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"web"}}}},
        {{"key":"service.namespace","value":{{"stringValue":"shop"}}}}]}},
        "scopeMetrics":[{{"metrics":[{{"name":"queue.depth","unit":"1","gauge":{{"dataPoints":[
          {{"timeUnixNano":"{t_ns}","asInt":"17","attributes":[{{"key":"queue","value":{{"stringValue":"q1"}}}}]}}]}}}}]}}]}}]}}"#
    );
    // JSON on the main HTTP port's OTLP route.
    let r = request(
        c.http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let d = c.data(&format!(
        "/api/v1/query?query=queue_depth&time={}",
        t_ns / 1_000_000_000
    ));
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"__name__": "queue_depth", "job": "shop/web", "queue": "q1"})
    );
    assert_eq!(d["result"][0]["value"][1], "17");

    // Malformed JSON: 400 with a google.rpc.Status as JSON naming the field.
    let bad = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"timeUnixNano":"1","asInt":"seven"}]}}]}]}]}"#;
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        bad.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"].as_str().unwrap().contains("asInt"),
        "{status}"
    );
    assert_eq!(
        c.data("/api/v1/series?match[]=x").as_array().unwrap().len(),
        0
    );

    // Garbage protobuf: 400 with a protobuf google.rpc.Status.
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        b"\x0a\xff\xff\xff\xff\x0f",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.header("content-type")),
        (400, Some("application/x-protobuf"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("ExportMetricsServiceRequest"));

    // Unsupported media type.
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "text/plain")],
        b"x",
    )
    .unwrap();
    assert_eq!(r.status, 415);
}

#[test]
fn grpc_with_gzip() {
    let c = Collector::start(&["--max-series", "3"]);
    let t = now_ms() - 30_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = MetricsServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let req = request_with(vec![
            Metric {
                name: "temp_celsius".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![number(t, 21.5, vec![kv("room", "a")])],
                })),
                ..Default::default()
            },
            sum(
                "ops_total",
                AggregationTemporality::Cumulative,
                vec![number(t, 3.0, vec![])],
            ),
        ]);
        let resp = client.export(req).await.unwrap().into_inner();
        assert_eq!(resp.partial_success, None);

        // Over --max-series: RESOURCE_EXHAUSTED, and nothing of it is written.
        let many = request_with(vec![Metric {
            name: "fanout".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: (0..3)
                    .map(|i| number(t, 1.0, vec![kv("i", &i.to_string())]))
                    .collect(),
            })),
            ..Default::default()
        }]);
        let err = client.export(many).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        assert!(
            err.message().contains("too many active series"),
            "{}",
            err.message()
        );
    });
    let at = t / 1000;
    let d = c.data(&format!("/api/v1/query?query=temp_celsius&time={at}"));
    assert_eq!(d["result"][0]["value"][1], "21.5");
    assert_eq!(d["result"][0]["metric"]["room"], "a");
    assert_eq!(
        c.data(&format!("/api/v1/query?query=ops_total&time={at}"))["result"][0]["value"][1],
        "3"
    );
    assert_eq!(
        c.data("/api/v1/series?match[]=fanout")
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        c.metric("sonde_collector_samples_received_total{protocol=\"otlp_grpc\"}"),
        2.0
    );
}

#[test]
fn http_size_limits_apply_before_and_after_gzip() {
    let c = Collector::start(&["--max-request-bytes", "4KiB"]);
    // Compresses to well under 4 KiB, inflates to 100 KB.
    let padded = format!(
        r#"{{"resourceMetrics":[],"pad":"{}"}}"#,
        " ".repeat(100_000)
    );
    let body = gzip(padded.as_bytes());
    assert!(body.len() < 4096);
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
    ];
    let r = request(c.otlp_http, "POST", "/v1/metrics", &headers, &body).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("--max-request-bytes"),
        "{status}"
    );
    // Too large as sent.
    let r = request(
        c.otlp_http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        padded.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 413);
    // Within limits, the same route accepts an empty export.
    let r = request(c.otlp_http, "POST", "/v1/metrics", &headers, &gzip(b"{}")).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
}
