//! An alert as the router keeps it: Alertmanager's `types.Alert`, with times in
//! Unix ms and the label-set fingerprint Alertmanager prints in webhooks.

use std::collections::BTreeMap;

use crate::alert::state::{Alert, AlertState};
use crate::model::Labels;

#[derive(Clone, Debug, PartialEq)]
pub struct RoutedAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    /// 0 = no end known; otherwise resolved once `now >= ends_at` (Prometheus
    /// sends `valid_until` for firing alerts, so silence from it resolves them).
    pub ends_at: i64,
    pub generator_url: String,
    pub fingerprint: u64,
}

impl RoutedAlert {
    /// `None` for pending alerts: Prometheus never sends those.
    pub fn from_rule(a: &Alert, generator_url: String) -> Option<RoutedAlert> {
        if a.state == AlertState::Pending {
            return None;
        }
        let ends_at = if a.resolved_at != 0 {
            a.resolved_at
        } else {
            a.valid_until
        };
        Some(RoutedAlert {
            fingerprint: fingerprint(&a.labels),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.fired_at,
            ends_at,
            generator_url,
        })
    }

    pub fn resolved(&self, now_ms: i64) -> bool {
        self.ends_at != 0 && self.ends_at <= now_ms
    }
}

/// Prometheus's `LabelSet.Fingerprint`: FNV-1a 64 over sorted `name 0xff value
/// 0xff`, printed as 16 hex digits.
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    };
    for (n, v) in labels.iter() {
        n.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

/// `{a="1", b="2"}`, as Alertmanager prints label sets in group keys.
pub fn show_labels(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_prometheus() {
        // Prometheus model: LabelSet{}.Fingerprint() is the FNV-1a offset basis,
        // and the fingerprint depends on names and values, not their order.
        assert_eq!(fingerprint(&Labels::default()), 0xcbf29ce484222325);
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&Labels::from_pairs([("a", "12")]))
        );
    }
}
