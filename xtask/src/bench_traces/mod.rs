//! `cargo xtask bench traces`: spans ingested end to end per collector core,
//! and bytes stored per span (release build).
//!
//! Per round, a fresh collector; `--clients` threads post the pre-encoded
//! requests ([`data`]) to its OTLP/HTTP `/v1/traces`, each request whole
//! traces, each acknowledged only once durable. Spans per core-second = spans
//! acknowledged / the collector's utime+stime over the run (the load generator
//! runs beside it on the same cores, so wall-clock spans/s is also shown but is
//! the weaker figure). Then a clean stop (the head becomes a segment) and the
//! bytes allocated under `<data-dir>/traces` per span. The collector's
//! `sonde_collector_trace_stored_spans` must equal the spans sent: none lost.
//!
//! No trace store is packaged for Debian (no Jaeger, Tempo or OpenTelemetry
//! Collector), so the OpenTelemetry Collector's published figure (about 15k
//! spans/s per core) is the anchor the report compares with; the bar
//! is 50k spans/s per core.

mod data;
mod report;

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench_agent::{
        guard::{self, Running, TempDir},
        http,
        scrape::{cpu_seconds, status_bytes},
        stats::Samples,
    },
    bench_collector::peers::allocated_bytes,
    step::{self, say},
};

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Spans sent per round.
    #[arg(long, default_value_t = 200_000)]
    pub spans: usize,
    /// Spans per request (whole traces of 10 spans).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Rounds; the report gives the median and min–max.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Use the release collector already in the target dir instead of building it.
    #[arg(long)]
    pub no_build: bool,
}

/// One round's numbers.
pub struct Measured {
    pub spans: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
    pub disk_bytes: u64,
    pub stored: f64,
    pub refused: u64,
}

pub fn run(opts: &Options) -> Result<()> {
    if opts.spans == 0
        || opts.batch < data::SPANS_PER_TRACE
        || opts.clients == 0
        || opts.rounds == 0
    {
        bail!("--spans, --clients and --rounds must be above 0, and --batch at least 10");
    }
    if opts.no_build {
        say("--no-build: using the release collector already built");
    } else {
        say("building sonde-collector (release)");
        step::cargo(&["build", "--release", "-p", "sonde-collector"])?;
    }
    guard::stop_on_interrupt();
    let requests = opts.spans.div_ceil(opts.batch);
    say(&format!(
        "generating {requests} requests of {} spans",
        opts.batch
    ));
    let bodies = data::generate(requests, opts.batch);
    let machine = crate::bench_agent::report::Machine::detect();
    let dir = TempDir::with_prefix("sonde-bench-traces-")?;
    let mut samples = Samples::default();
    for r in 0..opts.rounds {
        say(&format!("round {} of {}", r + 1, opts.rounds));
        let m = once(&dir.path(&format!("round-{r}")), &bodies, opts)?;
        say(&format!(
            "  {:.0} spans/s per collector core, {:.0} spans/s wall, {:.1} bytes/span on disk, {} refused",
            m.spans as f64 / m.cpu_s,
            m.spans as f64 / m.wall_s,
            m.disk_bytes as f64 / m.spans as f64,
            m.refused
        ));
        report::push(&mut samples, &m);
    }
    let section = report::render(&machine, opts, &samples);
    println!("{section}");
    let path = crate::bench_agent::report::write_section("traces", &section)?;
    say(&format!("results written to {}", path.display()));
    Ok(())
}

fn once(data_dir: &Path, bodies: &[Vec<u8>], opts: &Options) -> Result<Measured> {
    std::fs::create_dir_all(data_dir)?;
    let (http_port, otlp_port) = (guard::free_port()?, guard::free_port()?);
    let mut cmd = Command::new(step::target_dir().join("release/sonde-collector"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .args(["--otlp-http-listen", &format!("127.0.0.1:{otlp_port}")])
        .args([
            "--grpc-listen",
            &format!("127.0.0.1:{}", guard::free_port()?),
        ])
        .args(["--log-level", "warn"]);
    let collector = Running::spawn("sonde-collector", cmd)?;
    guard::wait_until("the collector ready", Duration::from_secs(60), || {
        Ok(http::get(http_port, "/-/ready").is_ok_and(|r| r.status == 200))
    })?;
    let pid = collector.pid();
    let url = format!("http://127.0.0.1:{otlp_port}/v1/traces");
    let cpu0 = cpu_seconds(pid)?;
    let start = Instant::now();
    let refused: u64 = thread::scope(|s| {
        let senders: Vec<_> = (0..opts.clients)
            .map(|c| {
                let url = &url;
                s.spawn(move || send(url, bodies.iter().skip(c).step_by(opts.clients)))
            })
            .collect();
        senders
            .into_iter()
            .map(|h| h.join().unwrap_or(u64::MAX))
            .sum()
    });
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds(pid)? - cpu0;
    guard::check_interrupt()?;
    let peak_rss_bytes = status_bytes(pid, "VmHWM:")?;
    let metrics = http::get(http_port, "/metrics")?.body;
    let stored = metric(&metrics, "sonde_collector_trace_stored_spans")
        .context("the collector's /metrics has no sonde_collector_trace_stored_spans")?;
    // A clean stop: the head is cut into a segment, so the disk figure is the stored form.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    collector.finish(Duration::from_secs(120))?;
    let spans = (bodies.len() * opts.batch) as u64;
    Ok(Measured {
        spans,
        wall_s,
        cpu_s,
        peak_rss_bytes,
        disk_bytes: allocated_bytes(&data_dir.join("traces"))?,
        stored,
        refused,
    })
}

/// Posts each body; returns how many were not answered 200.
fn send<'a>(url: &str, bodies: impl Iterator<Item = &'a Vec<u8>>) -> u64 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut refused = 0;
    for body in bodies {
        let ok = agent
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .send(&body[..])
            .is_ok_and(|r| r.status() == 200);
        refused += u64::from(!ok);
    }
    refused
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
