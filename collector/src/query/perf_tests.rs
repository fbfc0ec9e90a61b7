//! Times the engine alone on generated data shaped like `cargo xtask bench
//! collector`'s (the series those queries read, 4 h at 15 s, in a real
//! `Tsdb`), with storage reads timed apart from evaluation. Ignored by
//! default; run it in release:
//!
//! `cargo test --release -p sonde-collector --lib query::perf_tests -- --ignored --nocapture`
//!
//! Each query's answer is checked against a plain per-step evaluation
//! (instant queries), so a fast path that changes results fails here too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{Engine, EngineOptions, Value};
use crate::model::{Labels, Matcher, MetricMetadata, Sample, TimeSeries};
use crate::store::tsdb::{Tsdb, TsdbOptions};
use crate::store::{AppendError, AppendStats, SeriesData, Storage};

const NODES: usize = 92;
const STEP_MS: i64 = 15_000;
const HOURS: i64 = 4;
const END_MS: i64 = 1_700_000_000_000;

/// The bench's queries: expression, hours, step in seconds.
const QUERIES: &[(&str, i64, i64)] = &[
    (
        "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
        1,
        15,
    ),
    ("sum by (mode) (rate(node_cpu_seconds_total[5m]))", 4, 60),
    (
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        4,
        60,
    ),
    (
        "histogram_quantile(0.9, sum by (instance, le) (rate(http_request_duration_seconds_bucket{handler=\"/api\"}[5m])))",
        2,
        30,
    ),
    ("topk(5, rate(node_network_receive_bytes_total[5m]))", 1, 15),
    (
        "avg by (instance) (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        4,
        60,
    ),
    (
        "sum by (device) (rate(node_disk_io_time_seconds_total[5m]))",
        3,
        60,
    ),
];

/// A storage wrapper that adds up the time spent in `select`.
struct Timed {
    inner: Tsdb,
    select_ns: AtomicU64,
}

impl Storage for Timed {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        self.inner.append(batch)
    }
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> std::io::Result<Vec<SeriesData>> {
        let t = Instant::now();
        let out = self.inner.select(m, mint, maxt);
        self.select_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
    fn series(&self, m: &[Vec<Matcher>], mint: i64, maxt: i64) -> std::io::Result<Vec<Labels>> {
        self.inner.series(m, mint, maxt)
    }
    fn set_metadata(&self, m: &[(String, MetricMetadata)]) -> std::io::Result<()> {
        self.inner.set_metadata(m)
    }
    fn metadata(&self) -> std::io::Result<BTreeMap<String, Vec<MetricMetadata>>> {
        self.inner.metadata()
    }
    fn active_series(&self) -> usize {
        self.inner.active_series()
    }
}

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

enum Kind {
    Counter(f64),
    Gauge(f64),
    Constant,
}

