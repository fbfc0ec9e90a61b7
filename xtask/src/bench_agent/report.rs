//! The results as Markdown sections, printed and written into BENCHMARKS.md between their
//! markers: `bench:agent` (scrape and probe cost against the peers) and `bench:containers`
//! (what each container adds). Other sections in the file are left as they are.

use std::{fmt::Write as _, fs, path::PathBuf, process::Command};

use anyhow::{Context, Result};

use super::{
    PROBE_INTERVAL_FLAG,
    containers::{self, COUNTS},
    probes::{self, BLOCK, SCHED},
    scrape::{NODE_EXPORTER, SONDE},
    stats::{Samples, Spread},
};
use crate::step;

/// The sections this bench writes, by marker name.
pub const AGENT: &str = "agent";
pub const CONTAINERS: &str = "containers";
const NEW_FILE_HEADER: &str = "# Benchmarks\n\n\
Written by `cargo xtask bench ...`; each command replaces only its own section, with the numbers of its latest run.\n\n";

/// The bars the agent is held to.
const MAX_CPU_RATIO: f64 = 0.2;
const MAX_RSS_MIB: f64 = 30.0;
const MAX_SCHED_SWITCH_NS: f64 = 100.0;
/// Per-container costs of the first and second hundred containers this close count as linear.
const LINEAR_WITHIN: f64 = 0.1;

/// Where and when the bench ran, and the peers' versions.
pub struct Machine {
    date: String,
    cpus: usize,
    cpu_model: String,
    kernel: String,
    node_exporter: String,
    bpftrace: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo.lines().find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        });
        Machine {
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model.unwrap_or("unknown CPU").to_string(),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            node_exporter: first_line("prometheus-node-exporter", &["--version"]),
            bpftrace: first_line("bpftrace", &["--version"]),
        }
    }
}

/// The first line a command prints (on stdout or stderr), or "unknown".
fn first_line(program: &str, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return "unknown".into();
    };
    let text = [out.stdout, out.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("unknown")
        .trim()
        .to_string()
}

impl Machine {
    pub fn run_line(&self) -> String {
        format!(
            "Run {} on {} CPUs ({}), kernel {}: a shared, noisy VM.",
            self.date, self.cpus, self.cpu_model, self.kernel
        )
    }
}

pub fn render(m: &Machine, rounds: usize, scrape: &Samples, probes: &Samples) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "## cargo xtask bench agent\n\n\
         {run}\n\
         Command: `cargo xtask bench agent`, {rounds} rounds; each round runs every side once, \
         alternating which goes first.\n\
         Peers: {ne}; {bt}.\n\
         Cells: median over rounds (min–max). Ratios are taken round by round, then summarised.\n\n",
        run = m.run_line(),
        ne = m.node_exporter,
        bt = m.bpftrace,
    );
    scrape_section(&mut s, scrape);
    probe_section(&mut s, probes);
    s
}

fn scrape_section(s: &mut String, d: &Samples) {
    let _ = write!(
        s,
        "### Scrape cost: Sonde agent vs node_exporter\n\n\
         Each side alone, started fresh every round on its own 127.0.0.1 port: the agent with all \
         probes on (`--probes runqueue,oom,tcp,blockio --probe-interval {PROBE_INTERVAL_FLAG}`), node_exporter with its \
         default collectors plus `--collector.tcpstat`. Per round: the process's CPU over 3 s without \
         scrapes (idle rate), 3 warm-up scrapes, then at least 200 scrapes and 3 s of back-to-back \
         `GET /metrics` (Prometheus text, no compression). CPU per scrape = (utime+stime delta − idle \
         rate × scraping time) / scrapes; wall = the round's median scrape; RSS = VmRSS after the \
         scrapes; series = sample lines.\n\n\
         | per round | Sonde agent | node_exporter | Sonde / node_exporter |\n\
         |---|---|---|---|\n"
    );
    // (row, sample key, whether Sonde / node_exporter means anything for it)
    let rows = [
        ("CPU per scrape (ms)", "cpu_ms", true),
        ("wall time per scrape (ms)", "wall_ms", true),
        ("RSS after scraping (MiB)", "rss_mib", true),
        ("series (sample lines)", "series", true),
        ("idle CPU (ms per s)", "idle_ms_per_s", false),
        ("scrapes measured", "scrapes", false),
    ];
    for (label, key, compare) in rows {
        let (a, b) = (format!("{SONDE}/{key}"), format!("{NODE_EXPORTER}/{key}"));
        let ratio = if compare {
            cell(d.ratio(&a, &b))
        } else {
            "—".into()
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {ratio} |",
            cell(d.spread(&a)),
            cell(d.spread(&b))
        );
    }
    let cpu = d.ratio(
        &format!("{SONDE}/cpu_ms"),
        &format!("{NODE_EXPORTER}/cpu_ms"),
    );
    let rss = d.spread(&format!("{SONDE}/rss_mib"));
    let _ = write!(
        s,
        "\n- **{}**: Sonde's CPU per scrape is {}× node_exporter's (median of the rounds' ratios; \
         bar: at most 1/5 = {MAX_CPU_RATIO}×).\n\
         - **{}**: Sonde's RSS with all probes on is at most {} MiB over the rounds (bar: at most {MAX_RSS_MIB} MiB).\n\n",
        verdict(cpu.is_some_and(|r| r.median <= MAX_CPU_RATIO)),
        value(cpu.map(|r| r.median)),
        verdict(rss.is_some_and(|r| r.max <= MAX_RSS_MIB)),
        value(rss.map(|r| r.max)),
    );
}

