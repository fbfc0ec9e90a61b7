//! The real agent exporting OTLP to the real collector:
//!
//! - end to end: what the agent serves on `/metrics` (its `node_*` families, and its probe
//!   metrics when the probes are loaded) comes back from the collector's `/api/v1/query`
//!   with `job="sonde-agent"` and the agent's `node` and `instance` labels;
//! - outage: the collector is down (killed with SIGKILL) for a while, 20 s by default or
//!   `SONDE_OUTAGE_SECS`, while the agent exports every second; once it is back the agent's
//!   disk buffer drains and every snapshot of the gap arrives: a series present in every
//!   snapshot has one sample per export interval across the whole outage.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use sonde_tests::{
    Agent,
    collector::Collector,
    promapi::{PromApi, QueryValue},
};

const EXPORT_INTERVAL_SECS: f64 = 1.0;

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn start_agent(collector: &Collector, buffer: &std::path::Path) -> Agent {
    Agent::start(&[
        "--collector",
        &collector.grpc_url(),
        "--export-interval",
        "1s",
        "--buffer-dir",
        &buffer.display().to_string(),
        "--probe-interval",
        "1s",
    ])
}

/// The instant vector of `query` now, or an empty one on any error.
fn vector(api: &PromApi, query: &str) -> Vec<(sonde_tests::promapi::Labels, (f64, f64))> {
    match api.instant(query, now_s()) {
        Ok(QueryValue::Vector(v)) => v,
        _ => Vec::new(),
    }
}

