//! The agent's host metrics next to the real node_exporter 1.5 (Debian's
//! `prometheus-node-exporter`), both scraped in the same run: every `node_*` family
//! the agent serves must exist there with the same type and label names, and
//! slow-moving values must agree. Also: the real `promtool check metrics` accepts
//! the agent's whole output.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sonde_tests::{
    Agent, Exposition, Peer, Sample, free_port, http_get, parse_exposition, require_binary, scrape,
};

/// Debian patches two of node_exporter's defaults; these flags restore upstream
/// 1.5's, which the agent follows (they are what Kubernetes node_exporter images
/// ship). `tcpstat` is off by default in node_exporter and on in the agent.
const NODE_EXPORTER_FLAGS: &[&str] = &[
    "--collector.tcpstat",
    // Debian: ^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)
    "--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
    // Debian: ^lo$
    "--collector.netdev.device-exclude=",
];

/// `node_*` families the agent serves that node_exporter 1.5 does not, with why.
/// (None: every family the agent serves is one of node_exporter's.)
const AGENT_ONLY_FAMILIES: &[(&str, &str)] = &[];

/// promtool lint problems that node_exporter's own output gets too: the names are
/// node_exporter's, kept for dashboards. The test also proves node_exporter's
/// output gets each one it excuses.
const PROBLEMS_NODE_EXPORTER_HAS_TOO: &[(&str, &str, &str)] = &[
    (
        "node_memory_",
        "metric names should be written in 'snake_case' not 'camelCase'",
        "named after /proc/meminfo fields (node_memory_MemTotal_bytes)",
    ),
    (
        "node_netstat_",
        "metric names should be written in 'snake_case' not 'camelCase'",
        "named after /proc/net/{netstat,snmp} fields (node_netstat_Tcp_InSegs)",
    ),
];

/// Exact promtool lines excused because the name is another tool's, kept so that
/// its dashboards and alerts work unchanged: node-problem-detector's metrics.
const PROBLEMS_OF_NPD_NAMES: &[&str] = &[
    "problem_counter metric name should not include type 'counter'",
    "problem_gauge metric name should not include type 'gauge'",
];

struct NodeExporter {
    addr: SocketAddr,
    _process: Peer,
}

impl NodeExporter {
    fn start() -> NodeExporter {
        let binary = require_binary("prometheus-node-exporter");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={addr}"))
            .args(NODE_EXPORTER_FLAGS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus-node-exporter");
        let process = Peer(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_get(addr, "/metrics", None).is_ok_and(|(code, _)| code == 200) {
            assert!(
                Instant::now() < deadline,
                "node_exporter did not answer on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NodeExporter {
            addr,
            _process: process,
        }
    }

    fn scrape(&self) -> String {
        scrape(self.addr, Some("text/plain"))
    }
}

/// node_exporter first, the agent right after: counters on the agent's side are
/// then at least node_exporter's.
fn scrape_both(ne: &NodeExporter, agent: &Agent) -> (String, String) {
    let ne_text = ne.scrape();
    let agent_text = scrape(agent.addr, Some("text/plain"));
    (ne_text, agent_text)
}

/// The family a sample belongs to (histogram series carry a suffix).
fn family<'a>(e: &Exposition, sample: &'a str) -> &'a str {
    if e.types.contains_key(sample) {
        return sample;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| sample.strip_suffix(s).filter(|f| e.types.contains_key(*f)))
        .unwrap_or(sample)
}

/// Family -> the label names its samples carry.
fn label_names(e: &Exposition) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &e.samples {
        names
            .entry(family(e, &s.name))
            .or_default()
            .extend(s.labels.keys().map(String::as_str));
    }
    names
}

fn node_families(e: &Exposition) -> impl Iterator<Item = (&String, &String)> {
    e.types.iter().filter(|(name, _)| name.starts_with("node_"))
}

