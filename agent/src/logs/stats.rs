//! `sonde_logs_*`: what the tailer read, repaired, rotated and waited for. Lines
//! it could not keep are counted in `sonde_logs_lines_dropped_total{reason}`, the
//! family the log export queue shares (see `export::otlp::stats`).

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::export::otlp::stats::{DropReason, ExportStats};

use super::redact::{Redactor, Rules};

type Label = [(&'static str, &'static str); 1];
type RuleLabel = [(&'static str, String); 1];

/// Why a kept line needed repair: the `reason` of `sonde_logs_lines_malformed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Not CRI and not Docker JSON: kept whole, stamped with the read time.
    Unparsed,
    /// A timestamp that did not parse: stamped with the read time.
    BadTimestamp,
    /// Not UTF-8: invalid bytes replaced by U+FFFD.
    InvalidUtf8,
    /// Longer than the line cap: shipped in pieces.
    Overlong,
}

impl Malformed {
    fn label(self) -> &'static str {
        match self {
            Malformed::Unparsed => "unparsed",
            Malformed::BadTimestamp => "bad_timestamp",
            Malformed::InvalidUtf8 => "invalid_utf8",
            Malformed::Overlong => "overlong",
        }
    }
}

/// Clones share the values.
#[derive(Clone, Debug, Default)]
pub struct LogStats {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    malformed: Family<Label, Counter>,
    pub files_watched: Gauge,
    rotations: Family<Label, Counter>,
    redactions: Family<RuleLabel, Counter>,
    backpressure: Counter<f64, std::sync::atomic::AtomicU64>,
    /// The export queue's stats, for `sonde_logs_lines_dropped_total`.
    pub export: ExportStats,
}

impl LogStats {
    pub fn new(export: ExportStats) -> LogStats {
        let s = LogStats {
            export,
            ..LogStats::default()
        };
        // Shown at 0 from the start, so rates work before the first rotation.
        for kind in ["rename", "truncate"] {
            let _ = s.rotations.get_or_create(&[("kind", kind)]);
        }
        s
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sonde_logs_lines_read",
            "Container log lines read (after joining partial lines).",
            self.lines_read.clone(),
        );
        registry.register(
            "sonde_logs_bytes_read",
            "Bytes read from container log files.",
            self.bytes_read.clone(),
        );
        registry.register(
            "sonde_logs_lines_malformed",
            "Log lines kept after a repair (read time as timestamp, lossy UTF-8, split), by reason.",
            self.malformed.clone(),
        );
        registry.register(
            "sonde_logs_files_watched",
            "Log files open for reading, rotated ones being drained included.",
            self.files_watched.clone(),
        );
        registry.register(
            "sonde_logs_rotations",
            "Log file rotations seen, by kind (rename or truncate).",
            self.rotations.clone(),
        );
        registry.register(
            "sonde_logs_redactions",
            "Matches replaced by redaction rules, by rule.",
            self.redactions.clone(),
        );
        registry.register(
            "sonde_logs_backpressure_seconds",
            "Time the tailer stopped reading because the log export queue was full.",
            self.backpressure.clone(),
        );
    }

    /// A redactor for `rules` whose matches count here.
    pub fn redactor(&self, rules: Rules) -> Redactor {
        let counters = rules
            .rules
            .iter()
            .map(|r| {
                self.redactions
                    .get_or_create(&[("rule", r.name.clone())])
                    .clone()
            })
            .collect();
        Redactor::new(rules, counters)
    }

    pub fn malformed(&self, why: Malformed) {
        self.malformed
            .get_or_create(&[("reason", why.label())])
            .inc();
    }

    pub fn rotated(&self, kind: &'static str) {
        self.rotations.get_or_create(&[("kind", kind)]).inc();
    }

    pub fn dropped(&self, reason: DropReason, lines: u64) {
        self.export.dropped(reason, 0, lines);
    }

    pub fn waited(&self, seconds: f64) {
        self.backpressure.inc_by(seconds);
    }

    #[cfg(test)]
    pub fn malformed_count(&self, why: Malformed) -> u64 {
        self.malformed
            .get_or_create(&[("reason", why.label())])
            .get()
    }

    #[cfg(test)]
    pub fn rotations_count(&self, kind: &'static str) -> u64 {
        self.rotations.get_or_create(&[("kind", kind)]).get()
    }

    #[cfg(test)]
    pub fn backpressure_seconds(&self) -> f64 {
        self.backpressure.get()
    }
}
