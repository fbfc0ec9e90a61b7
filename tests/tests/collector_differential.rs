//! Sonde's collector against the real Prometheus 2.42: the same generated series (counters
//! with a reset, gauges, a histogram with `le` buckets, an info metric, a series that stops
//! half way) written over remote_write into both, then a list of PromQL queries, instant
//! and range, asked of both over the HTTP API. Answers must agree: result type, label sets,
//! timestamps, and values within a relative 1e-6. Every mismatch is printed as a diff.

use std::time::{SystemTime, UNIX_EPOCH};

use sonde_tests::{
    collector::Collector,
    promapi::{PromApi, QueryValue, diff},
    prometheus::Prometheus,
    remote_write::{Client, TimeSeries},
};

const STEP_MS: i64 = 15_000;
/// One hour of samples at 15 s.
const POINTS: i64 = 240;
const REL_TOLERANCE: f64 = 1e-6;

/// A deterministic noise source for the generated values (splitmix64): the test data must
/// be the same on every run so a failure reproduces.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The generated series, all starting at `t0` (ms).
fn generate(t0: i64) -> Vec<TimeSeries> {
    let mut noise = Noise(42);
    let ts = |i: i64| t0 + i * STEP_MS;
    let mut out = Vec::new();
    let instances = ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"];
    for (n, instance) in instances.iter().enumerate() {
        for method in ["get", "post"] {
            for code in ["200", "500"] {
                let mut v = 0.0;
                let samples: Vec<(i64, f64)> = (0..POINTS)
                    .map(|i| {
                        // One counter restarts half way, as after a process restart.
                        if n == 1 && method == "get" && code == "200" && i == POINTS / 2 {
                            v = 0.0;
                        }
                        let base = if code == "200" { 20.0 } else { 1.0 };
                        v += (base * noise.next() * 15.0).round();
                        (ts(i), v)
                    })
                    .collect();
                let labels = [
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", instance),
                    ("method", method),
                    ("code", code),
                ];
                out.push(TimeSeries::new(&labels, &samples));
            }
        }
        let mut free = 4e9 + n as f64 * 1e9;
        let samples: Vec<(i64, f64)> = (0..POINTS)
            .map(|i| {
                free = (free + (noise.next() - 0.5) * 5e7 - 1e5 * n as f64).max(1e8);
                (ts(i), free.round())
            })
            .collect();
        out.push(TimeSeries::new(
            &[
                ("__name__", "node_memory_free_bytes"),
                ("job", "node"),
                ("instance", instance),
            ],
            &samples,
        ));
        for room in ["a", "b"] {
            let mut t = 20.0 + n as f64;
            let samples: Vec<(i64, f64)> = (0..POINTS)
                .map(|i| {
                    t += (noise.next() - 0.5) * 0.4;
                    (ts(i), (t * 100.0).round() / 100.0)
                })
                .collect();
            out.push(TimeSeries::new(
                &[
                    ("__name__", "temperature_celsius"),
                    ("instance", instance),
                    ("room", room),
                ],
                &samples,
            ));
        }
        let version = if n == 2 { "1.1" } else { "1.0" };
        let ones: Vec<(i64, f64)> = (0..POINTS).map(|i| (ts(i), 1.0)).collect();
        out.push(TimeSeries::new(
            &[
                ("__name__", "instance_info"),
                ("instance", instance),
                ("version", version),
            ],
            &ones,
        ));
        out.extend(histogram(&mut noise, instance, n, &ts));
    }
    // A series that stops half way: absent() and count_over_time see the gap.
    let half: Vec<(i64, f64)> = (0..POINTS / 2).map(|i| (ts(i), i as f64)).collect();
    out.push(TimeSeries::new(
        &[("__name__", "flaky_gauge"), ("instance", instances[2])],
        &half,
    ));
    out
}