fn probe_section(s: &mut String, d: &Samples) {
    let _ = write!(
        s,
        "### Probe cost: ns per event in the kernel\n\n\
         ns/event = Δ run time / Δ run count of each BPF program over a workload, as the kernel \
         counts them with BPF stats on. Sonde: from its own `sonde_bpf_program_run_seconds_total` \
         and `sonde_bpf_program_runs_total`. bpftrace (its per-cgroup run-queue histogram, as in the \
         design notes) and a near-empty `tracepoint:sched:sched_switch {{ @c = count(); }}` (this \
         VM's floor per BPF run): `bpftool prog show -j` deltas, with `kernel.bpf_stats_enabled=1` \
         while they run. Each side runs alone. Workloads: a python3 pipe ping-pong of {} round trips \
         between two processes (context switches, wakeups); then, for Sonde, {} direct 4 KiB writes \
         and as many direct reads (`dd oflag=direct` / `iflag=direct`) on a loop device over a \
         sparse file in /tmp. Events are the whole machine's during the window, workload included.\n\n\
         | program (workload) | Sonde (ns/event) | bpftrace histogram (ns/event) | bpftrace `count()` floor (ns/event) | Sonde / bpftrace | events per window (Sonde) |\n\
         |---|---|---|---|---|---|\n",
        probes::ROUND_TRIPS,
        probes::DD_BLOCKS,
    );
    for program in SCHED.into_iter().chain(BLOCK) {
        let workload = if SCHED.contains(&program) {
            "ping-pong"
        } else {
            "direct I/O"
        };
        let (sonde, bpftrace, floor) = (
            format!("sonde/{program}"),
            format!("bpftrace/{program}"),
            format!("floor/{program}"),
        );
        let _ = writeln!(
            s,
            "| {program} ({workload}) | {} | {} | {} | {} | {} |",
            cell(d.spread(&sonde)),
            cell(d.spread(&bpftrace)),
            cell(d.spread(&floor)),
            cell(d.ratio(&sonde, &bpftrace)),
            cell(d.spread(&format!("{sonde}/events"))),
        );
    }
    let median = |key: &str| d.spread(key).map(|r| r.median);
    let (sonde, bpftrace, floor) = (
        median("sonde/sched_switch"),
        median("bpftrace/sched_switch"),
        median("floor/sched_switch"),
    );
    let above = |x: Option<f64>| value(x.zip(floor).map(|(x, f)| x - f));
    let _ = write!(
        s,
        "\n- **{}**: Sonde's sched_switch costs {} ns/event (median; bar: under {MAX_SCHED_SWITCH_NS} ns). \
         On this VM an empty program already costs {} ns per run (the floor above), so the part a \
         program's own work adds is {} ns for Sonde's sched_switch and {} ns for bpftrace's histogram.\n",
        verdict(sonde.is_some_and(|ns| ns < MAX_SCHED_SWITCH_NS)),
        value(sonde),
        value(floor),
        above(sonde),
        above(bpftrace),
    );
}

