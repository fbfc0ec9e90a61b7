//! The OTLP snapshot against the text `/metrics` serves, from the same registry:
//! after the collector's documented OTLP -> Prometheus mapping they must be the
//! same samples.

use std::{collections::BTreeMap, fs};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{KeyValue, any_value},
    metrics::v1::{AggregationTemporality, metric::Data, number_data_point},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, prometheus_protobuf, text},
    metrics::{counter::Counter, info::Info},
    registry::Registry,
};

use super::{Origin, to_request};
use crate::export::{
    families::{self, HistogramSample},
    text_format::openmetrics_to_prometheus,
};

/// Series identity -> value: `name{sorted labels}`, with `le` normalised as a number.
type Samples = BTreeMap<String, f64>;

fn key(name: &str, labels: impl IntoIterator<Item = (String, String)>) -> String {
    let mut labels: Vec<(String, String)> = labels
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "le" {
                v.parse::<f64>().map(|f| f.to_string()).unwrap_or(v)
            } else {
                v
            };
            (k, v)
        })
        .collect();
    labels.sort();
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", body.join(","))
}

fn from_text(registry: &Registry) -> Samples {
    let mut om = String::new();
    text::encode(&mut om, registry).unwrap();
    let e = sonde_tests::parse_exposition(&openmetrics_to_prometheus(&om));
    e.samples
        .into_iter()
        .map(|s| (key(&s.name, s.labels), s.value))
        .collect()
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("attribute {} is not a string: {other:?}", kv.key),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// The collector's mapping (contracts.md), minus the resource attributes.
fn from_otlp(req: &ExportMetricsServiceRequest, start: u64, now: u64) -> Samples {
    let mut out = Samples::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                match m.data.as_ref().expect("metric without data") {
                    Data::Sum(s) => {
                        assert!(s.is_monotonic, "{}", m.name);
                        assert_eq!(
                            s.aggregation_temporality,
                            AggregationTemporality::Cumulative as i32
                        );
                        assert!(m.name.ends_with("_total"), "{}", m.name);
                        for p in &s.data_points {
                            assert_eq!(
                                (p.start_time_unix_nano, p.time_unix_nano),
                                (start, now),
                                "{}",
                                m.name
                            );
                            out.insert(key(&m.name, attrs(&p.attributes)), number(&p.value));
                        }
                    }
                    Data::Gauge(g) => {
                        for p in &g.data_points {
                            assert_eq!(p.time_unix_nano, now);
                            out.insert(key(&m.name, attrs(&p.attributes)), number(&p.value));
                        }
                    }
                    Data::Histogram(h) => {
                        assert_eq!(
                            h.aggregation_temporality,
                            AggregationTemporality::Cumulative as i32
                        );
                        for p in &h.data_points {
                            assert_eq!(
                                (p.start_time_unix_nano, p.time_unix_nano),
                                (start, now),
                                "{}",
                                m.name
                            );
                            assert_eq!(
                                p.bucket_counts.len(),
                                p.explicit_bounds.len() + 1,
                                "{}",
                                m.name
                            );
                            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count, "{}", m.name);
                            let labels = attrs(&p.attributes);
                            let mut cumulative = 0;
                            let bounds = p.explicit_bounds.iter().copied().chain([f64::INFINITY]);
                            for (bound, n) in bounds.zip(&p.bucket_counts) {
                                cumulative += n;
                                let mut l = labels.clone();
                                l.push(("le".into(), bound.to_string()));
                                out.insert(
                                    key(&format!("{}_bucket", m.name), l),
                                    cumulative as f64,
                                );
                            }
                            out.insert(
                                key(&format!("{}_sum", m.name), labels.clone()),
                                p.sum.unwrap_or(f64::NAN),
                            );
                            out.insert(key(&format!("{}_count", m.name), labels), p.count as f64);
                        }
                    }
                    other => panic!("{}: unexpected data {other:?}", m.name),
                }
            }
        }
    }
    out
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => panic!("point without value"),
    }
}

/// Every kind of family the agent's collectors write, with values that show
/// mix-ups (per-bucket vs cumulative counts, int vs float).
#[derive(Debug)]
struct Everything;

impl Collector for Everything {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        families::counter(
            &mut enc,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            [
                ([("cpu", "0"), ("mode", "idle")], 1234.5),
                ([("cpu", "0"), ("mode", "user")], 0.25),
            ],
        )?;
        families::gauge(
            &mut enc,
            "node_load1",
            "1m load average.",
            [(families::Labels::new(), 0.75)],
        )?;
        families::untyped(
            &mut enc,
            "node_netstat_Tcp_InSegs",
            "Statistic TcpInSegs.",
            [([("x", "a\"b")], 7.0)],
        )?;
        families::gauge(
            &mut enc,
            "node_empty",
            "No samples: never sent.",
            Vec::<(families::Labels, f64)>::new(),
        )?;
        families::histogram(
            &mut enc,
            "node_runqueue_latency_seconds",
            "Run-queue latency.",
            [
                HistogramSample {
                    labels: [("pod", "a")],
                    sum: 0.5,
                    buckets: vec![(0.001, 3), (0.01, 0), (0.1, 5), (f64::INFINITY, 2)],
                },
                HistogramSample {
                    labels: [("pod", "b")],
                    sum: 0.0,
                    buckets: vec![(0.001, 0), (0.01, 0), (0.1, 0), (f64::INFINITY, 0)],
                },
            ],
        )
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Everything));
    let c: Counter = Counter::default();
    c.inc_by(41);
    r.register("sonde_export_sent_batches", "Batches.", c);
    r.register(
        "sonde_agent",
        "Build.",
        Info::new(vec![("version", "1.2.3")]),
    );
    r
}

