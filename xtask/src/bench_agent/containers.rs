//! What containers cost the agent: its scrape with 0, 100 and 200 kubelet-style containers
//! on the node (see `kubepods`), in interleaved rounds, so that per-container figures are
//! differences between cases measured minutes apart on the same noisy VM.
//!
//! Per round and case: create the containers (none for 0), start the agent fresh, wait until
//! every container has a run-queue latency series on /metrics (so its probe map entry exists
//! and is named), measure as the scrape bench does (`scrape::measure`: idle CPU, warm-up,
//! then at least 200 scrapes and 3 s), stop the agent, remove the containers.
//! Per round, per container: (value at 200 − value at 0) / 200, and the same over each half
//! (0→100, 100→200) to see whether the cost stays linear.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{
    guard::{self, TempDir},
    http,
    kubepods::{Containers, Hierarchies, Naming},
    prom, scrape,
    stats::Samples,
};
use crate::step::say;

/// Containers on the node, per case; the last is the one the per-container figures are for.
pub const COUNTS: [usize; 3] = [0, 100, 200];
const ENTRIES_TIMEOUT: Duration = Duration::from_secs(60);

/// The measures with a per-container figure: (key, factor from the key's unit to the
/// per-container unit).
pub const PER_CONTAINER: [(&str, f64); 4] = [
    ("cpu_ms", 1e3),     // ms -> µs
    ("wall_ms", 1e3),    // ms -> µs
    ("rss_mib", 1024.0), // MiB -> KiB
    ("series", 1.0),     // sample lines
];

/// The key of a measure in a case: `c200/cpu_ms`.
pub fn key(n: usize, measure: &str) -> String {
    format!("c{n}/{measure}")
}

/// Per-container keys: `per/cpu_ms` (0 → most), `per_lo/cpu_ms`, `per_hi/cpu_ms` (each half).
pub fn per_key(span: &str, measure: &str) -> String {
    format!("{span}/{measure}")
}

/// Samples: `c<n>/<measure>` for what `scrape::measure` records plus `ours` (series naming
/// the bench's containers) and `load_ms_per_s` (the containers' own CPU), and the
/// per-container figures under `per`, `per_lo`, `per_hi`.
pub fn bench(rounds: usize, dir: &TempDir, h: &Hierarchies) -> Result<Samples> {
    let mut names = Naming::new();
    say(&format!(
        "containers: kubelet-style cgroups in {}, marked {}",
        h.describe(),
        names.marker()
    ));
    let mut samples = Samples::default();
    for round in 0..rounds {
        let mut order = COUNTS;
        if round % 2 == 1 {
            order.reverse();
        }
        for n in order {
            say(&format!(
                "containers, round {}/{rounds}: sonde-agent with {n} containers",
                round + 1
            ));
            let containers = Containers::start(h, &mut names, n, dir)?;
            let (agent, port) = super::start_agent(dir, "agent-containers.log")?;
            wait_for_entries(port, n, &names.marker())?;
            let (load_before, start) = (containers.cpu_seconds(), Instant::now());
            let body = scrape::measure(&agent, port, &format!("c{n}"), &mut samples)?;
            let load = (containers.cpu_seconds() - load_before) / start.elapsed().as_secs_f64();
            let ours = prom::sample_lines(&body)
                .filter(|l| l.contains(&names.marker()))
                .count();
            samples.push(&key(n, "ours"), ours as f64);
            samples.push(&key(n, "load_ms_per_s"), load * 1e3);
            drop(agent);
            drop(containers);
        }
        per_container(&mut samples);
    }
    Ok(samples)
}

/// Waits until the agent serves a run-queue latency series for each of the `n` containers:
/// their processes have run, the probe map has their cgroups, the agent has read the map and
/// named the cgroups.
fn wait_for_entries(port: u16, n: usize, marker: &str) -> Result<()> {
    let mut seen = 0;
    let waited = guard::wait_until(
        "run-queue series for every container",
        ENTRIES_TIMEOUT,
        || {
            let Ok(r) = http::get(port, "/metrics") else {
                return Ok(false);
            };
            seen = prom::sample_lines(&r.body)
                .filter(|l| {
                    l.contains("runqueue_latency_seconds_count{")
                        && l.contains(marker)
                        && l.contains(".scope")
                })
                .count();
            Ok(seen >= n)
        },
    );
    if let Err(e) = waited {
        bail!("{e} ({seen} of {n} containers have one)");
    }
    Ok(())
}

/// This round's per-container figures, from its last value of each case.
fn per_container(samples: &mut Samples) {
    let [none, half, most] = COUNTS;
    for (measure, factor) in PER_CONTAINER {
        let last = |n: usize| samples.get(&key(n, measure)).last().copied();
        let (Some(a), Some(b), Some(c)) = (last(none), last(half), last(most)) else {
            continue;
        };
        let slope =
            |from: f64, to: f64, containers: usize| (to - from) / containers as f64 * factor;
        let figures = [
            ("per", slope(a, c, most - none)),
            ("per_lo", slope(a, b, half - none)),
            ("per_hi", slope(b, c, most - half)),
        ];
        for (span, value) in figures {
            samples.push(&per_key(span, measure), value);
        }
    }
}
