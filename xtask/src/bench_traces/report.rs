//! The traces bench's results as the Markdown section `bench:traces`.

use std::fmt::Write as _;

use super::{Measured, Options};
use crate::bench_agent::{
    report::{Machine, num},
    stats::{Samples, Spread},
};

/// The OpenTelemetry Collector's published throughput, spans/s per core.
const ANCHOR_PER_CORE: f64 = 15_000.0;
/// The bar, spans/s per collector core.
const BAR_PER_CORE: f64 = 50_000.0;

pub fn push(samples: &mut Samples, m: &Measured) {
    samples.push("per_core", m.spans as f64 / m.cpu_s);
    samples.push("wall", m.spans as f64 / m.wall_s);
    samples.push("bytes_per_span", m.disk_bytes as f64 / m.spans as f64);
    samples.push("rss_mib", m.peak_rss_bytes as f64 / (1 << 20) as f64);
    samples.push("lost", m.spans as f64 - m.stored);
    samples.push("refused", m.refused as f64);
}

fn cell(s: Option<Spread>) -> String {
    s.map_or("—".into(), |s| {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    })
}

pub fn render(m: &Machine, opts: &Options, d: &Samples) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "## cargo xtask bench traces\n\n\
         {run}\n\
         Command: `cargo xtask bench traces --spans {spans} --batch {batch} --clients {clients} --rounds {rounds}` (release build).\n\
         Cells: median over rounds (min–max).\n\n\
         Each round a fresh collector takes {spans} spans as OTLP/HTTP protobuf requests of {batch} spans \
         (whole traces of 10 spans over 6 services, 6 attributes each, one of them a unique request id) \
         from {clients} concurrent senders on the same machine, each request acknowledged once durable. \
         Per core = spans / the collector's utime+stime during the run. Bytes per span = blocks allocated \
         under `<data-dir>/traces` after a clean stop. No trace store is packaged for Debian, so the \
         OpenTelemetry Collector's published figure stands in for a peer.\n\n\
         | per round | Sonde collector |\n|---|---|\n",
        run = m.run_line(),
        spans = opts.spans,
        batch = opts.batch,
        clients = opts.clients,
        rounds = opts.rounds,
    );
    for (name, key) in [
        ("spans/s per collector core", "per_core"),
        ("spans/s, wall clock (senders on the same cores)", "wall"),
        ("bytes on disk per span", "bytes_per_span"),
        ("collector peak RSS (MiB)", "rss_mib"),
        ("spans lost (sent − stored)", "lost"),
        ("requests refused", "refused"),
    ] {
        let _ = writeln!(s, "| {name} | {} |", cell(d.spread(key)));
    }
    let per_core = d.spread("per_core").map_or(f64::NAN, |x| x.median);
    let lost: f64 = d.get("lost").iter().sum();
    let verdict = if per_core >= BAR_PER_CORE && lost == 0.0 {
        "PASS"
    } else {
        "MISS"
    };
    let _ = writeln!(
        s,
        "\n- **{verdict}**: {} spans/s per collector core (median; bar: at least {}), {}× the \
         OpenTelemetry Collector's published ~{} spans/s per core (which only forwards, storing nothing); \
         {lost} spans lost over all rounds (bar: 0).",
        num(per_core),
        num(BAR_PER_CORE),
        num(per_core / ANCHOR_PER_CORE),
        num(ANCHOR_PER_CORE),
    );
    s
}
