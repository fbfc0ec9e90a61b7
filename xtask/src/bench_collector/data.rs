//! The bench's data: node_exporter-like series for N nodes (about 107 series per node), one
//! sample every 15 s, generated once from a fixed seed and encoded as remote_write requests
//! into one file per client, so every peer is sent exactly the same bytes and the
//! generation costs nothing during the measurement.
//!
//! Per node: `node_cpu_seconds_total{cpu,mode}` (4 CPUs x 8 modes), 8 `node_memory_*_bytes`
//! gauges, 3 load averages, 16 network and 10 disk counters, 9 filesystem gauges, 5 kernel
//! counters and gauges, and two `http_request_duration_seconds` histograms (11 buckets plus
//! `_sum` and `_count`). Counters grow by random increments around a per-series rate;
//! gauges take bounded random walks; histograms draw a random number of requests with
//! skewed latencies. Each group of series has its own generator seeded from the group's
//! index, so the data does not depend on how many clients send it.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::rw::{TimeSeries, encode};

pub const SEED: u64 = 20_241_122;
pub const STEP_MS: i64 = 15_000;
/// Samples per series per request: one minute of scrapes.
pub const POINTS_PER_REQUEST: usize = 4;
/// Series per request at most (as Prometheus's remote_write shards batch them).
pub const SERIES_PER_REQUEST: usize = 1000;
/// Clients wait for each other every this many requests' worth of time (10 minutes), so
/// none runs more than that ahead: Prometheus refuses samples older than its head allows.
pub const SYNC_EVERY_CHUNKS: u32 = 10;

/// One series' labels, the name as `__name__`, sorted.
type LabelSet = Vec<(String, String)>;
/// One request as stored in a client file: `(chunk, body)`.
pub type Frame = (u32, Vec<u8>);

const HIST_BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

enum Kind {
    /// A counter growing by `rate * 15 s * U(0.5, 1.5)` per step.
    Counter { value: f64, rate: f64 },
    /// A random walk in `[lo, hi]`, moving at most `step` per sample.
    Gauge {
        value: f64,
        lo: f64,
        hi: f64,
        step: f64,
    },
    /// A value that never changes (e.g. `MemTotal`).
    Constant(f64),
    /// A histogram: cumulative bucket counts, sum and count.
    Histogram {
        buckets: [f64; 11],
        sum: f64,
        count: f64,
        rps: f64,
        scale: f64,
    },
}

/// One or more series that evolve together, with their own random generator.
struct Group {
    /// Label sets (the name as `__name__`), one per series of the group.
    labels: Vec<Vec<(String, String)>>,
    kind: Kind,
    rng: Xoshiro256PlusPlus,
}

impl Group {
    /// The next value of each series.
    fn step(&mut self) -> Vec<f64> {
        let rng = &mut self.rng;
        match &mut self.kind {
            Kind::Counter { value, rate } => {
                *value += (*rate * 15.0 * rng.random_range(0.5..1.5)).round();
                vec![*value]
            }
            Kind::Gauge {
                value,
                lo,
                hi,
                step,
            } => {
                *value = (*value + rng.random_range(-1.0..1.0) * *step).clamp(*lo, *hi);
                vec![(*value * 100.0).round() / 100.0]
            }
            Kind::Constant(v) => vec![*v],
            Kind::Histogram {
                buckets,
                sum,
                count,
                rps,
                scale,
            } => {
                let n = (*rps * 15.0 * rng.random_range(0.5..1.5)) as usize;
                for _ in 0..n {
                    // Skewed: most requests fast, a long tail.
                    let latency = rng.random::<f64>().powi(4) * *scale;
                    *sum += latency;
                    *count += 1.0;
                    let first = HIST_BOUNDS
                        .iter()
                        .position(|b| latency <= *b)
                        .unwrap_or(HIST_BOUNDS.len());
                    for b in buckets.iter_mut().skip(first) {
                        *b += 1.0;
                    }
                }
                let mut out = buckets.to_vec();
                out.push((*sum * 1e6).round() / 1e6);
                out.push(*count);
                out
            }
        }
    }
}

fn labels(name: &str, node: usize, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l = vec![
        ("__name__".to_string(), name.to_string()),
        ("instance".to_string(), format!("node-{node:04}:9100")),
        ("job".to_string(), "node".to_string()),
    ];
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l.sort();
    l
}

