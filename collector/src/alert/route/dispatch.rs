//! Aggregation groups and their timers, as Alertmanager's `dispatch.go` and the
//! dedup stage of `notify.go` run them, but driven by an explicit clock: the
//! caller passes `now` (Unix ms) to `insert` and `flush`, nothing sleeps.
//!
//! - An alert goes to every matching route; per route it joins the group of its
//!   `group_by` label values.
//! - A new group flushes after `group_wait` (at once if the alert started more
//!   than `group_wait` ago), then every `group_interval`.
//! - At a flush, per webhook, a notification is due if a firing alert is new
//!   since the last one sent, if all alerts resolved after firing ones were sent,
//!   if (with send_resolved) a resolved alert is new, or else after
//!   `repeat_interval`. The "last sent" log is written only on success.
//! - After a flush whose sends all succeeded, its resolved alerts are dropped,
//!   and an empty group is removed.

use std::collections::{BTreeMap, BTreeSet};

use super::alert::{RoutedAlert, show_labels};
use super::config::{GroupBy, Route, RouteConfig};
use crate::model::Labels;

/// What was last sent to one webhook of one group (Alertmanager's nflog entry).
#[derive(Clone, Debug, Default)]
struct SentLog {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    at: i64,
}

pub struct Group {
    pub key: String,
    pub receiver: String,
    pub labels: Labels,
    group_wait: i64,
    group_interval: i64,
    repeat_interval: i64,
    alerts: BTreeMap<u64, RoutedAlert>,
    next_flush: i64,
    has_flushed: bool,
    /// Per webhook index of the receiver.
    sent: BTreeMap<usize, SentLog>,
    /// The flush waiting for `report`s: sends outstanding, any failed, and the
    /// resolved alerts to drop once all succeeded.
    in_flight: Option<InFlight>,
}

struct InFlight {
    pending: usize,
    failed: bool,
    resolved: Vec<(u64, i64)>,
}

/// One group's alerts for one webhook, due now. `alerts` are sorted as
/// Alertmanager sorts them (by `job`, `instance`, then labels).
#[derive(Clone, Debug)]
pub struct Due {
    pub group_key: String,
    pub receiver: String,
    pub webhook: usize,
    pub group_labels: Labels,
    pub alerts: Vec<RoutedAlert>,
    pub group_interval_ms: i64,
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    at: i64,
}

