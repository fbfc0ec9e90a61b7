//! node-problem-detector (NPD) compatibility: NPD's own monitor JSON files,
//! applied with NPD's semantics.
//!
//! Supported:
//! - plugin `"kmsg"`: the kernel log, from `logPath` (default `/dev/kmsg`; a file
//!   of records also works), with `lookback`, `delay`, `bufferSize` and
//!   `skipList`. Rules: `temporary` -> an Event per match, `permanent` -> the
//!   rule's condition True with the rule's reason. Patterns are Go RE2; the
//!   Rust `regex` crate reads them alike (its `\d`, `\w`, `\s` are Unicode-aware
//!   where Go's are ASCII, which kernel messages, escaped by the kernel to
//!   printable ASCII, never tell apart). Matching is NPD's (`pattern\z` against
//!   the last `bufferSize` lines), made cheap for storms, see [`matcher`].
//! - plugin `"custom"`: `pluginConfig` (`invoke_interval`, `timeout`,
//!   `max_output_length`, `concurrency`; per-rule `timeout` and
//!   `invoke_interval`). A rule's `path` is resolved against the config file's
//!   directory and must be an executable file at load; it is run with NPD's
//!   protocol ([`plugin`]).
//!   - `path` named `log-counter` with `--journald-source=kernel` is not run: it
//!     is counted natively over the kmsg stream ([`log_counter`]).
//!   - `path` named `health-checker` is refused: Sonde's own health checks
//!     (`detect::health`: kubelet, container runtime) replace it.
//!
//! Refused with a one-line error naming the file and the field: plugins
//! `"journald"` (there is no systemd journal on these machines) and `"filelog"`,
//! log-counter with `--journald-source` other than `kernel`, unknown plugins,
//! unknown rule types, invalid regexes or durations, missing `source`,
//! `type`, `reason`, `pattern`/`path`, and permanent rules whose condition is
//! not declared in `conditions`. Unknown fields are ignored and keys match
//! case-insensitively, as Go's `encoding/json` does. Accepted and ignored:
//! `metricsReporting` (the hub always serves `problem_*`),
//! `enable_message_change_based_condition_update` and `skip_initial_status`
//! (condition state is the hub's).
//!
//! With no configuration, [`builtin`] applies NPD's own kernel-monitor.json and
//! readonly-monitor.json (verbatim copies under `builtin/`, see its NOTICE).

pub mod config;
pub mod duration;
pub mod log_counter;
pub mod log_monitor;
pub mod matcher;
pub mod plugin;
pub mod stats;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use prometheus_client::registry::Registry;

use crate::detect::{
    kmsg::{self, KmsgReader, Record},
    problem::{ConditionDefault, FindingTx},
};
use config::{Action, Kind, RuleKind, Spec};
use log_counter::CounterFeed;
use log_monitor::LogMonitor;
use stats::NpdStats;

/// A checked NPD monitor config, ready to [`start`].
#[derive(Clone, Debug)]
pub struct Monitor {
    spec: Spec,
}

impl Monitor {
    /// NPD's `source` (e.g. `kernel-monitor`).
    pub fn source(&self) -> &str {
        &self.spec.source
    }

    /// The file it was loaded from (`builtin:<name>` for the built-in ones).
    pub fn file(&self) -> &str {
        &self.spec.file
    }

    /// The conditions it owns, with their default reason and message and the
    /// reasons its permanent rules set them True with.
    pub fn conditions(&self) -> Vec<ConditionDefault> {
        let permanent: Vec<(&str, &str)> = match &self.spec.kind {
            Kind::Kmsg(l) => l
                .rules
                .iter()
                .filter(|r| r.kind == RuleKind::Permanent)
                .map(|r| (r.condition.as_str(), r.reason.as_str()))
                .collect(),
            Kind::Custom(c) => c
                .rules
                .iter()
                .filter(|r| r.kind == RuleKind::Permanent)
                .map(|r| (r.condition.as_str(), r.reason.as_str()))
                .collect(),
        };
        self.spec
            .conditions
            .iter()
            .map(|c| {
                let mut problem_reasons: Vec<String> = Vec::new();
                for (cond, reason) in &permanent {
                    if *cond == c.kind && !problem_reasons.iter().any(|r| r == reason) {
                        problem_reasons.push(reason.to_string());
                    }
                }
                ConditionDefault {
                    source: self.spec.source.clone(),
                    kind: c.kind.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    problem_reasons,
                }
            })
            .collect()
    }
}

/// NPD monitor JSON files -> monitors. Err is ONE line naming the file and the
/// field/rule, e.g. `kernel-monitor.json: rules[3].pattern: invalid regex: ...`.
/// Unsupported things are refused with a message naming what is unsupported.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Monitor>, String> {
    paths.iter().map(|p| load_one(p)).collect()
}

fn load_one(path: &Path) -> Result<Monitor, String> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    config::parse(&text, &name, dir)
        .map(|spec| Monitor { spec })
        .map_err(|e| format!("{name}: {e}"))
}

const BUILTIN: [(&str, &str); 2] = [
    (
        "kernel-monitor.json",
        include_str!("builtin/kernel-monitor.json"),
    ),
    (
        "readonly-monitor.json",
        include_str!("builtin/readonly-monitor.json"),
    ),
];

/// NPD's kernel-monitor.json and readonly-monitor.json, built in (same patterns).
pub fn builtin() -> Vec<Monitor> {
    BUILTIN
        .iter()
        .map(|(name, text)| Monitor {
            spec: config::parse(text.as_bytes(), &format!("builtin:{name}"), Path::new("/"))
                .expect("the built-in NPD configs are valid (unit-tested)"),
        })
        .collect()
}