/// The groups of one node, in a fixed order; `rng` draws their parameters.
fn node_groups(node: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<(Vec<LabelSet>, Kind)> {
    let mut g: Vec<(Vec<LabelSet>, Kind)> = Vec::new();
    let counter = |g: &mut Vec<_>,
                   name: &str,
                   extra: &[(&str, &str)],
                   rate: f64,
                   rng: &mut Xoshiro256PlusPlus| {
        let rate = rate * rng.random_range(0.2..2.0);
        g.push((
            vec![labels(name, node, extra)],
            Kind::Counter {
                value: (rate * 1e5).round(),
                rate,
            },
        ));
    };
    for cpu in ["0", "1", "2", "3"] {
        for (mode, rate) in [
            ("idle", 0.7),
            ("user", 0.15),
            ("system", 0.08),
            ("iowait", 0.02),
            ("irq", 0.001),
            ("softirq", 0.01),
            ("steal", 0.005),
            ("nice", 0.001),
        ] {
            // CPU seconds grow by fractions of a second: keep them fractional.
            let rate = rate * rng.random_range(0.5..1.5);
            g.push((
                vec![labels(
                    "node_cpu_seconds_total",
                    node,
                    &[("cpu", cpu), ("mode", mode)],
                )],
                Kind::Counter {
                    value: 1e4 * rate,
                    rate: rate * 100.0,
                },
            ));
        }
    }
    let total = 16e9 * rng.random_range(1.0f64..4.0).round();
    g.push((
        vec![labels("node_memory_MemTotal_bytes", node, &[])],
        Kind::Constant(total),
    ));
    for (name, frac) in [
        ("MemFree", 0.2),
        ("MemAvailable", 0.5),
        ("Buffers", 0.02),
        ("Cached", 0.3),
        ("Active", 0.4),
        ("Inactive", 0.2),
        ("SwapFree", 0.1),
    ] {
        let v = total * frac;
        g.push((
            vec![labels(&format!("node_memory_{name}_bytes"), node, &[])],
            Kind::Gauge {
                value: v,
                lo: v * 0.5,
                hi: (v * 1.5).min(total),
                step: total * 0.002,
            },
        ));
    }
    for name in ["node_load1", "node_load5", "node_load15"] {
        g.push((
            vec![labels(name, node, &[])],
            Kind::Gauge {
                value: 1.0,
                lo: 0.0,
                hi: 8.0,
                step: 0.2,
            },
        ));
    }
    for device in ["eth0", "lo"] {
        for (dir, scale) in [("receive", 1.0), ("transmit", 0.6)] {
            counter(
                &mut g,
                &format!("node_network_{dir}_bytes_total"),
                &[("device", device)],
                2e5 * scale,
                rng,
            );
            counter(
                &mut g,
                &format!("node_network_{dir}_packets_total"),
                &[("device", device)],
                300.0 * scale,
                rng,
            );
            counter(
                &mut g,
                &format!("node_network_{dir}_errs_total"),
                &[("device", device)],
                0.01,
                rng,
            );
            counter(
                &mut g,
                &format!("node_network_{dir}_drop_total"),
                &[("device", device)],
                0.02,
                rng,
            );
        }
    }
    for device in ["sda", "sdb"] {
        counter(
            &mut g,
            "node_disk_read_bytes_total",
            &[("device", device)],
            5e5,
            rng,
        );
        counter(
            &mut g,
            "node_disk_written_bytes_total",
            &[("device", device)],
            8e5,
            rng,
        );
        counter(
            &mut g,
            "node_disk_reads_completed_total",
            &[("device", device)],
            40.0,
            rng,
        );
        counter(
            &mut g,
            "node_disk_writes_completed_total",
            &[("device", device)],
            60.0,
            rng,
        );
        let rate = rng.random_range(0.01..0.3);
        g.push((
            vec![labels(
                "node_disk_io_time_seconds_total",
                node,
                &[("device", device)],
            )],
            Kind::Counter { value: 1e3, rate },
        ));
    }
    for (mountpoint, device) in [
        ("/", "/dev/sda1"),
        ("/var", "/dev/sda2"),
        ("/home", "/dev/sdb1"),
    ] {
        let size = 1e11 * rng.random_range(1.0f64..10.0).round();
        let extra = [
            ("mountpoint", mountpoint),
            ("device", device),
            ("fstype", "ext4"),
        ];
        g.push((
            vec![labels("node_filesystem_size_bytes", node, &extra)],
            Kind::Constant(size),
        ));
        for name in ["node_filesystem_avail_bytes", "node_filesystem_free_bytes"] {
            let v = size * rng.random_range(0.2..0.8);
            g.push((
                vec![labels(name, node, &extra)],
                Kind::Gauge {
                    value: v,
                    lo: 0.0,
                    hi: size,
                    step: size * 1e-4,
                },
            ));
        }
    }
    counter(&mut g, "node_context_switches_total", &[], 5000.0, rng);
    counter(&mut g, "node_intr_total", &[], 3000.0, rng);
    counter(&mut g, "node_forks_total", &[], 5.0, rng);
    g.push((
        vec![labels("node_procs_running", node, &[])],
        Kind::Gauge {
            value: 2.0,
            lo: 0.0,
            hi: 16.0,
            step: 1.5,
        },
    ));
    g.push((
        vec![labels("node_procs_blocked", node, &[])],
        Kind::Gauge {
            value: 0.0,
            lo: 0.0,
            hi: 4.0,
            step: 0.6,
        },
    ));
    for (handler, rps, scale) in [("/api", 50.0, 3.0), ("/metrics", 2.0, 0.5)] {
        let name = "http_request_duration_seconds";
        let le: Vec<String> = HIST_BOUNDS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_string()])
            .collect();
        let mut series: Vec<_> = le
            .iter()
            .map(|le| {
                labels(
                    &format!("{name}_bucket"),
                    node,
                    &[("handler", handler), ("le", le)],
                )
            })
            .collect();
        series.push(labels(
            &format!("{name}_sum"),
            node,
            &[("handler", handler)],
        ));
        series.push(labels(
            &format!("{name}_count"),
            node,
            &[("handler", handler)],
        ));
        let rps = rps * rng.random_range(0.5..1.5);
        g.push((
            series,
            Kind::Histogram {
                buckets: [0.0; 11],
                sum: 0.0,
                count: 0.0,
                rps,
                scale,
            },
        ));
    }
    g
}

