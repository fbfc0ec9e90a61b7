//! One rule group evaluated at one instant, as Prometheus's `rules/group.go`
//! does it: rules in order (a recording rule's output is visible to the rules
//! after it), recording rules written to the store, alerting rules run through
//! their `state`, `ALERTS` and `ALERTS_FOR_STATE` written, and series that an
//! evaluation no longer produces ended with a stale marker.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    logs::{
        logql::{self, LogQlLimits, QueryData},
        model::{Direction, LogSource},
    },
    model::{Labels, Sample, TimeSeries, stale_nan},
    query::{Engine, Value},
    store::Storage,
};

use super::{
    rules::Lang,
    state::{Alert, Found, RuleState},
};

/// What rule expressions read: the metric store through PromQL, the log store
/// through LogQL (log rules).
pub struct Sources {
    pub engine: Engine,
    pub logs: Option<Arc<dyn LogSource>>,
    pub log_limits: LogQlLimits,
}

impl Sources {
    /// An instant query at `ts` (Unix ms) as (labels, value) pairs.
    pub fn vector(&self, lang: Lang, expr: &str, ts: i64) -> Result<Vec<(Labels, f64)>, String> {
        match lang {
            Lang::PromQL => match self.engine.instant(expr, ts).map_err(|e| e.to_string())? {
                Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
                Value::Scalar { v, .. } => Ok(vec![(Labels::default(), v)]),
                other => Err(format!(
                    "rule result is not a vector or scalar: {}",
                    other.type_name()
                )),
            },
            Lang::LogQL => {
                let logs = self
                    .logs
                    .as_deref()
                    .ok_or("no log store to evaluate LogQL on")?;
                let at_ns = ts.saturating_mul(1_000_000);
                match logql::query_instant(
                    logs,
                    expr,
                    at_ns,
                    0,
                    Direction::Backward,
                    &self.log_limits,
                )
                .map_err(|e| e.to_string())?
                {
                    QueryData::Vector(v) => Ok(v),
                    _ => Err("a log rule's expr must be a metric query".into()),
                }
            }
        }
    }
}

pub struct AlertRule {
    pub name: String,
    pub lang: Lang,
    pub expr: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

pub struct RecordRule {
    pub name: String,
    pub lang: Lang,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
}

pub enum RuleSpec {
    Alert(AlertRule),
    Record(RecordRule),
}

impl RuleSpec {
    pub fn name(&self) -> &str {
        match self {
            RuleSpec::Alert(r) => &r.name,
            RuleSpec::Record(r) => &r.name,
        }
    }
}

pub struct GroupSpec {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub limit: usize,
    pub rules: Vec<RuleSpec>,
}

/// Renders label and annotation templates (Go text/template with Prometheus's
/// functions); `labels` are the alert's labels before the rule's are added.
pub trait Expander: Send + Sync {
    fn expand(
        &self,
        name: &str,
        text: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
        t: i64,
    ) -> Result<String, String>;
}

/// How a rule fared at its last evaluation, for `/api/v1/rules`.
#[derive(Clone, Debug, Default)]
pub struct Health {
    pub last_error: Option<String>,
    /// Unix ms; 0 before the first evaluation.
    pub last_evaluation: i64,
    pub duration: Duration,
}

pub struct RuleRun {
    pub spec: RuleSpec,
    pub state: RuleState,
    pub health: Health,
    /// Series written at the last evaluation (to end with stale markers).
    written: HashSet<Labels>,
}

pub struct GroupRun {
    pub spec_name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub limit: usize,
    pub rules: Vec<RuleRun>,
    pub health: Health,
    /// `ALERTS_FOR_STATE` is read back once, at the first evaluation.
    restored: bool,
}

/// Where `ALERTS_FOR_STATE` is looked for after a restart (Prometheus's
/// `--rules.alert.for-outage-tolerance`).
pub const OUTAGE_TOLERANCE: Duration = Duration::from_secs(3600);

impl GroupRun {
    pub fn new(spec: GroupSpec) -> GroupRun {
        GroupRun {
            spec_name: spec.name,
            file: spec.file,
            interval: spec.interval,
            limit: spec.limit,
            rules: spec
                .rules
                .into_iter()
                .map(|spec| {
                    let state = match &spec {
                        RuleSpec::Alert(a) => RuleState::new(a.hold, a.keep_firing_for),
                        RuleSpec::Record(_) => RuleState::default(),
                    };
                    RuleRun {
                        spec,
                        state,
                        health: Health::default(),
                        written: HashSet::new(),
                    }
                })
                .collect(),
            health: Health::default(),
            restored: false,
        }
    }