/// What reads one kmsg path.
enum Consumer {
    Monitor(LogMonitor),
    Counter(CounterFeed),
}

/// How often a kmsg path that is a regular file is polled at its end.
const FILE_POLL: Duration = Duration::from_millis(200);
/// NPD's wait before reopening a failed kmsg reader.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Starts what the monitors need (one kmsg reader thread per kmsg path, shared
/// by all kmsg monitors and log-counters; custom plugin runners on the tokio
/// runtime). A kmsg path that cannot be opened leaves its consumers off, with a
/// warning and `sonde_kmsg_up{path} 0`. Registers its own `sonde_*` stats collector. Returns the defaults of
/// every condition the monitors own. Call inside the tokio runtime.
pub fn start(
    monitors: Vec<Monitor>,
    tx: FindingTx,
    registry: &mut Registry,
) -> anyhow::Result<Vec<ConditionDefault>> {
    let stats = NpdStats::default();
    let (now, boot) = (SystemTime::now(), kmsg::boot_time());
    let mut defaults = Vec::new();
    // Custom monitors start only once every monitor has been built: an error
    // leaves nothing running.
    let mut customs = Vec::new();
    // kmsg path -> its consumers and the oldest record any of them wants.
    let mut readers: BTreeMap<PathBuf, (Vec<Consumer>, SystemTime)> = BTreeMap::new();
    let mut want = |path: &Path, c: Consumer, from: SystemTime| {
        let e = readers
            .entry(path.to_path_buf())
            .or_insert((Vec::new(), from));
        e.0.push(c);
        e.1 = e.1.min(from);
    };
    for m in monitors {
        defaults.extend(m.conditions());
        tracing::info!(
            file = m.file(),
            source = m.source(),
            "node-problem-detector monitor"
        );
        let Spec {
            file,
            source,
            conditions,
            kind,
        } = m.spec;
        match kind {
            Kind::Kmsg(spec) => {
                let from = log_monitor::start_time(now, boot, spec.lookback, spec.delay);
                let lm = LogMonitor::new(&source, &spec, from, stats.clone())
                    .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
                want(&spec.path, Consumer::Monitor(lm), from);
            }
            Kind::Custom(spec) => {
                let mut tallies = Vec::new();
                for (i, rule) in spec.rules.iter().enumerate() {
                    if let Action::LogCounter(c) = &rule.action {
                        let (feed, tally) =
                            CounterFeed::new(&source, &rule.reason, c, stats.clone())
                                .map_err(|e| anyhow::anyhow!("{file}: rules[{i}].args: {e}"))?;
                        let from = now.checked_sub(c.lookback).unwrap_or(boot).max(boot);
                        want(&c.kmsg, Consumer::Counter(feed), from);
                        tallies.push(Some(tally));
                    } else {
                        tallies.push(None);
                    }
                }
                customs.push((source, spec, conditions, tallies));
            }
        }
    }
    let mut opened = Vec::new();
    for (path, (consumers, from)) in readers {
        // Degrade, never die: without root (or CAP_SYSLOG, with dmesg_restrict) the
        // rest of the agent is still worth running.
        match KmsgReader::open(&path) {
            Ok(reader) => {
                stats.reader_up(&path, true);
                opened.push((reader, consumers, from));
            }
            Err(e) => {
                stats.reader_up(&path, false);
                tracing::warn!(path = %path.display(), error = %e,
                    "cannot read the kernel log (needs root or CAP_SYSLOG): the NPD monitors and log-counters over it are off");
            }
        }
    }
    for (reader, consumers, from) in opened {
        let (tx, stats) = (tx.clone(), stats.clone());
        std::thread::Builder::new()
            .name("kmsg-reader".into())
            .spawn(move || read_loop(reader, consumers, from, tx, stats))
            .context("starting the kmsg reader thread")?;
    }
    for (source, spec, conditions, tallies) in customs {
        plugin::spawn(source, spec, conditions, tallies, tx.clone(), stats.clone());
    }
    registry.register_collector(Box::new(stats));
    Ok(defaults)
}

/// Feeds every record of one kmsg path to its consumers until the hub goes away.
fn read_loop(
    mut reader: KmsgReader,
    mut consumers: Vec<Consumer>,
    from: SystemTime,
    tx: FindingTx,
    stats: NpdStats,
) {
    tracing::info!(path = %reader.path().display(), consumers = consumers.len(), "reading the kernel log");
    loop {
        let rec: Record = match reader.next_record(&stats.kmsg) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                std::thread::sleep(FILE_POLL);
                continue;
            }
            Err(e) => {
                tracing::warn!(path = %reader.path().display(), error = %e, "kernel log read failed; reopening");
                std::thread::sleep(RETRY_DELAY);
                if let Err(e) = reader.reopen() {
                    tracing::warn!(path = %reader.path().display(), error = %e, "cannot reopen the kernel log");
                }
                continue;
            }
        };
        // Older than every lookback: nobody wants it (the buffer's start, on start).
        if rec.time < from {
            continue;
        }
        for c in &mut consumers {
            match c {
                Consumer::Counter(feed) => feed.on_record(&rec),
                Consumer::Monitor(m) => {
                    for f in m.on_record(&rec) {
                        if tx.blocking_send(f).is_err() {
                            tracing::debug!("problem hub gone; kmsg reader stops");
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
