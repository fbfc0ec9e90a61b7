//! One alerting rule's alerts over time: Prometheus's pending -> firing ->
//! inactive (resolved) machine, as `rules/alerting.go` runs it at each
//! evaluation, including `for`, `keep_firing_for`, the group `limit`, and when an
//! alert is due to be (re)sent to Alertmanager.
//!
//! The caller evaluates the expression and renders labels and annotations; this
//! file only keeps the state, keyed by each alert's final label set.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::model::Labels;

/// Resolved alerts are still sent (as resolved) for this long, then forgotten.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Pending,
    Firing,
    /// Resolved; kept `RESOLVED_RETENTION` to tell Alertmanager.
    Inactive,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

/// Times are Unix milliseconds; 0 means "not yet" (evaluations are never at 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub state: AlertState,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: i64,
}

/// What one evaluation found for one output series of the expression.
pub struct Found {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabels,
    #[error("exceeded limit of {0} with {1} alerts")]
    Limit(usize, usize),
}

#[derive(Default)]
pub struct RuleState {
    pub hold: Duration,
    pub keep_firing_for: Duration,
    active: HashMap<Labels, Alert>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl RuleState {
    pub fn new(hold: Duration, keep_firing_for: Duration) -> RuleState {
        RuleState {
            hold,
            keep_firing_for,
            active: HashMap::new(),
        }
    }

    /// One evaluation at `ts`. `limit` 0 means none. On a limit error every
    /// alert is dropped, as Prometheus does.
    pub fn eval(&mut self, ts: i64, found: Vec<Found>, limit: usize) -> Result<(), EvalError> {
        let mut seen: HashMap<Labels, ()> = HashMap::with_capacity(found.len());
        for f in found {
            if seen.insert(f.labels.clone(), ()).is_some() {
                return Err(EvalError::DuplicateLabels);
            }
            match self.active.get_mut(&f.labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = f.value;
                    a.annotations = f.annotations;
                }
                _ => {
                    self.active.insert(
                        f.labels.clone(),
                        Alert {
                            labels: f.labels,
                            annotations: f.annotations,
                            value: f.value,
                            state: AlertState::Pending,
                            active_at: ts,
                            fired_at: 0,
                            resolved_at: 0,
                            last_sent_at: None,
                            valid_until: 0,
                            keep_firing_since: 0,
                        },
                    );
                }
            }
        }
        let mut active = 0;
        let (hold, keep) = (ms(self.hold), ms(self.keep_firing_for));
        self.active.retain(|labels, a| {
            if !seen.contains_key(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    keep_firing = ts - a.keep_firing_since < keep;
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts - a.resolved_at > ms(RESOLVED_RETENTION))
                {
                    return false;
                }
                if !keep_firing {
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = ts;
                    }
                    return true;
                }
            } else {
                a.keep_firing_since = 0;
            }
            active += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
            true
        });
        if limit > 0 && active > limit {
            self.active.clear();
            return Err(EvalError::Limit(limit, active));
        }
        Ok(())
    }

    /// Pending and firing alerts (what `ALERTS` shows), sorted by labels.
    pub fn active(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Every alert kept, resolved ones too, sorted by labels.
    pub fn all(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The alerts due to go to Alertmanager at `ts` (Prometheus's `needsSending`),
    /// marked as sent, with `valid_until` set for `endsAt`.
    pub fn due(&mut self, ts: i64, resend_delay: Duration, interval: Duration) -> Vec<Alert> {
        let valid = ts + 4 * ms(resend_delay.max(interval));
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            let needs = match a.state {
                AlertState::Pending => false,
                _ => match a.last_sent_at {
                    None => true,
                    Some(sent) => {
                        (a.resolved_at != 0 && sent < a.resolved_at) || sent + ms(resend_delay) < ts
                    }
                },
            };
            if needs {
                a.last_sent_at = Some(ts);
                a.valid_until = valid;
                out.push(a.clone());
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// After a restart: an alert pending now that `ALERTS_FOR_STATE` says became
    /// active at `active_at` takes that time back, so one that was firing does
    /// not wait its `for` again.
    pub fn restore(&mut self, labels: &Labels, active_at: i64) {
        if let Some(a) = self.active.get_mut(labels)
            && a.state == AlertState::Pending
            && active_at < a.active_at
        {
            a.active_at = active_at;
        }
    }

    /// Carries the alerts over to a reloaded copy of the same rule.
    pub fn take_alerts_from(&mut self, old: RuleState) {
        self.active = old.active;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(instance: &str, v: f64) -> Found {
        Found {
            labels: Labels::from_pairs([("alertname", "Up"), ("instance", instance)]),
            annotations: BTreeMap::new(),
            value: v,
        }
    }

    const S: i64 = 1000;

    #[test]
    fn pending_then_firing_after_for_then_resolved_then_forgotten() {
        let mut r = RuleState::new(Duration::from_secs(60), Duration::ZERO);
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Pending);
        r.eval(30 * S, vec![found("a", 2.0)], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Pending);
        assert_eq!(r.active()[0].value, 2.0);
        r.eval(60 * S, vec![found("a", 3.0)], 0).unwrap();
        let a = r.active()[0].clone();
        assert_eq!(
            (a.state, a.active_at, a.fired_at),
            (AlertState::Firing, 0, 60 * S)
        );
        r.eval(90 * S, vec![], 0).unwrap();
        assert!(r.active().is_empty());
        assert_eq!(r.all()[0].state, AlertState::Inactive);
        assert_eq!(r.all()[0].resolved_at, 90 * S);
        r.eval(90 * S + ms(RESOLVED_RETENTION) + 1, vec![], 0)
            .unwrap();
        assert!(r.all().is_empty());
    }

    #[test]
    fn pending_alerts_that_vanish_are_dropped_and_for_zero_fires_at_once() {
        let mut r = RuleState::new(Duration::from_secs(60), Duration::ZERO);
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        r.eval(S, vec![], 0).unwrap();
        assert!(r.all().is_empty());
        let mut r = RuleState::new(Duration::ZERO, Duration::ZERO);
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Firing);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert_then_resolves() {
        let mut r = RuleState::new(Duration::ZERO, Duration::from_secs(60));
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        r.eval(30 * S, vec![], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Firing);
        r.eval(60 * S, vec![], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Firing);
        // Back: the hold resets.
        r.eval(70 * S, vec![found("a", 1.0)], 0).unwrap();
        r.eval(100 * S, vec![], 0).unwrap();
        r.eval(150 * S, vec![], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Firing);
        r.eval(160 * S, vec![], 0).unwrap();
        assert!(r.active().is_empty());
        assert_eq!(r.all()[0].resolved_at, 160 * S);
    }

    #[test]
    fn a_resolved_alert_that_returns_starts_over_as_pending() {
        let mut r = RuleState::new(Duration::from_secs(10), Duration::ZERO);
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        r.eval(10 * S, vec![found("a", 1.0)], 0).unwrap();
        r.eval(20 * S, vec![], 0).unwrap();
        r.eval(30 * S, vec![found("a", 1.0)], 0).unwrap();
        let a = r.active()[0].clone();
        assert_eq!(
            (a.state, a.active_at, a.resolved_at),
            (AlertState::Pending, 30 * S, 0)
        );
    }

    #[test]
    fn duplicates_and_limits_are_errors() {
        let mut r = RuleState::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            r.eval(0, vec![found("a", 1.0), found("a", 2.0)], 0),
            Err(EvalError::DuplicateLabels)
        );
        assert_eq!(
            r.eval(0, vec![found("a", 1.0), found("b", 2.0)], 1),
            Err(EvalError::Limit(1, 2))
        );
        assert!(r.all().is_empty());
        r.eval(0, vec![found("a", 1.0), found("b", 2.0)], 2)
            .unwrap();
        assert_eq!(r.active().len(), 2);
    }

    #[test]
    fn sending_follows_prometheus_needs_sending() {
        let (resend, interval) = (Duration::from_secs(60), Duration::from_secs(15));
        let mut r = RuleState::new(Duration::from_secs(15), Duration::ZERO);
        r.eval(0, vec![found("a", 1.0)], 0).unwrap();
        assert!(r.due(0, resend, interval).is_empty(), "pending is not sent");
        r.eval(15 * S, vec![found("a", 1.0)], 0).unwrap();
        let sent = r.due(15 * S, resend, interval);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, 15 * S + 240 * S);
        assert!(
            r.due(30 * S, resend, interval).is_empty(),
            "not again within the resend delay"
        );
        assert_eq!(r.due(76 * S, resend, interval).len(), 1);
        r.eval(80 * S, vec![], 0).unwrap();
        let sent = r.due(80 * S, resend, interval);
        assert_eq!(
            (sent.len(), sent[0].resolved_at),
            (1, 80 * S),
            "resolved at once"
        );
    }

    #[test]
    fn restore_takes_back_the_active_time_of_a_pending_alert() {
        let mut r = RuleState::new(Duration::from_secs(600), Duration::ZERO);
        r.eval(1000 * S, vec![found("a", 1.0)], 0).unwrap();
        r.restore(&found("a", 0.0).labels, 100 * S);
        r.eval(1001 * S, vec![found("a", 1.0)], 0).unwrap();
        assert_eq!(r.active()[0].state, AlertState::Firing);
    }
}