/// Polls `query` until it returns series, for at most `timeout`; panics with both logs.
fn wait_for_series(
    api: &PromApi,
    query: &str,
    timeout: Duration,
    agent: &Agent,
    collector: &Collector,
) -> Vec<(sonde_tests::promapi::Labels, (f64, f64))> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = vector(api, query);
        if !v.is_empty() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` returned nothing from the collector after {timeout:?}\nagent log:\n{}\ncollector log:\n{}",
            agent.log_text(),
            collector.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn agent_metrics_arrive_with_node_labels() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"), &[]);
    let agent = start_agent(&collector, &dir.path().join("buffer"));
    let api = collector.api();

    let cpu = wait_for_series(
        &api,
        "node_cpu_seconds_total{job=\"sonde-agent\"}",
        Duration::from_secs(30),
        &agent,
        &collector,
    );
    let node = cpu[0].0.get("node").cloned().unwrap_or_default();
    assert!(
        !node.is_empty(),
        "node_cpu_seconds_total arrived without a node label: {:?}",
        cpu[0].0
    );
    for (labels, _) in &cpu {
        assert_eq!(labels.get("node"), Some(&node), "{labels:?}");
        assert_eq!(
            labels.get("instance"),
            Some(&node),
            "instance must be the node name: {labels:?}"
        );
        assert!(
            labels.contains_key("cpu") && labels.contains_key("mode"),
            "own labels lost: {labels:?}"
        );
    }

    // A value checked against the kernel: MemTotal does not change.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let mem = wait_for_series(
        &api,
        &format!("node_memory_MemTotal_bytes{{node=\"{node}\"}}"),
        Duration::from_secs(10),
        &agent,
        &collector,
    );
    assert_eq!(mem[0].1.1, kib * 1024.0, "node_memory_MemTotal_bytes");

    // Every node_* sample name the agent serves is in the collector, with the node label.
    // Several export intervals pass first, so families that appear after the first
    // snapshot (rates need two readings) are in too.
    std::thread::sleep(Duration::from_secs(3));
    let served: BTreeSet<String> = agent
        .scrape()
        .samples
        .into_iter()
        .map(|s| s.name)
        .filter(|n| n.starts_with("node_"))
        .collect();
    let stored: BTreeSet<String> = vector(
        &api,
        &format!(
            "count by (__name__) ({{__name__=~\"node_.+\", node=\"{node}\", job=\"sonde-agent\"}})"
        ),
    )
    .into_iter()
    .filter_map(|(l, _)| l.get("__name__").cloned())
    .collect();
    let missing: Vec<_> = served.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} node_* names on the agent's /metrics are not in the collector: {missing:?}",
        missing.len(),
        served.len()
    );

    // The probe metrics, when this agent has its probes loaded.
    let exposition = agent.scrape();
    if exposition.value("sonde_probe_up", &[("probe", "runqueue")]) != Some(1.0) {
        let why: Vec<String> = agent
            .log_text()
            .lines()
            .filter(|l| l.contains("probe"))
            .map(str::to_string)
            .collect();
        if std::env::var_os("SONDE_REQUIRE_BPF").is_some() {
            panic!(
                "SONDE_REQUIRE_BPF is set but the agent's runqueue probe is not up:\n{}",
                why.join("\n")
            );
        }
        eprintln!(
            "SKIPPED the probe part: the agent's runqueue probe is off (no eBPF object, or no BPF here); the agent says:\n{}",
            why.join("\n")
        );
        return;
    }
    let up = wait_for_series(
        &api,
        &format!("sonde_probe_up{{node=\"{node}\", probe=\"runqueue\"}}"),
        Duration::from_secs(10),
        &agent,
        &collector,
    );
    assert_eq!(
        up[0].1.1, 1.0,
        "sonde_probe_up{{probe=\"runqueue\"}} in the collector"
    );
    wait_for_series(
        &api,
        &format!(
            "cgroup_runqueue_latency_seconds_bucket{{node=\"{node}\", job=\"sonde-agent\", le=\"+Inf\"}}"
        ),
        Duration::from_secs(15),
        &agent,
        &collector,
    );
    wait_for_series(
        &api,
        &format!("sonde_bpf_program_runs_total{{node=\"{node}\"}}"),
        Duration::from_secs(10),
        &agent,
        &collector,
    );
}

#[test]
fn every_snapshot_arrives_after_a_collector_outage() {
    let outage = Duration::from_secs(
        std::env::var("SONDE_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(&dir.path().join("collector"), &[]);
    let agent = start_agent(&collector, &dir.path().join("buffer"));
    let api = collector.api();
    // node_time_seconds is in every snapshot, one series per node.
    let first = wait_for_series(
        &api,
        "node_time_seconds{job=\"sonde-agent\"}",
        Duration::from_secs(30),
        &agent,
        &collector,
    );
    let node = first[0].0.get("node").cloned().unwrap_or_default();
    std::thread::sleep(Duration::from_secs(3));

    let down_at = now_s();
    collector.kill9();
    eprintln!(
        "collector killed; down for {outage:?} while the agent keeps exporting every {EXPORT_INTERVAL_SECS}s"
    );
    std::thread::sleep(outage);
    collector.restart();
    let up_at = now_s();

    // Wait for the buffer to drain: samples up to a moment after the restart, with no gap.
    let selector = format!("node_time_seconds{{job=\"sonde-agent\", node=\"{node}\"}}");
    let deadline = Instant::now() + outage + Duration::from_secs(60);
    let (mut times, mut worst);
    loop {
        let window = (now_s() - down_at + 30.0).ceil() as u64;
        times = match api.instant(&format!("{selector}[{window}s]"), now_s()) {
            Ok(QueryValue::Matrix(m)) if m.len() == 1 => {
                m[0].1.iter().map(|p| p.0).collect::<Vec<f64>>()
            }
            _ => Vec::new(),
        };
        worst = largest_gap(&times, down_at - 2.0);
        let reaches = times.last().is_some_and(|t| *t > up_at + 2.0);
        if reaches && worst.is_some_and(|(gap, _)| gap <= 2.5 * EXPORT_INTERVAL_SECS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the outage ({down_at:.1} to {up_at:.1}) the samples of {selector} still have a gap of {worst:?} s \
             (gap, after time) or stop at {:?}: snapshots taken while the collector was down did not arrive\n\
             agent log:\n{}\ncollector log:\n{}",
            times.last(),
            agent.log_text(),
            collector.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let covered = times
        .iter()
        .filter(|t| **t >= down_at && **t <= up_at)
        .count();
    let expected = ((up_at - down_at) / EXPORT_INTERVAL_SECS).floor() as usize;
    assert!(
        covered + 2 >= expected,
        "{covered} samples inside the {:.1}s outage, expected about {expected} (one per export interval)",
        up_at - down_at
    );
    eprintln!(
        "{covered} snapshots taken during the {:.1}s outage arrived; largest gap {worst:?}",
        up_at - down_at
    );
}

/// The largest distance between consecutive timestamps from the last one at or before
/// `from` on, with the time it starts at; `None` if no sample is that early.
fn largest_gap(times: &[f64], from: f64) -> Option<(f64, f64)> {
    let start = times.iter().rposition(|t| *t <= from)?;
    times[start..]
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}