#[test]
fn host_families_match_node_exporter() {
    let ne = NodeExporter::start();
    let agent = Agent::start(&["--probes", "none"]);
    let (ne_text, agent_text) = scrape_both(&ne, &agent);
    let (theirs, ours) = (parse_exposition(&ne_text), parse_exposition(&agent_text));
    let (their_labels, our_labels) = (label_names(&theirs), label_names(&ours));

    let mut problems = Vec::new();
    for (name, kind) in node_families(&ours) {
        if AGENT_ONLY_FAMILIES.iter().any(|(f, _)| f == name) {
            continue;
        }
        let Some(their_kind) = theirs.types.get(name) else {
            problems.push(format!("{name}: not served by node_exporter"));
            continue;
        };
        if kind != their_kind {
            problems.push(format!(
                "{name}: type {kind}, node_exporter has {their_kind}"
            ));
        }
        let (mine, theirs) = (
            our_labels.get(name.as_str()),
            their_labels.get(name.as_str()),
        );
        if let (Some(mine), Some(theirs)) = (mine, theirs)
            && mine != theirs
        {
            problems.push(format!(
                "{name}: labels {mine:?}, node_exporter has {theirs:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "host families differ from node_exporter's:\n{}",
        problems.join("\n")
    );

    // Every sample of a family carries the same label names (no half-labelled series).
    for s in ours.samples.iter().filter(|s| s.name.starts_with("node_")) {
        let want = &our_labels[family(&ours, &s.name)];
        assert!(
            s.labels.keys().map(String::as_str).eq(want.iter().copied()),
            "{s:?} lacks some of {want:?}"
        );
    }

    let missing: Vec<&str> = node_families(&theirs)
        .map(|(n, _)| n.as_str())
        .filter(|n| !ours.types.contains_key(*n))
        .collect();
    println!(
        "node_exporter families the agent does not serve ({}):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// How close the agent's value must be to node_exporter's.
#[derive(Clone, Copy)]
enum Agree {
    /// A gauge that does not move between two scrapes: within 1%, or this much.
    Within(f64),
    /// A counter: at least node_exporter's (it was scraped first) and within 1%
    /// plus this much (what the counter may gain between the two scrapes).
    Grows(f64),
}

/// Families compared sample by sample; a series node_exporter serves must be served
/// with the same labels, and the other way round.
const COMPARED: &[(&str, Agree)] = &[
    ("node_memory_MemTotal_bytes", Agree::Within(0.0)),
    ("node_memory_SwapTotal_bytes", Agree::Within(0.0)),
    ("node_boot_time_seconds", Agree::Within(1.0)),
    ("node_filesystem_size_bytes", Agree::Within(0.0)),
    ("node_filesystem_files", Agree::Within(0.0)),
    ("node_filesystem_readonly", Agree::Within(0.0)),
    ("node_filesystem_device_error", Agree::Within(0.0)),
    ("node_time_zone_offset_seconds", Agree::Within(0.0)),
    ("node_timex_tick_seconds", Agree::Within(0.0)),
    ("node_network_mtu_bytes", Agree::Within(0.0)),
    ("node_filefd_maximum", Agree::Within(0.0)),
    ("node_nf_conntrack_entries_limit", Agree::Within(0.0)),
    ("node_cpu_seconds_total", Agree::Grows(1.0)),
    ("node_disk_reads_completed_total", Agree::Grows(100.0)),
    (
        "node_disk_read_bytes_total",
        Agree::Grows(100.0 * 128.0 * 1024.0),
    ),
    ("node_disk_writes_completed_total", Agree::Grows(100.0)),
    ("node_intr_total", Agree::Grows(100_000.0)),
    // The scrapes themselves travel over lo.
    (
        "node_network_receive_bytes_total",
        Agree::Grows(8.0 * 1024.0 * 1024.0),
    ),
];

fn compare_values(theirs: &Exposition, ours: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    let series = |e: &Exposition, name: &str| -> BTreeMap<BTreeMap<String, String>, f64> {
        e.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s: &Sample| (s.labels.clone(), s.value))
            .collect()
    };
    for &(name, agree) in COMPARED {
        let (their_series, our_series) = (series(theirs, name), series(ours, name));
        if our_series.is_empty() && name == "node_network_mtu_bytes" {
            continue; // compared only if served
        }
        if their_series.keys().ne(our_series.keys()) {
            problems.push(format!(
                "{name}: series {:?}, node_exporter has {:?}",
                our_series.keys(),
                their_series.keys()
            ));
            continue;
        }
        for (labels, &want) in &their_series {
            let got = our_series[labels];
            let ok = match agree {
                Agree::Within(slack) => (got - want).abs() <= 0.01 * want.abs() + slack,
                Agree::Grows(slack) => got >= want && got - want <= 0.01 * want + slack,
            };
            if !ok {
                problems.push(format!("{name}{labels:?}: {got}, node_exporter has {want}"));
            }
        }
    }
    let uname = |e: &Exposition| {
        e.samples
            .iter()
            .find(|s| s.name == "node_uname_info")
            .map(|s| s.labels.clone())
    };
    if uname(ours) != uname(theirs) || uname(ours).is_none() {
        problems.push(format!(
            "node_uname_info: {:?}, node_exporter has {:?}",
            uname(ours),
            uname(theirs)
        ));
    }
    problems
}

#[test]
fn slow_moving_values_match_node_exporter() {
    let ne = NodeExporter::start();
    let agent = Agent::start(&["--probes", "none"]);
    // Other tests on this machine mount, unmount and read disks; a real difference
    // shows in every attempt, a race in one.
    let mut problems = Vec::new();
    for _ in 0..3 {
        let (ne_text, agent_text) = scrape_both(&ne, &agent);
        problems = compare_values(&parse_exposition(&ne_text), &parse_exposition(&agent_text));
        if problems.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "values differ from node_exporter's:\n{}",
        problems.join("\n")
    );
}

/// Runs `promtool check metrics`: (exit code, one line per problem).
fn promtool_check(promtool: &std::path::Path, text: &str) -> (i32, Vec<String>) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = [out.stdout, out.stderr]
        .iter()
        .flat_map(|o| {
            String::from_utf8_lossy(o)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn promtool_accepts_agent_output() {
    let promtool = require_binary("promtool");
    let ne = NodeExporter::start();
    let agent = Agent::start(&["--probes", "none"]);
    let (ne_text, agent_text) = scrape_both(&ne, &agent);

    let (code, problems) = promtool_check(&promtool, &agent_text);
    // 0: clean; 3: lint problems only; anything else: the exposition did not parse.
    assert!(
        code == 0 || code == 3,
        "promtool rejects the agent's output (exit {code}):\n{}",
        problems.join("\n")
    );
    let (_, ne_problems) = promtool_check(&promtool, &ne_text);

    let unexcused: Vec<&String> = problems
        .iter()
        .filter(|line| {
            let excused = PROBLEMS_NODE_EXPORTER_HAS_TOO
                .iter()
                .any(|(prefix, problem, _)| line.starts_with(prefix) && line.ends_with(problem));
            // The excuse holds only if node_exporter's output gets the very same line.
            !(excused && ne_problems.contains(line))
                && !PROBLEMS_OF_NPD_NAMES.contains(&line.as_str())
        })
        .collect();
    assert!(
        unexcused.is_empty(),
        "promtool problems node_exporter's output does not share:\n{}",
        unexcused
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
