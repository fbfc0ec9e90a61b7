//! `cargo xtask bench collector`: Sonde's collector next to Prometheus 2.42 and
//! VictoriaMetrics 1.79, in one run, on the same generated data.
//!
//! 1. Generate node_exporter-like data (default 10k series, 15 s, 4 h, fixed seed) as
//!    remote_write requests, once (see `data`).
//! 2. Start every peer fresh; write the requests into each in turn with a few concurrent
//!    clients, in time order: ingest rate, refused requests, peak RSS.
//! 3. Range queries over 1-4 h, repeated, interleaved across peers: median and min–max.
//! 4. Disk: each peer stopped cleanly, its data directory counted (allocated bytes, each
//!    inode once, by top-level entry); for Prometheus also a snapshot, its compacted form;
//!    Sonde counted as ingested, then after `POST /api/v1/admin/tsdb/compact` and the stop.
//!
//! The table goes to stdout and, as the `bench:collector` section, to BENCHMARKS.md.

mod data;
mod ingest;
pub(crate) mod peers;
mod queries;
mod report;

#[allow(dead_code)]
#[path = "../../../tests/src/promapi.rs"]
mod promapi;
/// Shared by path with the tests crate: xtask must not depend on `sonde-tests`, which
/// would compile kube and k8s-openapi into every `cargo xtask`. The bench uses part of them.
#[allow(dead_code)]
#[path = "../../../tests/src/remote_write.rs"]
mod rw;

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench_agent::guard::{self, TempDir},
    step::{self, say},
};
use peers::{Kind, Peer};

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Series to generate (about 107 per node: whole groups, so up to 12 more).
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Hours of data, one sample per series every 15 s, ending now.
    #[arg(long, default_value_t = 4.0)]
    pub hours: f64,
    /// Rounds of the range queries.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Concurrent remote_write clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Which peers to run, comma separated: sonde, prometheus, victoria-metrics.
    #[arg(
        long,
        default_value = "sonde,prometheus,victoria-metrics",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
}

/// What was measured, per peer.
pub struct PeerResult {
    pub kind: Kind,
    pub version: String,
    pub ingest: ingest::Ingested,
    pub peak_rss: u64,
    pub rss_after_ingest: u64,
    pub rss_after_queries: u64,
    pub series_found: f64,
    /// Top-level entry -> bytes, after a clean stop.
    pub disk: BTreeMap<String, u64>,
    /// Prometheus only: the snapshot's bytes, by entry.
    pub compacted: Option<BTreeMap<String, u64>>,
}