const ORIGIN: Origin = Origin {
    node_name: String::new(),
    start_unix_nano: 1_700_000_000_000_000_000,
};
const NOW: u64 = 1_700_000_123_000_000_000;

#[test]
fn otlp_snapshot_matches_the_text_exposition() {
    let r = registry();
    let batch = to_request(&prometheus_protobuf::encode(&r).unwrap(), &ORIGIN, NOW);
    let otlp = from_otlp(&batch.request, ORIGIN.start_unix_nano, NOW);
    let text = from_text(&r);
    assert_eq!(otlp, text);
    // Spot checks on what the comparison relies on.
    assert_eq!(
        text[&key(
            "node_runqueue_latency_seconds_bucket",
            [("pod".into(), "a".into()), ("le".into(), "0.1".into())]
        )],
        8.0
    );
    assert_eq!(
        text[&key("sonde_agent_info", [("version".into(), "1.2.3".into())])],
        1.0
    );
    // 2 cpu + load + netstat + 2 histograms + counter + info.
    assert_eq!(batch.points, 8);
}

#[test]
fn resource_and_types_follow_the_contract() {
    let origin = Origin {
        node_name: "node-7".into(),
        start_unix_nano: 5,
    };
    let batch = to_request(
        &prometheus_protobuf::encode(&registry()).unwrap(),
        &origin,
        9,
    );
    let rm = &batch.request.resource_metrics[0];
    let resource = attrs(&rm.resource.as_ref().unwrap().attributes);
    for (k, v) in [
        ("service.name", "sonde-agent"),
        ("service.instance.id", "node-7"),
        ("k8s.node.name", "node-7"),
    ] {
        assert!(
            resource.contains(&(k.to_string(), v.to_string())),
            "{k} missing from {resource:?}"
        );
    }
    let metrics = &rm.scope_metrics[0].metrics;
    let kind = |name: &str| match metrics
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.data.as_ref())
    {
        Some(Data::Sum(_)) => "sum",
        Some(Data::Gauge(_)) => "gauge",
        Some(Data::Histogram(h)) => {
            assert_eq!(h.data_points[0].explicit_bounds, vec![0.001, 0.01, 0.1]);
            assert_eq!(
                h.data_points[0].bucket_counts,
                vec![3, 0, 5, 2],
                "per bucket, not cumulative"
            );
            "histogram"
        }
        Some(_) => "other",
        None => "missing",
    };
    assert_eq!(kind("node_cpu_seconds_total"), "sum");
    assert_eq!(kind("node_load1"), "gauge");
    assert_eq!(kind("node_netstat_Tcp_InSegs"), "gauge");
    assert_eq!(kind("node_runqueue_latency_seconds"), "histogram");
    assert_eq!(kind("node_empty"), "missing");
    let help = metrics.iter().find(|m| m.name == "node_load1").unwrap();
    assert_eq!(help.description, "1m load average.");
}

/// The real host collectors on a scratch /proc: whatever they serve (minus their
/// own timing, which changes between two encodings) must cross unchanged.
#[test]
fn host_collectors_cross_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    fs::create_dir_all(&proc).unwrap();
    fs::write(
        proc.join("stat"),
        "cpu  10 0 20 300 4 0 1 0 0 0\ncpu0 10 0 20 300 4 0 1 0 0 0\nintr 100 0\nctxt 5000\nbtime 1700000000\nprocesses 42\nprocs_running 2\nprocs_blocked 0\n",
    )
    .unwrap();
    fs::write(proc.join("loadavg"), "0.50 0.25 0.10 2/300 12345\n").unwrap();
    fs::write(
        proc.join("meminfo"),
        "MemTotal:       16384 kB\nMemFree:         8192 kB\n",
    )
    .unwrap();
    let paths = crate::host::HostPaths {
        procfs: proc,
        sysfs: dir.path().join("sys"),
        rootfs: dir.path().to_path_buf(),
    };
    let mut r = Registry::default();
    for c in crate::host::collectors(&paths) {
        r.register_collector(c);
    }
    let batch = to_request(&prometheus_protobuf::encode(&r).unwrap(), &ORIGIN, NOW);
    // Values read live from the kernel (clock, adjtimex, sockets of the machine
    // running the test) or timing the collectors may change between the two
    // encodings; everything from the /proc fixture must match exactly.
    let live = [
        "node_time_seconds",
        "node_timex_",
        "node_tcp_connection_states",
        "node_scrape_collector_duration",
    ];
    let fixed = |m: Samples| -> Samples {
        m.into_iter()
            .filter(|(k, _)| !live.iter().any(|p| k.starts_with(p)))
            .collect()
    };
    let otlp = fixed(from_otlp(&batch.request, ORIGIN.start_unix_nano, NOW));
    let text = fixed(from_text(&r));
    assert!(
        text.keys()
            .any(|k| k.starts_with("node_cpu_seconds_total{")),
        "{text:?}"
    );
    assert!(
        text.keys()
            .any(|k| k.starts_with("node_memory_MemTotal_bytes")),
        "{text:?}"
    );
    assert_eq!(otlp, text);
}