fn series_set() -> Vec<(Labels, Kind, f64)> {
    let mut out = Vec::new();
    for n in 0..NODES {
        let inst = format!("node-{n:04}:9100");
        let l = |name: &str, extra: &[(&str, &str)]| {
            let mut p = vec![("__name__", name), ("instance", &inst), ("job", "node")];
            p.extend_from_slice(extra);
            Labels::from_pairs(p)
        };
        for cpu in ["0", "1", "2", "3"] {
            for mode in [
                "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
            ] {
                let lb = l("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)]);
                out.push((lb, Kind::Counter(10.0), 1e4));
            }
        }
        out.push((l("node_memory_MemTotal_bytes", &[]), Kind::Constant, 16e9));
        out.push((
            l("node_memory_MemAvailable_bytes", &[]),
            Kind::Gauge(1e7),
            8e9,
        ));
        for device in ["eth0", "lo"] {
            let lb = l("node_network_receive_bytes_total", &[("device", device)]);
            out.push((lb, Kind::Counter(2e5), 1e9));
        }
        for device in ["sda", "sdb"] {
            let lb = l("node_disk_io_time_seconds_total", &[("device", device)]);
            out.push((lb, Kind::Counter(0.2), 1e3));
        }
        for handler in ["/api", "/metrics"] {
            for (i, le) in [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
            ]
            .iter()
            .enumerate()
            {
                let lb = l(
                    "http_request_duration_seconds_bucket",
                    &[("handler", handler), ("le", le)],
                );
                out.push((lb, Kind::Counter(5.0 * (i + 1) as f64), 0.0));
            }
        }
    }
    out
}

fn load(dir: &std::path::Path) -> (Arc<Timed>, usize) {
    let store = Tsdb::open(dir, TsdbOptions::default()).expect("open tsdb");
    let mut set = series_set();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let points = (HOURS * 3600 * 1000 / STEP_MS) as usize + 1;
    let start = END_MS - (points as i64 - 1) * STEP_MS;
    // 40 points per series per write, like a remote_write client's batches.
    let mut written = 0;
    for chunk_start in (0..points).step_by(40) {
        let batch: Vec<TimeSeries> = set
            .iter_mut()
            .map(|(labels, kind, value)| {
                let samples = (chunk_start..(chunk_start + 40).min(points))
                    .map(|p| {
                        *value = match kind {
                            Kind::Counter(r) => *value + (*r * 15.0 * (0.5 + rng.unit())).round(),
                            Kind::Gauge(s) => *value + (rng.unit() - 0.5) * *s,
                            Kind::Constant => *value,
                        };
                        Sample {
                            t: start + p as i64 * STEP_MS,
                            v: *value,
                        }
                    })
                    .collect::<Vec<_>>();
                written += samples.len();
                TimeSeries {
                    labels: labels.clone(),
                    samples,
                }
            })
            .collect();
        store.append(&batch).expect("append");
    }
    // What the collector's maintenance thread does within a minute: old head
    // data cut into blocks, which is what the bench's queries then read.
    store.compact(false).expect("compact");
    (
        Arc::new(Timed {
            inner: store,
            select_ns: AtomicU64::new(0),
        }),
        written,
    )
}

#[test]
#[ignore = "timing run; use --release --ignored --nocapture"]
fn time_bench_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let (store, samples) = load(dir.path());
    eprintln!("loaded {samples} samples in {:?}", t.elapsed());
    let engine = Engine::new(store.clone(), EngineOptions::default());
    let rounds: usize = std::env::var("PERF_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    // PERF_QUERY=substring times only the matching queries (for profiling).
    let only = std::env::var("PERF_QUERY").unwrap_or_default();
    for &(q, hours, step_s) in QUERIES.iter().filter(|q| q.0.contains(&only)) {
        let start = END_MS - hours * 3_600_000;
        let mut best = f64::MAX;
        let mut best_select = 0.0;
        let mut answer = None;
        for _ in 0..rounds {
            store.select_ns.store(0, Ordering::Relaxed);
            let t = Instant::now();
            let v = engine.range(q, start, END_MS, step_s * 1000).expect(q);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if ms < best {
                best = ms;
                best_select = store.select_ns.load(Ordering::Relaxed) as f64 / 1e6;
            }
            answer = Some(v);
        }
        let Some(v) = answer else {
            panic!("{q}: no answer");
        };
        // The API's encoding of the answer, for comparison with the HTTP figures.
        let t = Instant::now();
        let body = serde_json::to_vec(&crate::api::format::query_data(&v)).expect("json");
        let json_ms = t.elapsed().as_secs_f64() * 1e3;
        let Value::Matrix(m) = v else {
            panic!("{q}: not a matrix");
        };
        eprintln!(
            "{best:8.1} ms (select {best_select:6.1} ms, JSON {json_ms:5.1} ms for {} KiB)  {} series  {q}",
            body.len() / 1024,
            m.len()
        );
        check_against_instant(&engine, q, &m, start, step_s * 1000);
    }
}

/// A few steps of the range answer must equal instant queries at those times.
fn check_against_instant(
    engine: &Engine,
    q: &str,
    m: &[super::RangeSeries],
    start: i64,
    step: i64,
) {
    for t in [start, start + 7 * step, END_MS] {
        let Value::Vector(v) = engine.instant(q, t).expect(q) else {
            panic!("{q}: instant answer not a vector");
        };
        let mut want: Vec<(Labels, f64)> = v.into_iter().map(|s| (s.labels, s.v)).collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let mut got: Vec<(Labels, f64)> = m
            .iter()
            .filter_map(|s| {
                s.samples
                    .iter()
                    .find(|p| p.t == t)
                    .map(|p| (s.labels.clone(), p.v))
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), want.len(), "{q} at {t}");
        for ((gl, gv), (wl, wv)) in got.iter().zip(&want) {
            assert_eq!(gl, wl, "{q} at {t}");
            let close = gv == wv || (gv - wv).abs() <= 1e-9 * gv.abs().max(wv.abs());
            assert!(
                close || (gv.is_nan() && wv.is_nan()),
                "{q} at {t}: {gv} != {wv}"
            );
        }
    }
}