/// A latency histogram: cumulative `_bucket{le}` counters, `_sum` and `_count`.
fn histogram(
    noise: &mut Noise,
    instance: &str,
    n: usize,
    ts: &dyn Fn(i64) -> i64,
) -> Vec<TimeSeries> {
    const LE: [&str; 7] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    const BOUNDS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
    let mut buckets = [0.0f64; 7];
    let (mut sum, mut count) = (0.0, 0.0);
    let mut per_bucket: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 7];
    let (mut sums, mut counts) = (Vec::new(), Vec::new());
    for i in 0..POINTS {
        let requests = 5 + (noise.next() * 20.0) as usize;
        for _ in 0..requests {
            // Skewed latencies, slower on later instances.
            let latency = noise.next().powi(3) * 3.0 * (1.0 + n as f64 * 0.3);
            sum += latency;
            count += 1.0;
            let first = BOUNDS.iter().position(|b| latency <= *b).unwrap_or(6);
            for b in buckets.iter_mut().skip(first) {
                *b += 1.0;
            }
        }
        for (k, b) in buckets.iter().enumerate() {
            per_bucket[k].push((ts(i), *b));
        }
        sums.push((ts(i), sum));
        counts.push((ts(i), count));
    }
    let name = "request_duration_seconds";
    let mut out: Vec<TimeSeries> = LE
        .iter()
        .zip(&per_bucket)
        .map(|(le, s)| {
            TimeSeries::new(
                &[
                    ("__name__", &format!("{name}_bucket")),
                    ("instance", instance),
                    ("le", le),
                ],
                s,
            )
        })
        .collect();
    out.push(TimeSeries::new(
        &[("__name__", &format!("{name}_sum")), ("instance", instance)],
        &sums,
    ));
    out.push(TimeSeries::new(
        &[
            ("__name__", &format!("{name}_count")),
            ("instance", instance),
        ],
        &counts,
    ));
    out
}