pub fn run(opts: &Options) -> Result<()> {
    let kinds = preflight(opts)?;
    if kinds.contains(&Kind::Sonde) {
        say("building sonde-collector (release)");
        step::cargo(&["build", "--release", "-p", "sonde-collector"])?;
    }
    guard::stop_on_interrupt();
    let machine = crate::bench_agent::report::Machine::detect();
    let dir = TempDir::with_prefix("sonde-bench-collector-")?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let end_ms = (now_ms / data::STEP_MS - 1) * data::STEP_MS;
    say(&format!(
        "generating {} series x {} h at 15 s (seed {}), for {} clients",
        opts.series,
        opts.hours,
        data::SEED,
        opts.clients
    ));
    let generated = data::generate(&dir.path(""), opts.series, opts.hours, opts.clients, end_ms)?;
    say(&format!(
        "{} series, {} samples in {} requests ({:.1} MiB of snappy protobuf)",
        generated.series,
        generated.samples,
        generated.requests,
        generated.bytes as f64 / (1 << 20) as f64
    ));

    let mut running: Vec<Peer> = Vec::new();
    for kind in &kinds {
        say(&format!("starting {}", kind.name()));
        running.push(Peer::start(*kind, &dir)?);
    }
    let mut results = Vec::new();
    {
        let frames = ingest::load(&generated.files)?;
        for peer in &running {
            say(&format!(
                "writing {} samples into {} with {} clients",
                generated.samples,
                peer.kind.name(),
                frames.len()
            ));
            let ingested = ingest::replay(&peer.write_url(), &frames)?;
            peer.flush()?;
            let (_, peak) = peer.rss()?;
            say(&format!(
                "{}: {:.0} samples/s, {} of {} requests refused{}",
                peer.kind.name(),
                generated.samples as f64 / ingested.wall.as_secs_f64(),
                ingested.refused,
                ingested.requests,
                ingested
                    .first_refusal
                    .as_deref()
                    .map(|r| format!(" (first: {r})"))
                    .unwrap_or_default()
            ));
            if ingested.refused > 0 {
                say(&format!(
                    "{}'s log ends:\n{}",
                    peer.kind.name(),
                    peer.log_tail(&dir)
                ));
            }
            results.push(PeerResult {
                kind: peer.kind,
                version: peer.kind.version(),
                ingest: ingested,
                peak_rss: peak,
                rss_after_ingest: 0,
                rss_after_queries: 0,
                series_found: 0.0,
                disk: BTreeMap::new(),
                compacted: None,
            });
        }
    }
    guard::sleep(Duration::from_secs(5))?;
    let (start_s, end_s) = (
        generated.start_ms as f64 / 1000.0,
        generated.end_ms as f64 / 1000.0,
    );
    for (peer, r) in running.iter().zip(results.iter_mut()) {
        r.rss_after_ingest = peer.rss()?.0;
        let api = promapi::PromApi::new(&peer.base());
        r.series_found = match api.instant("count({__name__=~\".+\"})", end_s) {
            Ok(promapi::QueryValue::Vector(v)) => v.first().map_or(0.0, |s| s.1.1),
            Ok(other) => bail!("{}: count() answered a {}", peer.kind.name(), other.kind()),
            Err(e) => bail!(
                "{}: count() failed: {} {}",
                peer.kind.name(),
                e.error_type,
                e.error
            ),
        };
    }
    say(&format!(
        "range queries: {} rounds of {} queries on {} peers",
        opts.repeats,
        queries::QUERIES.len(),
        running.len()
    ));
    let latencies = queries::bench(&running, opts.repeats, start_s, end_s)?;
    for (peer, r) in running.iter().zip(results.iter_mut()) {
        r.rss_after_queries = peer.rss()?.0;
        if peer.kind == Kind::Prometheus {
            say("Prometheus: writing a snapshot (its head written out as a block)");
            let snap = peer.prometheus_snapshot()?;
            r.compacted = Some(peers::disk_usage(&snap, &[])?);
        }
        if peer.kind == Kind::Sonde {
            // As ingested (every acknowledged write is fsynced, so nothing is pending),
            // then compacted through its admin API and measured after the stop below.
            r.disk = peers::disk_usage(&peer.data, &[]).context("Sonde data")?;
            say("Sonde: POST /api/v1/admin/tsdb/compact (the head written out as blocks)");
            let done = peer.sonde_compact()?;
            say(&format!(
                "Sonde compacted in {} ms: {} blocks, {} block bytes, WAL {} -> {} bytes",
                done["elapsedMs"],
                done["after"]["blocks"],
                done["after"]["blockBytes"],
                done["before"]["walBytes"],
                done["after"]["walBytes"]
            ));
        }
    }
    for (peer, r) in running.iter_mut().zip(results.iter_mut()) {
        say(&format!(
            "stopping {} (SIGTERM) and counting its data directory",
            peer.kind.name()
        ));
        peer.stop();
        let after = peers::disk_usage(&peer.data, &["snapshots"])
            .with_context(|| format!("{} data", peer.kind.name()))?;
        if peer.kind == Kind::Sonde {
            r.compacted = Some(after);
            continue;
        }
        r.disk = after;
        if peer.kind == Kind::Victoria {
            // Its stored form: the parts and the index; not `cache` (caches it persists on
            // shutdown and rebuilds when missing) nor `tmp`.
            let stored = r
                .disk
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "data" | "indexdb" | "metadata"));
            r.compacted = Some(stored.map(|(k, v)| (k.clone(), *v)).collect());
        }
    }

    let section = report::render(&machine, opts, &generated, &results, &latencies);
    println!("{section}");
    let path = crate::bench_agent::report::write_section("collector", &section)?;
    say(&format!("results written to {}", path.display()));
    Ok(())
}

fn preflight(opts: &Options) -> Result<Vec<Kind>> {
    let mut kinds = opts
        .peers
        .iter()
        .map(|p| Kind::parse(p))
        .collect::<Result<Vec<_>>>()?;
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        bail!("--peers names no peer");
    }
    if opts.series == 0 || opts.hours <= 0.0 || opts.repeats == 0 || opts.clients == 0 {
        bail!("--series, --hours, --repeats and --clients must be greater than zero");
    }
    for (kind, program) in [
        (Kind::Prometheus, "prometheus"),
        (Kind::Victoria, "victoria-metrics"),
    ] {
        if kinds.contains(&kind)
            && !step::succeeds(program, &["--version"])
            && !step::succeeds(program, &["-version"])
        {
            bail!("{program} is not installed (`cargo xtask setup` installs it)");
        }
    }
    Ok(kinds)
}
