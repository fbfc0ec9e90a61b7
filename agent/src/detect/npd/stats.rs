//! What the NPD-compatible detectors did, served on `/metrics`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use crate::detect::kmsg::KmsgStats;
use crate::export::families;

/// Shared by the kmsg readers, log monitors, counters and plugin runners.
#[derive(Clone, Debug, Default)]
pub struct NpdStats {
    pub kmsg: Arc<KmsgStats>,
    /// (source, reason) -> matches.
    matches: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// (source, result) -> runs.
    runs: Arc<Mutex<BTreeMap<(String, &'static str), u64>>>,
    /// kmsg path -> whether it opened.
    readers: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl NpdStats {
    /// Makes the series exist at 0 (so rates work from the first match).
    pub fn declare_rule(&self, source: &str, reason: &str) {
        if let Ok(mut m) = self.matches.lock() {
            m.entry((source.to_string(), reason.to_string()))
                .or_insert(0);
        }
    }

    pub fn rule_matched(&self, source: &str, reason: &str) {
        if let Ok(mut m) = self.matches.lock() {
            *m.entry((source.to_string(), reason.to_string()))
                .or_insert(0) += 1;
        }
    }

    pub fn reader_up(&self, path: &std::path::Path, up: bool) {
        if let Ok(mut m) = self.readers.lock() {
            m.insert(path.display().to_string(), up);
        }
    }

    /// `result`: `ok`, `nonok` or `unknown` (NPD's plugin statuses).
    pub fn plugin_ran(&self, source: &str, result: &'static str) {
        if let Ok(mut m) = self.runs.lock() {
            *m.entry((source.to_string(), result)).or_insert(0) += 1;
        }
    }

    #[cfg(test)]
    pub fn matches_of(&self, source: &str, reason: &str) -> u64 {
        self.matches
            .lock()
            .ok()
            .and_then(|m| m.get(&(source.to_string(), reason.to_string())).copied())
            .unwrap_or(0)
    }
}

impl Collector for NpdStats {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let none: [(&str, &str); 0] = [];
        let readers: Vec<_> = self
            .readers
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(p, up)| (crate::labels!("path" => p), f64::from(u8::from(*up))))
                    .collect()
            })
            .unwrap_or_default();
        families::gauge(
            &mut enc,
            "sonde_kmsg_up",
            "Whether the kernel log could be opened (0: the NPD monitors reading it are off; the log says why).",
            readers,
        )?;
        families::counter(
            &mut enc,
            "sonde_kmsg_records",
            "Kernel log records read from /dev/kmsg.",
            [(none, self.kmsg.records.load(Ordering::Relaxed) as f64)],
        )?;
        families::counter(
            &mut enc,
            "sonde_kmsg_records_lost",
            "Kernel log records overwritten by the kernel before they were read.",
            [(none, self.kmsg.lost.load(Ordering::Relaxed) as f64)],
        )?;
        families::counter(
            &mut enc,
            "sonde_kmsg_records_malformed",
            "Kernel log records that could not be parsed and were dropped.",
            [(none, self.kmsg.malformed.load(Ordering::Relaxed) as f64)],
        )?;
        let matches: Vec<_> = self
            .matches
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((s, r), n)| (crate::labels!("source" => s, "reason" => r), *n as f64))
                    .collect()
            })
            .unwrap_or_default();
        families::counter(
            &mut enc,
            "sonde_problem_rule_matches",
            "Kernel log lines matched by a problem rule (NPD log monitors and log-counters).",
            matches,
        )?;
        let runs: Vec<_> = self
            .runs
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((s, r), n)| (crate::labels!("source" => s, "result" => r), *n as f64))
                    .collect()
            })
            .unwrap_or_default();
        families::counter(
            &mut enc,
            "sonde_problem_plugin_runs",
            "Custom plugin and log-counter checks run, by result (ok, nonok, unknown).",
            runs,
        )
    }
}