/// Writes `series` in time order, 20 timestamps of every series per request.
fn write_all(client: &Client, series: &[TimeSeries]) {
    for start in (0..POINTS as usize).step_by(20) {
        let batch: Vec<TimeSeries> = series
            .iter()
            .filter_map(|s| {
                let samples: Vec<_> = s.samples.iter().skip(start).take(20).cloned().collect();
                (!samples.is_empty()).then(|| TimeSeries {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect();
        client.write(&batch);
    }
}

const INSTANT: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "resets(http_requests_total[30m])",
    "sum by (code) (rate(http_requests_total[5m]))",
    "sum without (instance) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))",
    "count by (instance) (http_requests_total)",
    "avg by (method) (increase(http_requests_total[15m]))",
    "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))",
    "histogram_quantile(0.99, sum by (instance, le) (increase(request_duration_seconds_bucket[15m])))",
    "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
    "topk(3, node_memory_free_bytes)",
    "topk(2, rate(http_requests_total[5m]))",
    "bottomk(2, temperature_celsius)",
    "topk by (instance) (1, temperature_celsius)",
    "quantile(0.75, temperature_celsius)",
    "stddev(node_memory_free_bytes)",
    "count_values(\"v\", instance_info)",
    "predict_linear(node_memory_free_bytes[15m], 3600)",
    "deriv(temperature_celsius[10m])",
    "delta(temperature_celsius[10m])",
    "avg_over_time(temperature_celsius[10m])",
    "max_over_time(temperature_celsius[10m])",
    "quantile_over_time(0.9, temperature_celsius[10m])",
    "count_over_time(flaky_gauge[10m])",
    "changes(temperature_celsius[10m])",
    "absent(nonexistent_metric{job=\"x\"})",
    "absent(http_requests_total)",
    "absent(flaky_gauge)",
    "label_replace(node_memory_free_bytes, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
    "label_join(instance_info, \"both\", \"/\", \"instance\", \"version\")",
    "rate(http_requests_total[5m]) * on (instance) group_left (version) instance_info",
    "node_memory_free_bytes / on (instance) group_left () sum by (instance) (instance_info)",
    "sum by (instance) (rate(http_requests_total[5m])) > 10",
    "temperature_celsius > bool 21",
    "http_requests_total offset 10m",
    "node_memory_free_bytes and on (instance) instance_info{version=\"1.0\"}",
    "node_memory_free_bytes unless on (instance) instance_info{version=\"1.0\"}",
    "scalar(sum(instance_info)) * 2",
    "vector(1) + 2",
    "time()",
    "node_memory_free_bytes[2m]",
];

const RANGE: &[(&str, f64)] = &[
    ("rate(http_requests_total[5m])", 60.0),
    ("sum by (code) (increase(http_requests_total[10m]))", 45.0),
    (
        "histogram_quantile(0.99, sum by (le, instance) (rate(request_duration_seconds_bucket[5m])))",
        30.0,
    ),
    ("predict_linear(node_memory_free_bytes[10m], 600)", 60.0),
    ("topk(2, temperature_celsius)", 60.0),
    ("absent(flaky_gauge)", 60.0),
    ("flaky_gauge", 15.0),
];

/// Asks both servers; records a described mismatch in `failures`.
fn check(
    failures: &mut Vec<String>,
    what: &str,
    prom: Result<QueryValue, sonde_tests::promapi::ApiError>,
    sonde: Result<QueryValue, sonde_tests::promapi::ApiError>,
) {
    match (prom, sonde) {
        (Ok(p), Ok(s)) => {
            if let Some(d) = diff("prometheus", &p, "sonde", &s, REL_TOLERANCE) {
                failures.push(format!("{what}\n{d}"));
            }
        }
        (Err(p), Err(s)) if p.error_type == s.error_type => {}
        (p, s) => failures.push(format!("{what}\n  prometheus: {p:?}\n  sonde: {s:?}\n")),
    }
}

#[test]
fn promql_answers_match_prometheus() {
    let prometheus = Prometheus::start();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // One hour of data ending a few minutes ago, on a minute boundary.
    let t0 = (now_ms / 60_000) * 60_000 - (POINTS * STEP_MS) - 5 * 60_000;
    let series = generate(t0);
    write_all(&Client::new(&prometheus.remote_write_url()), &series);
    write_all(&Client::new(&collector.remote_write_url()), &series);

    let (prom, sonde): (PromApi, PromApi) = (prometheus.api(), collector.api());
    let t0s = t0 as f64 / 1000.0;
    let end = t0s + ((POINTS - 1) * STEP_MS) as f64 / 1000.0;
    // On a sample, between samples, and at the last sample.
    let times = [t0s + 1800.0, t0s + 2707.5, end];
    // Guard the test itself: Prometheus must have the data, or every comparison is vacuous.
    let QueryValue::Vector(v) = prom
        .instant("http_requests_total", end)
        .expect("querying prometheus")
    else {
        panic!("instant selector did not return a vector from prometheus");
    };
    assert_eq!(
        v.len(),
        12,
        "prometheus did not store the written counters; its log:\n{}",
        prometheus.log_text()
    );

    let mut failures = Vec::new();
    let mut asked = 0;
    for q in INSTANT {
        for t in times {
            asked += 1;
            check(
                &mut failures,
                &format!("instant {q} at {t}"),
                prom.instant(q, t),
                sonde.instant(q, t),
            );
        }
    }
    for (q, step) in RANGE {
        asked += 1;
        let what = format!("range {q} over [{t0s}, {end}] step {step}s");
        check(
            &mut failures,
            &what,
            prom.range(q, t0s, end, *step),
            sonde.range(q, t0s, end, *step),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {asked} queries differ between Prometheus 2.42 and sonde-collector:\n\n{}\ncollector log (tail):\n{}",
        failures.len(),
        failures.join("\n"),
        collector
            .log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