    /// Carries alert state over from the group this one replaces (a reload):
    /// rules matched by position, kind and name, as Prometheus matches them.
    pub fn adopt(&mut self, old: GroupRun) {
        self.restored = old.restored;
        for (new, old) in self.rules.iter_mut().zip(old.rules) {
            if new.spec.name() == old.spec.name()
                && matches!(
                    (&new.spec, &old.spec),
                    (RuleSpec::Alert(_), RuleSpec::Alert(_))
                        | (RuleSpec::Record(_), RuleSpec::Record(_))
                )
            {
                new.state.take_alerts_from(old.state);
                new.written = old.written;
                new.health = old.health;
            }
        }
    }

    /// Alert name -> expression, for the generator URL of sent alerts.
    pub fn alert_exprs(&self) -> std::collections::HashMap<String, String> {
        self.rules
            .iter()
            .filter_map(|r| match &r.spec {
                RuleSpec::Alert(a) => Some((a.name.clone(), a.expr.clone())),
                RuleSpec::Record(_) => None,
            })
            .collect()
    }

    /// Evaluates every rule at `ts` (Unix ms). Returns the alerts due to be sent.
    pub fn eval(
        &mut self,
        ts: i64,
        storage: &Arc<dyn Storage>,
        src: &Sources,
        expander: &dyn Expander,
        resend_delay: Duration,
    ) -> Vec<Alert> {
        let started = Instant::now();
        let mut due = Vec::new();
        let mut errors = 0;
        let restore = !self.restored;
        for rule in &mut self.rules {
            let t0 = Instant::now();
            let result = match &rule.spec {
                RuleSpec::Record(r) => record(r, ts, src),
                RuleSpec::Alert(a) => {
                    alert(a, &mut rule.state, ts, src, expander, self.limit, restore)
                }
            };
            let series = match result {
                Ok(series) => {
                    rule.health.last_error = None;
                    series
                }
                Err(e) => {
                    errors += 1;
                    tracing::warn!(group = %self.spec_name, rule = rule.spec.name(), error = %e,
                        "rule evaluation failed");
                    rule.health.last_error = Some(e);
                    Vec::new()
                }
            };
            write(storage, ts, series, &mut rule.written);
            if let RuleSpec::Alert(_) = rule.spec {
                due.extend(rule.state.due(ts, resend_delay, self.interval));
            }
            rule.health.last_evaluation = ts;
            rule.health.duration = t0.elapsed();
        }
        self.restored = true;
        self.health.last_evaluation = ts;
        self.health.duration = started.elapsed();
        self.health.last_error = (errors > 0).then(|| format!("{errors} rules failed"));
        due
    }
}

fn with_labels(base: &Labels, extra: &BTreeMap<String, String>) -> Labels {
    let mut pairs: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    // `Labels::new` keeps the last of duplicate names: the rule's win.
    Labels::new(pairs)
}

fn record(r: &RecordRule, ts: i64, src: &Sources) -> Result<Vec<(Labels, f64)>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (labels, v) in src.vector(r.lang, &r.expr, ts)? {
        let labels = with_labels(&labels.with("__name__", &r.name), &r.labels);
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((labels, v));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn alert(
    a: &AlertRule,
    state: &mut RuleState,
    ts: i64,
    src: &Sources,
    expander: &dyn Expander,
    limit: usize,
    restore: bool,
) -> Result<Vec<(Labels, f64)>, String> {
    let mut found = Vec::new();
    for (labels, value) in src.vector(a.lang, &a.expr, ts)? {
        // Templates see the sample's labels with `__name__`; the alert drops it (as Prometheus).
        let map: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // A template that fails renders as its error, as in Prometheus.
        let render = |name: &str, text: &str| {
            expander
                .expand(name, text, &map, value, ts)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
        };
        let mut extra: BTreeMap<String, String> = a
            .labels
            .iter()
            .map(|(k, t)| (k.clone(), render(&format!("__alert_{}", a.name), t)))
            .collect();
        extra.insert("alertname".into(), a.name.clone());
        let annotations = a
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), render(&format!("__alert_{}", a.name), t)))
            .collect();
        found.push(Found {
            labels: with_labels(&labels.without(&["__name__"]), &extra),
            annotations,
            value,
        });
    }
    state.eval(ts, found, limit).map_err(|e| e.to_string())?;
    if restore {
        restore_for_state(a, state, ts, src);
    }
    let mut out = Vec::new();
    for al in state.active() {
        out.push((
            al.labels
                .with("__name__", "ALERTS")
                .with("alertstate", al.state.as_str()),
            1.0,
        ));
        out.push((
            al.labels.with("__name__", "ALERTS_FOR_STATE"),
            (al.active_at / 1000) as f64,
        ));
    }
    Ok(out)
}

