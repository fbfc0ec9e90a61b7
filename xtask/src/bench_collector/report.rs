//! The collector bench's results as the Markdown section `bench:collector`.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    Options, PeerResult,
    data::{Generated, POINTS_PER_REQUEST, SERIES_PER_REQUEST},
    peers::Kind,
    queries::{Latencies, QUERIES, key},
};
use crate::bench_agent::{report::Machine, stats::Spread};

const MIB: f64 = (1 << 20) as f64;

fn num(v: f64) -> String {
    if v.is_finite() {
        crate::bench_agent::report::num(v)
    } else {
        "—".into()
    }
}

fn spread(s: Option<Spread>) -> String {
    s.map_or("—".into(), |s| {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    })
}

pub fn render(
    m: &Machine,
    opts: &Options,
    g: &Generated,
    results: &[PeerResult],
    lat: &Latencies,
) -> String {
    let mut s = String::new();
    let sonde = results.iter().find(|r| r.kind == Kind::Sonde);
    let others: Vec<&PeerResult> = results.iter().filter(|r| r.kind != Kind::Sonde).collect();
    let peers: Vec<String> = results
        .iter()
        .map(|r| format!("{}: {}", r.kind.name(), r.version))
        .collect();
    let _ = write!(
        s,
        "## cargo xtask bench collector\n\n\
         {run}\n\
         Command: `cargo xtask bench collector --series {series} --hours {hours} --repeats {repeats} --clients {clients} --peers {peers_flag}`.\n\
         Peers: {peers}.\n\n\
         Data: {gs} node_exporter-like series (per node: CPU-seconds counters by cpu and mode, memory, load, \
         network, disk, filesystem and kernel gauges and counters, two `http_request_duration_seconds` histograms \
         with 11 buckets), one sample every 15 s for {hours} h ending at the start of the run, {samples} samples; \
         counters grow by random increments, gauges take bounded random walks, histograms draw random latencies; \
         fixed seed. Sent as remote_write 1.0 requests ({ppr} samples per series per request, at most {spr} series \
         per request, {req} requests, {mib:.1} MiB snappy protobuf), generated before any peer starts; each peer \
         gets the same bytes from {clients} concurrent clients, each owning a share of the series and sending it in \
         time order, all meeting every 10 minutes of data. Peers are written one after another (the others idle), \
         then queried in interleaved rounds.\n\n",
        run = m.run_line(),
        series = opts.series,
        hours = opts.hours,
        repeats = opts.repeats,
        clients = opts.clients,
        peers_flag = opts.peers.join(","),
        peers = peers.join("; "),
        gs = g.series,
        samples = g.samples,
        ppr = POINTS_PER_REQUEST,
        spr = SERIES_PER_REQUEST,
        req = g.requests,
        mib = g.bytes as f64 / MIB,
    );

    // Ingest, memory and disk: one measurement per peer.
    let mut header = String::from("| per peer |");
    let mut rule = String::from("|---|");
    for r in results {
        let _ = write!(header, " {} |", r.kind.name());
        rule.push_str("---|");
    }
    if sonde.is_some() {
        for o in &others {
            let _ = write!(header, " Sonde / {} |", o.kind.name());
            rule.push_str("---|");
        }
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let samples = g.samples as f64;
    type Row<'a> = (&'a str, Box<dyn Fn(&PeerResult) -> f64>);
    let rows: Vec<Row> = vec![
        (
            "ingest (samples/s)",
            Box::new(move |r: &PeerResult| samples / r.ingest.wall.as_secs_f64()),
        ),
        (
            "ingest wall time (s)",
            Box::new(|r: &PeerResult| r.ingest.wall.as_secs_f64()),
        ),
        (
            "requests refused",
            Box::new(|r: &PeerResult| r.ingest.refused as f64),
        ),
        (
            "series found after ingest",
            Box::new(|r: &PeerResult| r.series_found),
        ),
        (
            "peak RSS during ingest (MiB)",
            Box::new(|r: &PeerResult| r.peak_rss as f64 / MIB),
        ),
        (
            "RSS 5 s after ingest (MiB)",
            Box::new(|r: &PeerResult| r.rss_after_ingest as f64 / MIB),
        ),
        (
            "RSS after the queries (MiB)",
            Box::new(|r: &PeerResult| r.rss_after_queries as f64 / MIB),
        ),
        (
            "disk, data dir after a clean stop (bytes/sample)",
            Box::new(move |r: &PeerResult| r.disk.values().sum::<u64>() as f64 / samples),
        ),
        (
            "disk, compacted (bytes/sample)",
            Box::new(move |r: &PeerResult| compacted(r) / samples),
        ),
    ];
    for (name, f) in &rows {
        let mut line = format!("| {name} |");
        for r in results {
            let _ = write!(line, " {} |", num(f(r)));
        }
        if let Some(sd) = sonde {
            for o in &others {
                let _ = write!(line, " {} |", num(f(sd) / f(o)));
            }
        }
        let _ = writeln!(s, "{line}");
    }
    for r in results.iter().filter(|r| r.ingest.refused > 0) {
        let _ = writeln!(
            s,
            "\n- {} refused {} requests; the first: {}",
            r.kind.name(),
            r.ingest.refused,
            r.ingest.first_refusal.as_deref().unwrap_or("?")
        );
    }

    let _ = writeln!(
        s,
        "\nIngest rate = samples / wall time from the first request to the last answer, all clients together (every \
         request answered 2xx unless counted as refused). RSS: VmHWM (peak) and VmRSS from /proc. Disk: allocated \
         bytes (st_blocks), each inode once, of everything under the peer's data directory after SIGTERM, index \
         included; by top-level entry:\n"
    );
    for r in results {
        let _ = writeln!(s, "- {}: {}", r.kind.name(), breakdown(&r.disk));
    }
    let compact_of = |k: Kind| {
        results
            .iter()
            .find(|r| r.kind == k)
            .and_then(|r| r.compacted.as_ref())
            .map_or("not measured".into(), breakdown)
    };
    let _ = writeln!(
        s,
        "\n\"Compacted\": Prometheus: its `/api/v1/admin/tsdb/snapshot` (the blocks plus the head written out as a \
         block: chunks, index, meta, tombstones; no WAL): {}. VictoriaMetrics: `data` (its merged parts), `indexdb` \
         and `metadata` after `/internal/force_flush` and its own flush on shutdown, without `cache` and `tmp`: {}. \
         Sonde: its whole data directory (blocks, the WAL left, metadata) after `POST /api/v1/admin/tsdb/compact` \
         (every head sample written into blocks, the WAL segments they cover deleted) and a clean stop: {}. \
         Sonde's \"data dir after a clean stop\" row is its data directory as ingested, counted just before that call \
         (every acknowledged write is already fsynced).\n",
        compact_of(Kind::Prometheus),
        compact_of(Kind::Victoria),
        compact_of(Kind::Sonde)
    );

    // Query latency.
    let _ = write!(
        s,
        "### Range-query latency (ms)\n\n{} rounds; in each, every query is asked of every peer once, the peers' order rotating. Cells: median (min–max) over rounds; ratios are taken round by round. Series: how many series each peer answered.\n\n",
        opts.repeats
    );
    let mut header = String::from("| query | range, step |");
    let mut rule = String::from("|---|---|");
    for r in results {
        let _ = write!(header, " {} |", r.kind.name());
        rule.push_str("---|");
    }
    if sonde.is_some() {
        for o in &others {
            let _ = write!(header, " Sonde / {} |", o.kind.name());
            rule.push_str("---|");
        }
    }
    header.push_str(" series |");
    rule.push_str("---|");
    let _ = writeln!(s, "{header}\n{rule}");
    let span_h = (g.end_ms - g.start_ms + super::data::STEP_MS) as f64 / 3_600_000.0;
    for q in QUERIES {
        let mut line = format!(
            "| `{}` | {} h, {} s |",
            q.expr.replace('|', "\\|"),
            num(q.hours.min(span_h)),
            num(q.step_s)
        );
        for r in results {
            let _ = write!(line, " {} |", spread(lat.ms.spread(&key(q.name, r.kind))));
        }
        if sonde.is_some() {
            for o in &others {
                let _ = write!(
                    line,
                    " {} |",
                    spread(
                        lat.ms
                            .ratio(&key(q.name, Kind::Sonde), &key(q.name, o.kind))
                    )
                );
            }
        }
        let counts: Vec<String> = results
            .iter()
            .map(|r| {
                lat.series
                    .get(&(q.name.to_string(), r.kind))
                    .map_or("—".into(), |n| n.to_string())
            })
            .collect();
        let _ = writeln!(line, " {} |", counts.join(" / "));
        s.push_str(&line);
    }
    if sonde.is_none() {
        let _ = writeln!(
            s,
            "\n- **Sonde not measured in this run** (`--peers` left it out)."
        );
    }
    s
}

fn compacted(r: &PeerResult) -> f64 {
    r.compacted
        .as_ref()
        .unwrap_or(&r.disk)
        .values()
        .sum::<u64>() as f64
}

fn breakdown(m: &BTreeMap<String, u64>) -> String {
    let total: u64 = m.values().sum();
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, b)| **b > 0)
        .map(|(k, b)| format!("`{k}` {:.2} MiB", *b as f64 / MIB))
        .collect();
    format!(
        "{:.2} MiB in all ({})",
        total as f64 / MIB,
        parts.join(", ")
    )
}
