//! remote_write against the real binary: accepted writes are queryable through
//! the Prometheus API; refused writes get the right 4xx and change nothing.

mod api_support;

use api_support::{Collector, enc, now_ms, request};
use prost::Message;
use sonde_collector::ingest::remote_write_proto::{
    Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(k, v)| Label {
                name: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                timestamp: t,
                value: v,
            })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

fn snappy(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn post(c: &Collector, body: &[u8]) -> (u16, String) {
    let r = request(
        c.http,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        body,
    )
    .expect("POST /api/v1/write");
    (r.status, r.text())
}

#[test]
fn written_series_are_queryable() {
    let c = Collector::start(&[]);
    let t = now_ms() - 60_000;
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "rw_requests_total"),
                    ("job", "api"),
                    ("instance", "a:1"),
                ],
                &[(t, 1.0), (t + 15_000, 2.5)],
            ),
            series(
                &[
                    ("__name__", "rw_requests_total"),
                    ("job", "api"),
                    ("instance", "b:1"),
                ],
                &[(t, 10.0)],
            ),
            series(
                &[("__name__", "rw_temp"), ("job", "db")],
                &[(t, f64::NAN), (t + 15_000, f64::INFINITY)],
            ),
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "rw_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    assert_eq!(post(&c, &snappy(&req)), (204, String::new()));

    let at = (t + 15_000) / 1000;
    let d = c.data(&format!(
        "/api/v1/query?query={}&time={at}",
        enc(r#"rw_requests_total{instance="a:1"}"#)
    ));
    assert_eq!(d["resultType"], "vector");
    assert_eq!(d["result"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"__name__": "rw_requests_total", "job": "api", "instance": "a:1"})
    );
    assert_eq!(d["result"][0]["value"], serde_json::json!([at, "2.5"]));

    // Range query, times as RFC 3339 and float seconds, step as a duration.
    let start = chrono_free_rfc3339(t);
    let d = c.data(&format!(
        "/api/v1/query_range?query=rw_temp&start={}&end={}.0&step=15s",
        enc(&start),
        at
    ));
    assert_eq!(d["resultType"], "matrix");
    assert_eq!(
        d["result"][0]["values"],
        serde_json::json!([[t / 1000, "NaN"], [at, "+Inf"]]),
        "{d}"
    );

    // The same query as a form-encoded POST.
    let body = format!("query={}&time={at}", enc("sum(rw_requests_total)"));
    let r = request(
        c.http,
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(j["data"]["result"][0]["value"][1], "12.5", "{j}");

    let d = c.data(&format!(
        "/api/v1/series?match[]={}",
        enc(r#"{__name__=~"rw_.*", job="api"}"#)
    ));
    let mut instances: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instance"].as_str().unwrap())
        .collect();
    instances.sort();
    assert_eq!(instances, vec!["a:1", "b:1"]);

    let labels = c.data("/api/v1/labels");
    for want in ["__name__", "instance", "job"] {
        assert!(
            labels.as_array().unwrap().iter().any(|l| l == want),
            "{want} in {labels}"
        );
    }
    assert_eq!(
        c.data("/api/v1/label/job/values"),
        serde_json::json!(["api", "db"])
    );
    assert_eq!(
        c.data(&format!(
            "/api/v1/label/job/values?match[]={}",
            enc("rw_temp")
        )),
        serde_json::json!(["db"])
    );
    assert_eq!(
        c.data("/api/v1/metadata?metric=rw_requests_total"),
        serde_json::json!({"rw_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}]})
    );
    assert!(
        c.metric("sonde_collector_samples_received_total{protocol=\"remote_write\"}") >= 5.0,
        "{}",
        c.own_metrics()
    );
}

/// RFC 3339 for whole-second ms, without a date library in the test.
fn chrono_free_rfc3339(ms: i64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn refused_writes_change_nothing() {
    let c = Collector::start(&["--max-request-bytes", "4KiB", "--ooo-window", "10m"]);
    let t = now_ms() - 60_000;
    let count = |name: &str| {
        c.data(&format!("/api/v1/series?match[]={name}"))
            .as_array()
            .unwrap()
            .len()
    };

    // Undecodable snappy and undecodable protobuf.
    let (status, msg) = post(&c, b"\xff\xff\xff\xff\xff\xff\xff");
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("snappy"), "{msg}");
    let (status, msg) = post(
        &c,
        &snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff\xff\x0f")
            .unwrap(),
    );
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("protobuf"), "{msg}");

    // One bad series refuses the whole write, good series included.
    for (labels, want) in [
        (
            vec![("__name__", "bad_dup"), ("a", "1"), ("a", "2")],
            "duplicate label name",
        ),
        (vec![("__name__", "1bad")], "invalid metric name"),
        (
            vec![("__name__", "bad_label"), ("a-b", "1")],
            "invalid label name",
        ),
        (vec![], "empty label set"),
    ] {
        let req = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "good_but_refused")], &[(t, 1.0)]),
                series(&labels, &[(t, 1.0)]),
            ],
            metadata: vec![],
        };
        let (status, msg) = post(&c, &snappy(&req));
        assert_eq!(status, 400, "{msg}");
        assert!(msg.contains(want), "{want}: {msg}");
    }
    assert_eq!(count("good_but_refused"), 0);

    // Too large as sent, and too large once decompressed (compresses well).
    // Pseudo-random label values, so snappy cannot shrink the body below the limit.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<TimeSeries> = (0..300)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            series(
                &[("__name__", "big"), ("i", &format!("{x:016x}"))],
                &[(t, 1.0)],
            )
        })
        .collect();
    let body = snappy(&WriteRequest {
        timeseries: big,
        metadata: vec![],
    });
    assert!(body.len() > 4096);
    assert_eq!(post(&c, &body).0, 413);
    let long = "x".repeat(8000);
    let body = snappy(&WriteRequest {
        timeseries: vec![series(
            &[("__name__", "compressible"), ("l", &long)],
            &[(t, 1.0)],
        )],
        metadata: vec![],
    });
    assert!(body.len() < 4096, "{}", body.len());
    let (status, msg) = post(&c, &body);
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("decompressed"), "{msg}");
    assert_eq!(count("big") + count("compressible"), 0);

    // Far out of order: refused with the store's message, nothing written.
    let ok = WriteRequest {
        timeseries: vec![series(&[("__name__", "ooo")], &[(t, 1.0)])],
        metadata: vec![],
    };
    assert_eq!(post(&c, &snappy(&ok)).0, 204);
    let old = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "ooo_new")], &[(t, 1.0)]),
            series(&[("__name__", "ooo")], &[(t - 3_600_000, 5.0)]),
        ],
        metadata: vec![],
    };
    let (status, msg) = post(&c, &snappy(&old));
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("out of order"), "{msg}");
    assert_eq!(count("ooo_new"), 0);

    let metrics = c.own_metrics();
    for reason in ["malformed", "invalid_series", "too_large", "out_of_order"] {
        let line = format!(
            "sonde_collector_write_requests_total{{protocol=\"remote_write\",outcome=\"{reason}\"}}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(c.metric("sonde_collector_samples_rejected_total{protocol=\"remote_write\",reason=\"out_of_order\"}") >= 2.0, "{metrics}");
}

#[test]
fn series_limit_is_a_400_with_the_message() {
    let c = Collector::start(&["--max-series", "2"]);
    let t = now_ms();
    let req = WriteRequest {
        timeseries: (0..3)
            .map(|i| {
                series(
                    &[("__name__", "capped"), ("i", &i.to_string())],
                    &[(t, 1.0)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let (status, msg) = post(&c, &snappy(&req));
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("too many active series"), "{msg}");
    assert_eq!(
        c.data("/api/v1/series?match[]=capped")
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