#[derive(Default)]
pub struct Dispatcher {
    groups: BTreeMap<String, Group>,
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

impl Dispatcher {
    pub fn insert(&mut self, cfg: &RouteConfig, alert: &RoutedAlert, now: i64) {
        let mut routes = Vec::new();
        cfg.route.matching(&alert.labels, &mut routes);
        for r in routes {
            let labels = group_labels(r, &alert.labels);
            let key = format!("{}:{}", r.key, show_labels(&labels));
            let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
                key,
                receiver: r.receiver.clone(),
                labels,
                group_wait: ms(r.group_wait),
                group_interval: ms(r.group_interval),
                repeat_interval: ms(r.repeat_interval),
                alerts: BTreeMap::new(),
                next_flush: now + ms(r.group_wait),
                has_flushed: false,
                sent: BTreeMap::new(),
                in_flight: None,
            });
            // An old alert need not wait: its group_wait is already over.
            if !g.has_flushed && alert.starts_at + g.group_wait < now {
                g.next_flush = g.next_flush.min(now);
            }
            g.alerts.insert(alert.fingerprint, alert.clone());
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Flushes every group whose timer is due. `send_resolved(receiver,
    /// webhook)` and `webhooks(receiver)` come from the config; `muted` drops
    /// silenced and inhibited alerts before the dedup decision, as
    /// Alertmanager's mute stages run before its dedup stage.
    pub fn flush(
        &mut self,
        cfg: &RouteConfig,
        now: i64,
        muted: &dyn Fn(&RoutedAlert) -> bool,
    ) -> Vec<Due> {
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for g in self.groups.values_mut() {
            if g.next_flush > now || g.in_flight.is_some() {
                continue;
            }
            g.has_flushed = true;
            g.next_flush = now + g.group_interval;
            let mut alerts: Vec<RoutedAlert> =
                g.alerts.values().filter(|a| !muted(a)).cloned().collect();
            alerts.sort_by(alert_order);
            let resolved_all: Vec<(u64, i64)> = g
                .alerts
                .values()
                .filter(|a| a.resolved(now))
                .map(|a| (a.fingerprint, a.ends_at))
                .collect();
            let firing: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| !a.resolved(now))
                .map(|a| a.fingerprint)
                .collect();
            let resolved: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| a.resolved(now))
                .map(|a| a.fingerprint)
                .collect();
            let hooks = cfg
                .receiver(&g.receiver)
                .map_or(&[][..], |r| &r.webhooks[..]);
            let mut pending = 0;
            if !alerts.is_empty() {
                for (i, hook) in hooks.iter().enumerate() {
                    let last = g.sent.get(&i);
                    if !needs_update(
                        last,
                        &firing,
                        &resolved,
                        hook.send_resolved,
                        g.repeat_interval,
                        now,
                    ) {
                        continue;
                    }
                    let sent: Vec<RoutedAlert> = if hook.send_resolved {
                        alerts.clone()
                    } else {
                        alerts
                            .iter()
                            .filter(|a| !a.resolved(now))
                            .cloned()
                            .collect()
                    };
                    let due = Due {
                        group_key: g.key.clone(),
                        receiver: g.receiver.clone(),
                        webhook: i,
                        group_labels: g.labels.clone(),
                        alerts: sent,
                        group_interval_ms: g.group_interval,
                        firing: firing.clone(),
                        resolved: resolved.clone(),
                        at: now,
                    };
                    if due.alerts.is_empty() {
                        // Only resolved alerts and send_resolved off: nothing to
                        // post, but log it so they are not "new" next time.
                        g.sent.insert(
                            i,
                            SentLog {
                                firing: due.firing,
                                resolved: due.resolved,
                                at: now,
                            },
                        );
                        continue;
                    }
                    pending += 1;
                    out.push(due);
                }
            }
            if pending == 0 {
                drop_resolved(g, &resolved_all);
                if g.alerts.is_empty() {
                    emptied.push(g.key.clone());
                }
            } else {
                g.in_flight = Some(InFlight {
                    pending,
                    failed: false,
                    resolved: resolved_all,
                });
            }
        }
        for k in emptied {
            self.groups.remove(&k);
        }
        out
    }

    /// The outcome of posting `due` (after its retries).
    pub fn report(&mut self, due: &Due, ok: bool) {
        let Some(g) = self.groups.get_mut(&due.group_key) else {
            return;
        };
        if ok {
            g.sent.insert(
                due.webhook,
                SentLog {
                    firing: due.firing.clone(),
                    resolved: due.resolved.clone(),
                    at: due.at,
                },
            );
        }
        let Some(f) = g.in_flight.as_mut() else {
            return;
        };
        f.failed |= !ok;
        f.pending = f.pending.saturating_sub(1);
        if f.pending == 0 {
            let f = g.in_flight.take().expect("checked above");
            if !f.failed {
                drop_resolved(g, &f.resolved);
                if g.alerts.is_empty() {
                    let key = g.key.clone();
                    self.groups.remove(&key);
                }
            }
        }
    }
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    last: Option<&SentLog>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: i64,
    now: i64,
) -> bool {
    let Some(last) = last else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&last.firing) {
        return true;
    }
    if firing.is_empty() {
        // All resolved: tell the receiver only if it was told they fired.
        return !last.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&last.resolved) {
        return true;
    }
    last.at + repeat <= now
}

/// Drops the flushed resolved alerts unless they changed since (re-fired).
fn drop_resolved(g: &mut Group, resolved: &[(u64, i64)]) {
    for (fp, ends) in resolved {
        if g.alerts.get(fp).is_some_and(|a| a.ends_at == *ends) {
            g.alerts.remove(fp);
        }
    }
}

fn group_labels(r: &Route, l: &Labels) -> Labels {
    match &r.group_by {
        GroupBy::All => l.clone(),
        GroupBy::Labels(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            l.only(&names)
        }
    }
}

/// Alertmanager's `AlertSlice` order: by `job`, then `instance` (present
/// before absent), then the label sets.
fn alert_order(a: &RoutedAlert, b: &RoutedAlert) -> std::cmp::Ordering {
    for k in ["job", "instance"] {
        match (a.labels.get(k), b.labels.get(k)) {
            (None, None) => continue,
            (None, Some(_)) => return std::cmp::Ordering::Greater,
            (Some(_), None) => return std::cmp::Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.labels.cmp(&b.labels)
}