/// The `bench:containers` section: the agent at 0, 100 and 200 containers, and per container.
pub fn render_containers(m: &Machine, rounds: usize, cgroups: &str, d: &Samples) -> String {
    let [none, half, most] = COUNTS;
    let mut s = String::new();
    let _ = write!(
        s,
        "## cargo xtask bench agent: containers\n\n\
         {}\n\
         Command: `cargo xtask bench agent` (this section and the one above come from the same run), \
         {rounds} rounds; each round measures the agent with {none}, {half} and {most} containers on the \
         node, in turn, alternating the order.\n\
         Cells: median over rounds (min–max). Per-container figures are taken round by round \
         (the round's {most}-container value minus its {none}-container value, over {most}), then \
         summarised.\n\n\
         Containers as the kubelet (systemd driver) and containerd make them: \
         `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`, \
         one pod per container, at the same path in each hierarchy of {cgroups}, with unique names \
         every round. In each, one process: a bash loop that wakes up 5 times a second (`read -t 0.2` \
         on a pipe nobody writes to; no fork per wakeup), moved into the container's cgroup in every \
         hierarchy, so every container has run-queue latency in the agent's per-cgroup probe map. \
         Per round and case: create the containers, start the agent fresh (all probes, \
         `--probe-interval {PROBE_INTERVAL_FLAG}`), wait until each container has its run-queue series on \
         /metrics, then measure as the scrape cost above (3 s idle, 3 warm-up scrapes, at least 200 \
         scrapes and 3 s), stop the agent, remove the containers. A scrape reads every pod and \
         container cgroup's files for the cAdvisor-style `container_*` families (v2 and v1 files on \
         this hybrid host) and adds the probes' per-cgroup series. Idle CPU counts clock ticks \
         (10 ms) over 3 s, so below 3.3 ms per s it reads 0; the containers' own CPU is their \
         processes' utime+stime while the agent is measured.\n\n\
         | per round | {none} containers | {half} containers | {most} containers |\n\
         |---|---|---|---|\n",
        m.run_line(),
    );
    let rows = [
        ("CPU per scrape (ms)", "cpu_ms"),
        ("wall time per scrape (ms)", "wall_ms"),
        ("RSS after scraping (MiB)", "rss_mib"),
        ("series (sample lines)", "series"),
        ("… of which name the bench's containers", "ours"),
        ("agent idle CPU (ms per s)", "idle_ms_per_s"),
        ("the containers' own CPU (ms per s)", "load_ms_per_s"),
        ("scrapes measured", "scrapes"),
    ];
    for (label, measure) in rows {
        let cells: Vec<String> = COUNTS
            .iter()
            .map(|&n| cell(d.spread(&containers::key(n, measure))))
            .collect();
        let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
    }
    let _ = write!(
        s,
        "\n| per container | {none} → {most} | {none} → {half} | {half} → {most} | ({half} → {most}) / ({none} → {half}) |\n\
         |---|---|---|---|---|\n"
    );
    let labels = [
        ("cpu_ms", "scrape CPU (µs)"),
        ("wall_ms", "scrape wall time (µs)"),
        ("rss_mib", "RSS growth (KiB)"),
        ("series", "series"),
    ];
    for (measure, label) in labels {
        let k = |span: &str| containers::per_key(span, measure);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} |",
            cell(d.spread(&k("per"))),
            cell(d.spread(&k("per_lo"))),
            cell(d.spread(&k("per_hi"))),
            cell(d.ratio(&k("per_hi"), &k("per_lo"))),
        );
    }
    let median = |key: &str| d.spread(key).map(|r| r.median);
    let per = |measure: &str| median(&containers::per_key("per", measure));
    let at = |n: usize, measure: &str| median(&containers::key(n, measure));
    let _ = write!(
        s,
        "\n- **Bar** (from the issue): scrape CPU and RSS growth stay linear and small (figures per \
         container). It sets no number for \"small\", so there is no PASS/MISS here, only the figures: \
         each container adds {cpu} µs of agent CPU per scrape, {rss} KiB of agent RSS and {series} series; \
         a scrape at {most} containers costs {cpu_most} ms of CPU against {cpu_none} ms with none, and the \
         agent's RSS is {rss_most} MiB against {rss_none} MiB.\n\
         - **Linearity**: scrape CPU {cpu_lin}; RSS {rss_lin}; series {series_lin}.\n\
         - **No peer**: cAdvisor (what the kubelet's `/metrics/cadvisor` runs, and what these \
         `container_*` families copy) is not installable on this VM, so there is no side-by-side \
         figure for it here.\n",
        cpu = value(per("cpu_ms")),
        rss = value(per("rss_mib")),
        series = value(per("series")),
        cpu_most = value(at(most, "cpu_ms")),
        cpu_none = value(at(none, "cpu_ms")),
        rss_most = value(at(most, "rss_mib")),
        rss_none = value(at(none, "rss_mib")),
        cpu_lin = linearity(d, "cpu_ms", "µs"),
        rss_lin = linearity(d, "rss_mib", "KiB"),
        series_lin = linearity(d, "series", "series"),
    );
    s
}

