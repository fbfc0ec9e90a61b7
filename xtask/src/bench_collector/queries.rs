//! Range-query latency: a fixed set of dashboard-like queries over the last 1 to 4 hours of
//! the data, each asked of every peer once per round; the peers' order rotates every query
//! and round so none is always first (warm caches) or last. Time is the whole HTTP round
//! trip, response read and parsed.

use std::time::Instant;

use anyhow::{Result, bail};

use super::{
    peers::{Kind, Peer},
    promapi::{PromApi, QueryValue},
};
use crate::bench_agent::{guard, stats::Samples};

pub struct Query {
    pub name: &'static str,
    pub expr: &'static str,
    pub hours: f64,
    pub step_s: f64,
}

pub const QUERIES: &[Query] = &[
    Query {
        name: "cpu-by-instance-1h",
        expr: "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
        hours: 1.0,
        step_s: 15.0,
    },
    Query {
        name: "cpu-by-mode-4h",
        expr: "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        hours: 4.0,
        step_s: 60.0,
    },
    Query {
        name: "p99-latency-4h",
        expr: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        hours: 4.0,
        step_s: 60.0,
    },
    Query {
        name: "p90-by-instance-2h",
        expr: "histogram_quantile(0.9, sum by (instance, le) (rate(http_request_duration_seconds_bucket{handler=\"/api\"}[5m])))",
        hours: 2.0,
        step_s: 30.0,
    },
    Query {
        name: "topk-network-1h",
        expr: "topk(5, rate(node_network_receive_bytes_total[5m]))",
        hours: 1.0,
        step_s: 15.0,
    },
    Query {
        name: "mem-available-ratio-4h",
        expr: "avg by (instance) (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        hours: 4.0,
        step_s: 60.0,
    },
    Query {
        name: "disk-io-by-device-3h",
        expr: "sum by (device) (rate(node_disk_io_time_seconds_total[5m]))",
        hours: 3.0,
        step_s: 60.0,
    },
];

/// Per query and peer: latency in ms per round (`<query>/<peer>`), and series returned.
pub struct Latencies {
    pub ms: Samples,
    /// `(query, peer) -> series in the answer` (from the last round).
    pub series: std::collections::BTreeMap<(String, Kind), usize>,
}

/// Runs `rounds` rounds over the data `[start_s, end_s]`; a query's range is its hours,
/// cut to the data's span, ending at the data's end.
pub fn bench(peers: &[Peer], rounds: usize, start_s: f64, end_s: f64) -> Result<Latencies> {
    let apis: Vec<(Kind, PromApi)> = peers
        .iter()
        .map(|p| (p.kind, PromApi::new(&p.base())))
        .collect();
    let mut out = Latencies {
        ms: Samples::default(),
        series: Default::default(),
    };
    let mut turn = 0;
    for round in 0..rounds {
        for q in QUERIES {
            let start = (end_s - q.hours * 3600.0).max(start_s);
            for k in 0..apis.len() {
                guard::check_interrupt()?;
                let (kind, api) = &apis[(k + turn) % apis.len()];
                let t = Instant::now();
                let answer = api.range(q.expr, start, end_s, q.step_s);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let series = match answer {
                    Ok(QueryValue::Matrix(m)) => m.len(),
                    Ok(other) => bail!(
                        "{} answered {} with a {}",
                        kind.name(),
                        q.name,
                        other.kind()
                    ),
                    Err(e) => bail!(
                        "{} failed {} ({}): {} {}",
                        kind.name(),
                        q.name,
                        q.expr,
                        e.error_type,
                        e.error
                    ),
                };
                out.ms.push(&key(q.name, *kind), ms);
                out.series.insert((q.name.to_string(), *kind), series);
            }
            turn += 1;
        }
        crate::step::say(&format!("query round {} of {rounds} done", round + 1));
    }
    Ok(out)
}

pub fn key(query: &str, kind: Kind) -> String {
    format!("{query}/{}", kind.name())
}