/// All groups for about `series` series (whole groups; a histogram may overshoot by up to 12).
fn groups(series: usize) -> Vec<Group> {
    let mut out = Vec::new();
    let mut count = 0;
    let mut params = Xoshiro256PlusPlus::seed_from_u64(SEED);
    'nodes: for node in 0.. {
        for (labels, kind) in node_groups(node, &mut params) {
            if count >= series {
                break 'nodes;
            }
            count += labels.len();
            let rng = Xoshiro256PlusPlus::seed_from_u64(
                SEED ^ (out.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            out.push(Group { labels, kind, rng });
        }
    }
    out
}

/// What was generated: where each client's requests are, and how much they hold.
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub series: usize,
    pub samples: u64,
    pub requests: u64,
    pub bytes: u64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Generates `hours` of data for about `series` series ending at `end_ms`, and writes
/// client `c`'s share (every `clients`-th group) to `dir/client-c.bin` as frames of
/// `[chunk u32][len u32][snappy protobuf]`, little endian.
pub fn generate(
    dir: &Path,
    series: usize,
    hours: f64,
    clients: usize,
    end_ms: i64,
) -> Result<Generated> {
    let mut all = groups(series);
    let clients = clients.clamp(1, all.len().max(1));
    let points = ((hours * 3600.0 * 1000.0) as i64 / STEP_MS).max(1) as usize;
    let start_ms = end_ms - (points as i64 - 1) * STEP_MS;
    let mut shards: Vec<Vec<Group>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, g) in all.drain(..).enumerate() {
        shards[i % clients].push(g);
    }
    let mut out = Generated {
        files: vec![],
        series: 0,
        samples: 0,
        requests: 0,
        bytes: 0,
        start_ms,
        end_ms,
    };
    for (c, shard) in shards.iter_mut().enumerate() {
        let path = dir.join(format!("client-{c}.bin"));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        out.series += shard.iter().map(|g| g.labels.len()).sum::<usize>();
        for (chunk, first) in (0..points).step_by(POINTS_PER_REQUEST).enumerate() {
            let n = POINTS_PER_REQUEST.min(points - first);
            // values[group][point] = that step's value of each series of the group
            let values: Vec<Vec<Vec<f64>>> = shard
                .iter_mut()
                .map(|g| (0..n).map(|_| g.step()).collect())
                .collect();
            let mut series: Vec<TimeSeries> = Vec::new();
            for (g, vals) in shard.iter().zip(&values) {
                for (k, l) in g.labels.iter().enumerate() {
                    let samples: Vec<(i64, f64)> = (0..n)
                        .map(|p| (start_ms + (first + p) as i64 * STEP_MS, vals[p][k]))
                        .collect();
                    let pairs: Vec<(&str, &str)> =
                        l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                    series.push(TimeSeries::new(&pairs, &samples));
                }
            }
            for batch in series.chunks(SERIES_PER_REQUEST) {
                let body = encode(batch);
                w.write_all(&(chunk as u32).to_le_bytes())?;
                w.write_all(&(body.len() as u32).to_le_bytes())?;
                w.write_all(&body)?;
                out.samples += (batch.len() * n) as u64;
                out.requests += 1;
                out.bytes += body.len() as u64;
            }
        }
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        out.files.push(path);
    }
    Ok(out)
}

