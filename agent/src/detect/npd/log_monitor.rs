//! NPD's system log monitor over kernel log records: temporary rules become
//! Events, permanent rules set their condition True (NPD never sets it back:
//! a permanent kernel problem lasts until the node restarts).

use std::time::{Duration, SystemTime};

use super::{
    config::{LogRule, LogSpec, RuleKind},
    matcher::RuleSet,
    stats::NpdStats,
};
use crate::detect::{kmsg::Record, problem::Finding};

pub struct LogMonitor {
    source: String,
    rules: Vec<LogRule>,
    set: RuleSet,
    skip_list: Vec<String>,
    /// Records before this are skipped: NPD's `max(boot + delay, now - lookback)`.
    start: SystemTime,
    stats: NpdStats,
}

/// NPD's `GetStartTime`: the later of boot + delay and now - lookback.
pub fn start_time(
    now: SystemTime,
    boot: SystemTime,
    lookback: Duration,
    delay: Duration,
) -> SystemTime {
    let after_boot = boot + delay;
    let window = now.checked_sub(lookback).unwrap_or(SystemTime::UNIX_EPOCH);
    after_boot.max(window)
}

impl LogMonitor {
    pub fn new(
        source: &str,
        spec: &LogSpec,
        start: SystemTime,
        stats: NpdStats,
    ) -> Result<LogMonitor, String> {
        let patterns: Vec<&str> = spec.rules.iter().map(|r| r.pattern.as_str()).collect();
        let set = RuleSet::new(&patterns, spec.buffer_size)
            .map_err(|(i, e)| format!("rules[{i}].pattern: invalid regex: {e}"))?;
        for r in &spec.rules {
            stats.declare_rule(source, &r.reason);
        }
        Ok(LogMonitor {
            source: source.to_string(),
            rules: spec.rules.clone(),
            set,
            skip_list: spec.skip_list.clone(),
            start,
            stats,
        })
    }

    /// Applies the rules to one record.
    pub fn on_record(&mut self, rec: &Record) -> Vec<Finding> {
        // NPD drops empty messages and trims the rest.
        let msg = rec.message.trim();
        if msg.is_empty() || rec.time < self.start {
            return Vec::new();
        }
        if self.skip_list.iter().any(|s| msg.contains(s.as_str())) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for m in self.set.push(rec.time, msg) {
            let rule = &self.rules[m.rule];
            self.stats.rule_matched(&self.source, &rule.reason);
            out.push(match rule.kind {
                RuleKind::Temporary => Finding::Event {
                    source: self.source.clone(),
                    reason: rule.reason.clone(),
                    message: m.message,
                    time: m.time,
                    pods: Vec::new(),
                },
                RuleKind::Permanent => Finding::Condition {
                    source: self.source.clone(),
                    kind: rule.condition.clone(),
                    status: crate::detect::problem::Status::True,
                    reason: rule.reason.clone(),
                    message: m.message,
                    time: m.time,
                    pods: Vec::new(),
                },
            });
        }
        out
    }
}
