//! Alertmanager's webhook body (version "4", `notify/webhook/webhook.go` and
//! `template.Data`) and its delivery: a POST retried with exponential backoff
//! while the group's `group_interval` lasts, counted as sent or failed.
//!
//! ```json
//! {"receiver":"ops","status":"firing","alerts":[{"status":"firing","labels":{..},
//!  "annotations":{..},"startsAt":"..","endsAt":"..","generatorURL":"..",
//!  "fingerprint":"0123456789abcdef"}],"groupLabels":{..},"commonLabels":{..},
//!  "commonAnnotations":{..},"externalURL":"..","version":"4",
//!  "groupKey":"{}:{alertname=\"X\"}","truncatedAlerts":0}
//! ```

use std::{collections::BTreeMap, future::Future, time::Duration};

use hyper::{Uri, body::Bytes};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use super::alert::RoutedAlert;
use super::dispatch::Due;
use crate::alert::notify::alertmanager::rfc3339;

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Vec<WebhookAlert>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: usize,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// Go's zero time, which Alertmanager prints for an alert with no end.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn status(a: &RoutedAlert, now: i64) -> &'static str {
    if a.resolved(now) {
        "resolved"
    } else {
        "firing"
    }
}

impl Message {
    /// `max_alerts` 0 = all; common labels/annotations are over the alerts sent,
    /// as Alertmanager computes them after truncating.
    pub fn build(due: &Due, external_url: &str, max_alerts: usize, now: i64) -> Message {
        let all = &due.alerts;
        let keep = if max_alerts == 0 {
            all.len()
        } else {
            all.len().min(max_alerts)
        };
        let alerts = &all[..keep];
        let any_firing = all.iter().any(|a| !a.resolved(now));
        let to_map = |l: &crate::model::Labels| -> BTreeMap<String, String> {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Message {
            receiver: due.receiver.clone(),
            status: if any_firing { "firing" } else { "resolved" },
            alerts: alerts
                .iter()
                .map(|a| WebhookAlert {
                    status: status(a, now),
                    labels: to_map(&a.labels),
                    annotations: a.annotations.clone(),
                    starts_at: rfc3339(a.starts_at),
                    ends_at: if a.ends_at == 0 {
                        ZERO_TIME.into()
                    } else {
                        rfc3339(a.ends_at)
                    },
                    generator_url: a.generator_url.clone(),
                    fingerprint: format!("{:016x}", a.fingerprint),
                })
                .collect(),
            group_labels: to_map(&due.group_labels),
            common_labels: common(alerts.iter().map(|a| to_map(&a.labels))),
            common_annotations: common(alerts.iter().map(|a| a.annotations.clone())),
            external_url: external_url.to_string(),
            version: "4",
            group_key: due.group_key.clone(),
            truncated_alerts: all.len() - keep,
        }
    }
}

/// The pairs every map has.
fn common(mut maps: impl Iterator<Item = BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let Some(mut acc) = maps.next() else {
        return BTreeMap::new();
    };
    for m in maps {
        acc.retain(|k, v| m.get(k) == Some(v));
    }
    acc
}

/// Counters for the webhook sends (registered by the caller).
#[derive(Clone, Default)]
pub struct Counters {
    pub sent: Counter,
    pub failed: Counter,
}

/// Backoff between attempts: 1s, 2s, 4s, ... capped at 30s.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const MAX_ATTEMPTS: u32 = 4;

/// Posts with retries until success, `MAX_ATTEMPTS`, or the next attempt would
/// start after `budget` (the group interval, so retries never overlap the next
/// flush). `post` is the transport (the notifier's HTTP POST in production, a
/// fake in tests); `sleep` waits (tokio's in production).
pub async fn deliver<P, PF, S, SF>(
    url: &Uri,
    body: Bytes,
    budget: Duration,
    counters: &Counters,
    post: P,
    sleep: S,
) -> Result<(), String>
where
    P: Fn(Uri, Bytes) -> PF,
    PF: Future<Output = Result<(), String>>,
    S: Fn(Duration) -> SF,
    SF: Future<Output = ()>,
{
    let mut waited = Duration::ZERO;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match post(url.clone(), body.clone()).await {
            Ok(()) => {
                counters.sent.inc();
                return Ok(());
            }
            Err(e) => {
                if attempt >= MAX_ATTEMPTS || waited + backoff >= budget {
                    counters.failed.inc();
                    return Err(format!("webhook {url}: {e} (after {attempt} attempts)"));
                }
                tracing::debug!(%url, attempt, error = %e, "webhook post failed, retrying");
                sleep(backoff).await;
                waited += backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    }
}