/// Reads the frames of one client file back: `(chunk, body)`.
pub fn read_frames(path: &Path) -> Result<Vec<Frame>> {
    let mut r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut frames = Vec::new();
    let mut head = [0u8; 8];
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let chunk = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut body = vec![0; len];
        r.read_exact(&mut body)
            .with_context(|| format!("reading {}: truncated frame", path.display()))?;
        frames.push((chunk, body));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prost::Message;

    use super::*;
    use crate::bench_collector::rw::WriteRequest;

    fn decode_all(g: &Generated) -> BTreeMap<String, Vec<(i64, f64)>> {
        let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for f in &g.files {
            for (_, body) in read_frames(f).unwrap() {
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                for ts in WriteRequest::decode(raw.as_slice()).unwrap().timeseries {
                    let key: Vec<String> = ts
                        .labels
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.value))
                        .collect();
                    series
                        .entry(key.join(","))
                        .or_default()
                        .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
                }
            }
        }
        series
    }

    #[test]
    fn generates_the_same_well_formed_data_for_any_client_count() {
        let dir =
            std::env::temp_dir().join(format!("sonde-xtask-data-test-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let end = 1_700_000_000_000;
        let one = generate(&a, 300, 0.25, 1, end).unwrap();
        let three = generate(&b, 300, 0.25, 3, end).unwrap();
        assert!((300..=312).contains(&one.series), "{} series", one.series);
        assert_eq!(one.samples, one.series as u64 * 60);
        let (x, y) = (decode_all(&one), decode_all(&three));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(x.len(), one.series);
        assert_eq!(x, y, "the data must not depend on the number of clients");
        for (labels, samples) in &x {
            assert_eq!(samples.len(), 60, "{labels}");
            assert!(
                samples.windows(2).all(|w| w[1].0 - w[0].0 == STEP_MS),
                "{labels}: not every 15 s in order"
            );
            assert_eq!(samples.last().unwrap().0, end);
            if labels.contains("_total") || labels.contains("_bucket") || labels.contains("_count")
            {
                assert!(
                    samples.windows(2).all(|w| w[1].1 >= w[0].1),
                    "{labels}: a counter went down"
                );
            }
        }
        // Cumulative buckets: each le at least the one below it, +Inf equal to _count.
        let bucket = |le: &str| {
            x.iter()
                .find(|(k, _)| {
                    k.contains("node-0000")
                        && k.contains("handler=/api")
                        && k.ends_with(&format!("le={le}"))
                })
                .map(|(_, v)| v.last().unwrap().1)
                .unwrap()
        };
        assert!(bucket("0.005") <= bucket("0.1") && bucket("0.1") <= bucket("+Inf"));
        let count = x
            .iter()
            .find(|(k, _)| {
                k.contains("http_request_duration_seconds_count")
                    && k.contains("node-0000")
                    && k.contains("/api")
            })
            .unwrap();
        assert_eq!(bucket("+Inf"), count.1.last().unwrap().1);
    }
}
