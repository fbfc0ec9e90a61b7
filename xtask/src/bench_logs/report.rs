//! The logs bench's results as the Markdown section `bench:logs`: median and min–max over
//! the runs, the published anchors of two peer shippers, and the bar.

use std::fmt::Write as _;

use super::{Options, corpus::Corpus, rsyslog::PeerRun, run::Measured};
use crate::bench_agent::{
    report::{Machine, num},
    stats::Spread,
};

const MIB: f64 = (1 << 20) as f64;
/// The bar: end-to-end throughput, and nothing lost.
const BAR_MIB_S: f64 = 100.0;

fn spread(values: &[f64]) -> String {
    Spread::of(values).map_or("—".into(), |s| {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    })
}

pub fn render(
    m: &Machine,
    opts: &Options,
    c: &Corpus,
    runs: &[Measured],
    peer: Option<&(String, Vec<PeerRun>)>,
) -> String {
    let mut s = String::new();
    let col = |f: &dyn Fn(&Measured) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let _ = write!(
        s,
        "## cargo xtask bench logs\n\n\
         {run}\n\
         Command: `cargo xtask bench logs --mib {mib} --containers {containers} --repeats {repeats} --peers {peers}` (release builds).\n\n\
         Corpus: {lines} CRI lines, {raw:.1} MiB, over {containers} containers (one `0.log` each in the kubelet \
         layout); messages 100–300 B, a third each JSON, logfmt and plain text, 10% on stderr, timestamps spread \
         over the half hour before the run; written before anything starts. Each run starts a fresh collector and \
         agent (`--probes none`, empty positions file and buffer), then moves the pod directories into the agent's \
         empty `--log-dir` at once; the clock runs from that move until the collector's \
         `sonde_collector_log_entries_received_total` (entries stored durably, duplicates left out) reaches the line count. Lines \
         lost = lines written − lines the collector then counts with LogQL (`sum(count_over_time(...[1m]))` on a \
         one-minute grid). CPU: utime+stime from /proc over the timed span; RSS: VmHWM; disk: allocated bytes under \
         `<data-dir>/logs` after a clean stop. Agent and collector share the machine's {cpus}.\n\n",
        run = m.run_line(),
        mib = opts.mib,
        containers = opts.containers,
        repeats = opts.repeats,
        peers = opts.peers.join(","),
        lines = c.lines(),
        raw = c.bytes() as f64 / MIB,
        cpus = std::thread::available_parallelism().map_or("?".into(), |n| format!("{n} CPUs")),
    );
    let raw_mib = c.bytes() as f64 / MIB;
    let _ = writeln!(s, "| {} runs | median (min–max) |\n|---|---|", runs.len());
    let rows: Vec<(&str, Vec<f64>)> = vec![
        ("end to end (MiB/s)", col(&|r| r.mib_per_s(c))),
        ("end to end (lines/s)", col(&|r| r.lines_per_s(c))),
        ("wall time (s)", col(&|r| r.wall_s)),
        ("agent CPU (cores)", col(&|r| r.agent_cpu_s / r.wall_s)),
        (
            "MiB per agent CPU-second",
            col(&|r| raw_mib / r.agent_cpu_s),
        ),
        (
            "agent peak RSS (MiB)",
            col(&|r| r.agent_peak_rss as f64 / MIB),
        ),
        (
            "collector CPU (cores)",
            col(&|r| r.collector_cpu_s / r.wall_s),
        ),
        (
            "collector peak RSS (MiB)",
            col(&|r| r.collector_peak_rss as f64 / MIB),
        ),
        (
            "disk per raw MiB (MiB)",
            col(&|r| r.disk_bytes as f64 / MIB / raw_mib),
        ),
        ("lines lost", col(&|r| r.lost as f64)),
        ("duplicates the collector dropped", col(&|r| r.deduplicated)),
        ("entries the collector rejected", col(&|r| r.rejected)),
        (
            "lines the agent counted as dropped",
            col(&|r| r.agent_dropped),
        ),
    ];
    for (name, v) in &rows {
        let _ = writeln!(s, "| {name} | {} |", spread(v));
    }
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(s, "\n- run {}: lost lines from {}", i + 1, r.lost_source);
    }
    let median = Spread::of(&col(&|r| r.mib_per_s(c))).map_or(f64::NAN, |s| s.median);
    let lost: u64 = runs.iter().map(|r| r.lost).sum();
    let _ = write!(
        s,
        "\n| end to end, file → network | MiB/s | source |\n|---|---|---|\n\
         | **Sonde agent → collector (this run, median)** | **{}** | this bench: CRI parsing, OTLP/gRPC zstd, 4 requests in flight, collector WAL fsync and dedup |\n\
         {peer_row}| Vector, file → TCP | 76.7 | Vector's published soak results (other hardware) |\n\
         | Fluent Bit, file → TCP | 35 | the same published comparison (other hardware) |\n\
         | bar | ≥ {} with 0 lines lost | |\n\n",
        num(median),
        num(BAR_MIB_S),
        peer_row = peer.map_or(String::new(), |(v, p)| {
            let mibs: Vec<f64> = p.iter().map(|r| raw_mib / r.wall_s).collect();
            format!(
                "| rsyslog imfile → omfwd TCP (this machine, median) | {} | {v}, measured here side by side, same corpus |\n",
                num(Spread::of(&mibs).map_or(f64::NAN, |s| s.median))
            )
        })
    );
    let verdict = if median >= BAR_MIB_S && lost == 0 {
        "**Bar met**"
    } else {
        "**Bar not met**"
    };
    let _ = writeln!(
        s,
        "{verdict}: median {} MiB/s, {lost} lines lost over all runs. The anchors are published numbers for \
         other machines and pipelines (no parsing, no storage at the far end), quoted for scale, not measured here: \
         no Fluent Bit, Vector or Promtail is packaged in Debian on this machine.",
        num(median)
    );
    match peer {
        Some((v, p)) => {
            let _ = writeln!(
                s,
                "\n### rsyslog side by side ({v})\n\n\
                 Same corpus and runs, interleaved with Sonde's: `imfile` (inotify) on the pod files, `omfwd` over \
                 TCP to a sink in the bench process that counts lines; the clock runs from rsyslogd's start (the \
                 corpus is already in place) until the sink has every line. No parsing and no storage at the far \
                 end: a lighter pipeline than Sonde's.\n\n| {} runs | median (min–max) |\n|---|---|",
                p.len()
            );
            let rows: Vec<(&str, Vec<f64>)> = vec![
                (
                    "file → TCP (MiB/s)",
                    p.iter().map(|r| raw_mib / r.wall_s).collect(),
                ),
                (
                    "lines/s",
                    p.iter().map(|r| c.lines() as f64 / r.wall_s).collect(),
                ),
                (
                    "CPU (cores)",
                    p.iter().map(|r| r.cpu_s / r.wall_s).collect(),
                ),
                (
                    "MiB per CPU-second",
                    p.iter().map(|r| raw_mib / r.cpu_s).collect(),
                ),
                (
                    "peak RSS (MiB)",
                    p.iter().map(|r| r.peak_rss as f64 / MIB).collect(),
                ),
                (
                    "lines at the sink − lines written",
                    p.iter()
                        .map(|r| r.lines as f64 - c.lines() as f64)
                        .collect(),
                ),
            ];
            for (name, v) in &rows {
                let _ = writeln!(s, "| {name} | {} |", spread(v));
            }
        }
        None => {
            let _ = writeln!(s, "\nrsyslog was not run (`--peers` left it out).");
        }
    }
    s
}