/// After a restart, pending alerts take back their `ActiveAt` from the newest
/// `ALERTS_FOR_STATE` within the outage tolerance, then are judged again.
fn restore_for_state(a: &AlertRule, state: &mut RuleState, ts: i64, src: &Sources) {
    if a.hold.is_zero() {
        return;
    }
    let q = format!(
        "last_over_time(ALERTS_FOR_STATE{{alertname={:?}}}[{}s])",
        a.name,
        OUTAGE_TOLERANCE.as_secs()
    );
    // ALERTS_FOR_STATE is a metric series, whatever language the rule is in.
    let Ok(prev) = src.vector(Lang::PromQL, &q, ts) else {
        return;
    };
    let mut any = false;
    for (labels, secs) in prev {
        if secs.is_finite() {
            state.restore(&labels.without(&["__name__"]), secs as i64 * 1000);
            any = true;
        }
    }
    if any {
        // Judge the restored times now rather than one interval later.
        let again: Vec<Found> = state
            .active()
            .into_iter()
            .map(|al| Found {
                labels: al.labels.clone(),
                annotations: al.annotations.clone(),
                value: al.value,
            })
            .collect();
        let _ = state.eval(ts, again, 0);
    }
}

/// Appends this evaluation's series and stale markers for last evaluation's
/// series that are gone. Errors are logged: the next evaluation writes again.
fn write(
    storage: &Arc<dyn Storage>,
    ts: i64,
    series: Vec<(Labels, f64)>,
    written: &mut HashSet<Labels>,
) {
    let now: HashSet<Labels> = series.iter().map(|(l, _)| l.clone()).collect();
    let mut batch: Vec<TimeSeries> = series
        .into_iter()
        .map(|(labels, v)| TimeSeries {
            labels,
            samples: vec![Sample { t: ts, v }],
        })
        .collect();
    batch.extend(written.difference(&now).map(|l| TimeSeries {
        labels: l.clone(),
        samples: vec![Sample {
            t: ts,
            v: stale_nan(),
        }],
    }));
    *written = now;
    if batch.is_empty() {
        return;
    }
    if let Err(e) = storage.append(&batch) {
        tracing::warn!(error = %e, series = batch.len(), "writing rule results failed");
    }
}
