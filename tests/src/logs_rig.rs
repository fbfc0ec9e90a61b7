//! The log tests' setup: a real collector on a temp data directory, a real agent tailing a
//! temp `/var/log/pods`-like root and pushing to it, both restartable; plus checks on what
//! arrived that every log test makes (labels, exact line text).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Agent, Exposition,
    collector::Collector,
    logs_writer,
    loki::{Entry, Loki, seq_of},
    workspace_root,
};

/// `--logs-max-lines` for the test collectors: at least the page size the tests read with.
pub const MAX_LINES: &str = "100000";

pub struct LogsRig {
    pub dir: tempfile::TempDir,
    /// What the agent's `--log-dir` points at.
    pub log_root: PathBuf,
    pub collector: Collector,
    agent: Option<Agent>,
    agent_extra: Vec<String>,
    /// Logs of agents killed before, for error messages.
    earlier_agent_logs: String,
}

impl LogsRig {
    /// Starts the collector and an agent with `agent_extra` flags (kept for restarts).
    pub fn start(agent_extra: &[&str]) -> LogsRig {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let log_root = dir.path().join("pods");
        std::fs::create_dir_all(&log_root).expect("creating the log root");
        let data = dir.path().join("collector-data");
        std::fs::create_dir_all(&data).expect("creating the collector's data dir");
        eprintln!("starting the collector (data in {})", data.display());
        let collector = Collector::start(&data, &["--logs-max-lines", MAX_LINES]);
        let mut rig = LogsRig {
            dir,
            log_root,
            collector,
            agent: None,
            agent_extra: agent_extra.iter().map(|s| s.to_string()).collect(),
            earlier_agent_logs: String::new(),
        };
        rig.start_agent();
        rig
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the agent (again), with the same positions file and buffer as before.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "an agent is already running");
        let (root, positions, buffer) = (
            self.log_root.display().to_string(),
            self.path("log-positions.json").display().to_string(),
            self.path("agent-buffer").display().to_string(),
        );
        let url = self.collector.grpc_url();
        let mut args: Vec<&str> = vec![
            "--probes",
            "none",
            "--collector",
            &url,
            "--buffer-dir",
            &buffer,
            "--log-dir",
            &root,
            "--log-positions",
            &positions,
            "--log-flush-interval",
            "200ms",
        ];
        args.extend(self.agent_extra.iter().map(String::as_str));
        eprintln!("starting the agent: {}", args.join(" "));
        self.agent = Some(Agent::start(&args));
    }

    /// SIGKILL: no flush, no position saved on the way out.
    pub fn kill_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            self.earlier_agent_logs.push_str(&agent.log_text());
            self.earlier_agent_logs
                .push_str("\n--- (agent killed) ---\n");
            drop(agent); // Agent's Drop is SIGKILL
        }
    }

    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("the agent is not running")
    }

    /// The last `n` lines of every agent's log so far.
    pub fn agent_log_tail(&self, n: usize) -> String {
        let all = format!(
            "{}{}",
            self.earlier_agent_logs,
            self.agent.as_ref().map(Agent::log_text).unwrap_or_default()
        );
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Both programs' recent logs, for an assertion message.
    pub fn logs_for_failure(&self) -> String {
        let c = self.collector.log_text();
        let c: Vec<&str> = c.lines().collect();
        format!(
            "--- agent log (tail) ---\n{}\n--- collector log (tail) ---\n{}",
            self.agent_log_tail(40),
            c[c.len().saturating_sub(30)..].join("\n")
        )
    }

    pub fn loki(&self) -> Loki {
        Loki::new(&format!("http://{}", self.collector.http))
    }

    /// A one-line summary of the agent's log counters, for progress output.
    pub fn agent_progress(&self) -> String {
        let e = self.agent().scrape();
        format!(
            "agent: read {} lines, dropped {}, watching {} files, rotations rename {} truncate {}",
            total(&e, "sonde_logs_lines_read_total"),
            total(&e, "sonde_logs_lines_dropped_total"),
            total(&e, "sonde_logs_files_watched"),
            e.value("sonde_logs_rotations_total", &[("kind", "rename")])
                .unwrap_or(0.0),
            e.value("sonde_logs_rotations_total", &[("kind", "truncate")])
                .unwrap_or(0.0),
        )
    }
}

/// The sum of every sample named `name` (over all label sets); 0 if none.
pub fn total(e: &Exposition, name: &str) -> f64 {
    // `+ 0.0`: an empty f64 sum is -0.0, which prints as "-0".
    e.find(name, &[]).map(|s| s.value).sum::<f64>() + 0.0
}

/// The node name the agent reports without `--node-name`: this host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Checks that every entry carries exactly the labels the contract gives a container's
/// line (namespace, pod, container, node, stream) and the text the writer wrote; returns
/// the problems found (first few), empty when all is well.
pub fn line_problems(
    entries: &[Entry],
    log: &logs_writer::ContainerLog,
    stream: &str,
    body_len: usize,
) -> Vec<String> {
    let node = hostname();
    let mut problems = Vec::new();
    for e in entries {
        let want: Vec<(&str, &str)> = vec![
            ("container", &log.container),
            ("namespace", &log.namespace),
            ("node", &node),
            ("pod", &log.pod),
            ("stream", stream),
        ];
        let got: Vec<(&str, &str)> = e
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if got != want {
            problems.push(format!("labels {got:?}, want {want:?}"));
        }
        if let Some(seq) = seq_of(&e.line) {
            let expect = logs_writer::body(seq, body_len);
            if e.line != expect {
                problems.push(format!(
                    "seq {seq}: line {:?} (len {}), want {:?} (len {})",
                    e.line.chars().take(80).collect::<String>(),
                    e.line.len(),
                    expect.chars().take(80).collect::<String>(),
                    expect.len()
                ));
            }
        }
        if problems.len() >= 5 {
            break;
        }
    }
    problems
}

/// `deploy/redaction.toml` in the workspace; panics if it is missing (the agent's
/// redaction rules ship there).
pub fn redaction_rules() -> PathBuf {
    let p = workspace_root().join("deploy/redaction.toml");
    assert!(
        Path::new(&p).is_file(),
        "{} is missing: the agent's shipped redaction rules belong there",
        p.display()
    );
    p
}

/// Sleeps `d` in steps of `every`, printing `progress()` at each.
pub fn sleep_with_progress(d: Duration, every: Duration, mut progress: impl FnMut() -> String) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        std::thread::sleep(every.min(until - std::time::Instant::now()));
        eprintln!("  {}", progress());
    }
}
