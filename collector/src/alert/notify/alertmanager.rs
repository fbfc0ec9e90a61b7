//! Sending alerts to Alertmanager's API v2, as Prometheus's notifier does: one
//! bounded queue (oldest dropped and counted when full), batches of 64 posted to
//! every configured Alertmanager. A failed batch is not retried: active alerts
//! are resent every `--rules.alert.resend-delay` anyway, so the next send heals it.
//!
//! Wire format (`POST <url>/api/v2/alerts`, a JSON array of postableAlert):
//! `{"labels":{..},"annotations":{..},"startsAt":RFC3339,"endsAt":RFC3339,"generatorURL":".."}`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use hyper::{Uri, body::Bytes};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use tokio::sync::Notify;

use super::http_post::post_json;
use crate::alert::{
    route::{Router, alert::RoutedAlert},
    state::Alert,
};

/// Prometheus's `--alertmanager.notification-queue-capacity` default.
const QUEUE_CAPACITY: usize = 10_000;
/// Alerts per request, as Prometheus sends them.
const BATCH: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WireAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// RFC 3339 with milliseconds, UTC, as Alertmanager prints times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl WireAlert {
    /// Prometheus's `sendAlerts`: starts when it fired; ends when resolved, else
    /// at `valid_until` (so Alertmanager resolves it if we stop sending).
    pub fn of(a: &Alert, generator_url: String) -> WireAlert {
        let ends = if a.resolved_at != 0 {
            a.resolved_at
        } else {
            a.valid_until
        };
        WireAlert {
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339(a.fired_at),
            ends_at: rfc3339(ends),
            generator_url,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Target {
    alertmanager: String,
}

#[derive(Clone, Default)]
struct Stats {
    sent: Family<Target, Counter>,
    errors: Family<Target, Counter>,
    dropped: Counter,
    queue: Gauge,
}

/// Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Notifier {
    queue: Arc<Mutex<VecDeque<WireAlert>>>,
    wake: Arc<Notify>,
    stats: Stats,
    targets: usize,
    /// The built-in router (`--alert-routes`), fed the same alerts.
    router: Option<Arc<Mutex<Router>>>,
}

impl Notifier {
    /// `urls`: Alertmanager base URLs (`http://host:9093`). With none, alerts are
    /// only counted as dropped. Call inside the tokio runtime.
    pub fn start(urls: Vec<Uri>, registry: &mut Registry) -> Result<Notifier, String> {
        let mut targets = Vec::new();
        for u in urls {
            let base = u.to_string();
            let full = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            let uri: Uri = full
                .parse()
                .map_err(|e| format!("--alertmanager.url {base}: {e}"))?;
            if uri.scheme_str() != Some("http") {
                return Err(format!(
                    "--alertmanager.url {base}: only http:// is supported"
                ));
            }
            targets.push((base, uri));
        }
        let stats = Stats::default();
        let r = registry.sub_registry_with_prefix("sonde_collector_notifications");
        r.register("sent", "Alerts sent to Alertmanager", stats.sent.clone());
        r.register(
            "errors",
            "Alerts in batches Alertmanager did not take",
            stats.errors.clone(),
        );
        r.register(
            "dropped",
            "Alerts dropped: queue full, or neither Alertmanager nor --alert-routes",
            stats.dropped.clone(),
        );
        r.register(
            "queue_length",
            "Alerts waiting to be sent",
            stats.queue.clone(),
        );
        let n = Notifier {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            wake: Arc::new(Notify::new()),
            stats,
            targets: targets.len(),
            router: None,
        };
        if !targets.is_empty() {
            tokio::spawn(n.clone().run(targets));
        }
        Ok(n)
    }

    /// Also hands every alert sent to `router`.
    pub fn with_router(mut self, router: Arc<Mutex<Router>>) -> Notifier {
        self.router = Some(router);
        self
    }

    /// Sends the due alerts of one group evaluation; `generator_url` gives each
    /// alert's link back to its expression.
    pub fn send(&self, due: &[Alert], generator_url: impl Fn(&Alert) -> String) {
        if due.is_empty() {
            return;
        }
        if let Some(r) = &self.router {
            let routed = due
                .iter()
                .filter_map(|a| RoutedAlert::from_rule(a, generator_url(a)));
            let now = chrono::Utc::now().timestamp_millis();
            r.lock()
                .unwrap_or_else(|e| e.into_inner())
                .ingest_routed(routed, now);
        }
        if self.targets == 0 {
            // Nowhere to send them is a loss only when nothing else takes them.
            if self.router.is_none() {
                self.stats.dropped.inc_by(due.len() as u64);
            }
            return;
        }
        let alerts: Vec<WireAlert> = due
            .iter()
            .map(|a| WireAlert::of(a, generator_url(a)))
            .collect();
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(alerts);
        let over = q.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            q.drain(..over);
            self.stats.dropped.inc_by(over as u64);
        }
        self.stats.queue.set(q.len() as i64);
        drop(q);
        self.wake.notify_one();
    }

    async fn run(self, targets: Vec<(String, Uri)>) {
        loop {
            let batch: Vec<WireAlert> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = q.len().min(BATCH);
                let b = q.drain(..n).collect();
                self.stats.queue.set(q.len() as i64);
                b
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let body = Bytes::from(serde_json::to_vec(&batch).unwrap_or_default());
            for (name, uri) in &targets {
                let t = Target {
                    alertmanager: name.clone(),
                };
                match post_json(uri, body.clone(), TIMEOUT).await {
                    Ok(()) => {
                        self.stats.sent.get_or_create(&t).inc_by(batch.len() as u64);
                    }
                    Err(e) => {
                        self.stats
                            .errors
                            .get_or_create(&t)
                            .inc_by(batch.len() as u64);
                        tracing::warn!(alertmanager = %name, error = %e, alerts = batch.len(),
                            "sending alerts failed");
                    }
                }
            }
        }
    }
}
