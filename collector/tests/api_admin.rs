//! `POST /api/v1/admin/tsdb/compact` against the real binary: refused as
//! Prometheus refuses admin calls unless `--enable-admin-api`; with it, the
//! head goes into blocks, the WAL segments holding it are deleted, and every
//! sample stays queryable.

mod api_support;

use api_support::{Collector, enc, now_ms, request};
use prost::Message;
use sonde_collector::ingest::remote_write_proto::{Label, Sample, TimeSeries, WriteRequest};

const COMPACT: &str = "/api/v1/admin/tsdb/compact";

fn post(c: &Collector, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let r = request(c.http, "POST", path, headers, body).expect("POST");
    (r.status, r.text())
}

/// Writes `n` samples, one a minute ending at `end`, for each of `series` series.
fn write(c: &Collector, series: usize, n: i64, end: i64) {
    let req = WriteRequest {
        timeseries: (0..series)
            .map(|i| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "admin_test_total".into(),
                    },
                    Label {
                        name: "i".into(),
                        value: i.to_string(),
                    },
                ],
                samples: (0..n)
                    .map(|k| Sample {
                        timestamp: end - (n - 1 - k) * 60_000,
                        value: (k * 10 + i as i64) as f64,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, text) = post(
        c,
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ],
        &body,
    );
    assert_eq!(status, 204, "{text}");
}

fn wal_segments(c: &Collector) -> usize {
    std::fs::read_dir(c.dir.path().join("data/wal"))
        .expect("wal dir")
        .count()
}

#[test]
fn compact_is_refused_without_the_flag() {
    let c = Collector::start(&[]);
    let (status, text) = post(&c, COMPACT, &[], b"");
    assert_eq!(status, 503, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "error");
    assert_eq!(json["errorType"], "unavailable");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("--enable-admin-api"),
        "{json}"
    );
}

#[test]
fn compact_moves_the_head_into_blocks_and_deletes_the_wal() {
    let c = Collector::start(&["--enable-admin-api"]);
    let end = now_ms() - 60_000;
    // 5 hours: more than one block range, so several blocks.
    let (series, n) = (20usize, 300i64);
    write(&c, series, n, end);
    let before_segments = wal_segments(&c);

    let (status, text) = post(&c, COMPACT, &[], b"");
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "success", "{json}");
    let (before, after) = (&json["data"]["before"], &json["data"]["after"]);
    assert_eq!(before["headSeries"], series, "{json}");
    assert_eq!(after["headSeries"], 0, "{json}");
    assert!(after["blocks"].as_u64().unwrap() >= 2, "{json}");
    assert_eq!(after["blockSamples"], series as i64 * n, "{json}");
    assert!(
        after["walBytes"].as_u64().unwrap() < before["walBytes"].as_u64().unwrap(),
        "{json}"
    );
    // Only the fresh segment (series table and cut record) remains.
    assert_eq!(wal_segments(&c), 1, "had {before_segments} before");

    // Every sample is still there, now read from blocks.
    let q = format!(
        "/api/v1/query?query={}&time={}",
        enc("sum(count_over_time(admin_test_total[6h]))"),
        end / 1000
    );
    let data = c.data(&q);
    assert_eq!(
        data["result"][0]["value"][1],
        (series as i64 * n).to_string(),
        "{data}"
    );
    let q = format!(
        "/api/v1/query?query={}&time={}",
        enc("admin_test_total{i=\"3\"}"),
        end / 1000
    );
    let data = c.data(&q);
    assert_eq!(
        data["result"][0]["value"][1],
        ((n - 1) * 10 + 3).to_string(),
        "{data}"
    );

    // A second call finds nothing left to do and still succeeds.
    let (status, text) = post(&c, COMPACT, &[], b"");
    assert_eq!(status, 200, "{text}");
    // Newer samples are still accepted after it.
    write(&c, 1, 1, end + 60_000);
}
