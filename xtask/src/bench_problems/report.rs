//! The problems bench's results as the Markdown section `bench:problems`.

use std::fmt::Write as _;

use super::{Measured, Options, sides::Side};
use crate::bench_agent::{
    report::{Machine, num},
    stats::{Samples, Spread},
};

/// The bar: during a storm at the rate (5,000 lines a minute, past the ~4,500 OOM
/// kills a minute at which node-problem-detector saturates), the detector uses at most
/// this share of one core, and misses no kernel record.
const BAR_CORE_PERCENT: f64 = 2.0;

pub fn push(samples: &mut Samples, side: Side, m: &Measured, opts: &Options) {
    let k = |what: &str| format!("{}/{what}", side.name());
    samples.push(&k("ms_per_1000"), m.storm_cpu_s / opts.lines as f64 * 1e6);
    samples.push(&k("core_percent"), m.storm_cpu_s / m.wall_s * 100.0);
    samples.push(&k("idle_ms_per_s"), m.idle_cpu_per_s * 1e3);
    samples.push(&k("rss_mib"), m.rss_bytes as f64 / (1 << 20) as f64);
    if let Some(lost) = m.lost {
        samples.push(&k("lost"), lost);
    }
}

fn cell(s: Option<Spread>) -> String {
    s.map_or("—".into(), |s| {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    })
}

pub fn render(m: &Machine, opts: &Options, rsyslog: &str, d: &Samples) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "## cargo xtask bench problems\n\n\
         {run}\n\
         Command: `cargo xtask bench problems --lines {lines} --per-minute {rate} --rounds {rounds}` (release build, as root).\n\
         Peer: {rsyslog} (`imkmsg`, one `re_match` of NPD's OOMKilling pattern, matches to a file).\n\
         Cells: median over rounds (min–max); ratios are taken round by round.\n\n\
         Each side alone, started fresh every round, order alternating: it reads the kernel log's backlog until \
         its count stops moving, its idle CPU is taken over 2 s, then {lines} OOM-kill lines go into `/dev/kmsg` \
         at {rate} a minute (one open and one write each) and the clock stops when the side has matched all of \
         them. Sonde: `sonde-agent --probes none --problems on`, no node name (matching, counting and the hub; \
         no API server), all of NPD's kernel-monitor.json and readonly-monitor.json rules, counted in \
         `problem_counter`. CPU = utime+stime over the storm less the idle rate; RSS = VmRSS after.\n\n\
         | per round | Sonde agent | rsyslog | Sonde / rsyslog |\n|---|---|---|---|\n",
        run = m.run_line(),
        lines = opts.lines,
        rate = opts.per_minute,
        rounds = opts.rounds,
    );
    let rows = [
        ("CPU per 1000 kernel lines (ms)", "ms_per_1000"),
        ("CPU during the storm (% of one core)", "core_percent"),
        ("RSS after the storm (MiB)", "rss_mib"),
        ("idle CPU (ms per s)", "idle_ms_per_s"),
    ];
    for (name, key) in rows {
        let (a, b) = (format!("sonde/{key}"), format!("rsyslog/{key}"));
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} |",
            cell(d.spread(&a)),
            cell(d.spread(&b)),
            if key == "idle_ms_per_s" {
                "—".into()
            } else {
                cell(d.ratio(&a, &b))
            }
        );
    }
    let _ = writeln!(
        s,
        "| kernel records lost (Sonde's `sonde_kmsg_records_lost_total`) | {} | — | — |",
        cell(d.spread("sonde/lost"))
    );
    let core = d
        .spread("sonde/core_percent")
        .map_or(f64::NAN, |x| x.median);
    let lost: f64 = d.get("sonde/lost").iter().sum();
    let verdict = if core <= BAR_CORE_PERCENT && lost == 0.0 {
        "PASS"
    } else {
        "MISS"
    };
    let _ = writeln!(
        s,
        "\n- **{verdict}**: during the storm Sonde's detector used {}% of one core (median; bar: at most {}%), \
         and lost {lost} kernel records over all rounds (bar: 0). For scale, not measured here (no \
         node-problem-detector in Debian): node-problem-detector saturates at about 4,500 OOM kills a \
         minute, below this storm's rate.",
        num(core),
        num(BAR_CORE_PERCENT),
    );
    s
}