/// Whether a measure grows linearly with containers: the per-container cost of the second
/// hundred against the first. Linear when the two agree within `LINEAR_WITHIN` or their
/// per-round ranges overlap (this VM's noise); otherwise more or less than linear.
fn linearity(d: &Samples, measure: &str, unit: &str) -> String {
    let [none, half, most] = COUNTS;
    let (lo, hi) = (
        d.spread(&containers::per_key("per_lo", measure)),
        d.spread(&containers::per_key("per_hi", measure)),
    );
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return "n/a".into();
    };
    let ratio = hi.median / lo.median;
    let judged = if (ratio - 1.0).abs() <= LINEAR_WITHIN {
        format!("linear (within {:.0}%)", LINEAR_WITHIN * 100.0)
    } else if lo.min <= hi.max && hi.min <= lo.max {
        "linear within this VM's noise (the halves' per-round ranges overlap)".to_string()
    } else if ratio > 1.0 {
        "more than linear: the second hundred costs more per container, beyond the rounds' spread"
            .to_string()
    } else {
        "less than linear: the second hundred costs less per container, beyond the rounds' spread"
            .to_string()
    };
    format!(
        "{} {unit} per container from {none} to {half}, {} {unit} from {half} to {most} (medians; {}×): {judged}",
        num(lo.median),
        num(hi.median),
        num(ratio),
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn cell(spread: Option<Spread>) -> String {
    match spread {
        Some(r) => format!("{} ({}–{})", num(r.median), num(r.min), num(r.max)),
        None => "—".into(),
    }
}

fn value(v: Option<f64>) -> String {
    v.map_or("n/a".into(), num)
}

/// Three significant digits, never in exponent form: 1234, 200, 12.3, 0.0567.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Replaces the `bench:<name>` section of BENCHMARKS.md (or adds it, or creates the file).
pub fn write_section(name: &str, section: &str) -> Result<PathBuf> {
    let (start, end) = markers(name);
    let path = step::workspace_root().join("BENCHMARKS.md");
    let old = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = splice(
        &old,
        &start,
        &end,
        &format!("{start}\n{}\n{end}\n", section.trim_end()),
    );
    let tmp = path.with_extension("md.tmp");
    fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(path)
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    )
}

fn splice(old: &str, start_marker: &str, end_marker: &str, section: &str) -> String {
    match (old.find(start_marker), old.find(end_marker)) {
        (Some(start), Some(end)) if end > start => {
            let after = &old[end + end_marker.len()..];
            format!(
                "{}{section}{}",
                &old[..start],
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ if old.trim().is_empty() => format!("{NEW_FILE_HEADER}{section}"),
        _ => format!("{}\n\n{section}", old.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_own_section() {
        let (start, end) = markers(AGENT);
        let old = format!(
            "# B\n\n<!-- bench:x:start -->\nx\n<!-- bench:x:end -->\n{start}\nold\n{end}\ntail\n"
        );
        let new = splice(&old, &start, &end, &format!("{start}\nnew\n{end}\n"));
        assert_eq!(
            new,
            format!(
                "# B\n\n<!-- bench:x:start -->\nx\n<!-- bench:x:end -->\n{start}\nnew\n{end}\ntail\n"
            )
        );
        assert!(splice("", &start, &end, "S\n").starts_with("# Benchmarks"));
        assert_eq!(splice("# B\n", &start, &end, "S\n"), "# B\n\nS\n");
        // A second section of the same command goes after the first, then is replaced in place.
        let (c_start, c_end) = markers(CONTAINERS);
        let both = splice(&new, &c_start, &c_end, &format!("{c_start}\nc1\n{c_end}\n"));
        assert!(both.ends_with(&format!("tail\n\n{c_start}\nc1\n{c_end}\n")));
        let again = splice(
            &both,
            &c_start,
            &c_end,
            &format!("{c_start}\nc2\n{c_end}\n"),
        );
        assert_eq!(again, both.replace("c1", "c2"));
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(200.4), "200");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.05678), "0.0568");
    }
}
