//! Built-in alert notification for clusters without Alertmanager: the same
//! routing tree, grouping, timers, silences, inhibition and webhook JSON.
//!
//! ```text
//! rule alerts -> Router::ingest -> dispatch (routes -> aggregation groups)
//!   Router::due(now): flush due groups, drop silenced/inhibited alerts,
//!     dedup against what was sent -> Notification (webhook URL + JSON)
//!   run(): every second, post each with retries (webhook), then Router::report
//! ```
//!
//! Everything but `run` takes `now` (Unix ms) so tests drive the clock.

pub mod alert;
pub mod api;
pub mod config;
pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod silence;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use hyper::{Uri, body::Bytes};

use self::{
    alert::RoutedAlert,
    config::RouteConfig,
    dispatch::{Dispatcher, Due},
    silence::Silences,
    webhook::{Counters, Message},
};

/// One webhook POST that is due.
#[derive(Clone, Debug)]
pub struct Notification {
    pub url: Uri,
    pub message: Message,
    /// Retries must end within this (the group interval).
    pub budget: Duration,
    due: Due,
}

impl Notification {
    pub fn body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.message).expect("plain maps and strings serialize"))
    }
}

pub struct Router {
    cfg: RouteConfig,
    external_url: String,
    dispatch: Dispatcher,
    /// Every firing alert, by fingerprint: inhibition sources.
    alerts: HashMap<u64, RoutedAlert>,
    pub silences: Silences,
}

impl Router {
    pub fn new(cfg: RouteConfig, external_url: String) -> Router {
        Router {
            cfg,
            external_url,
            dispatch: Dispatcher::default(),
            alerts: HashMap::new(),
            silences: Silences::default(),
        }
    }

    /// Rule alerts as the notifier hands them over (`RoutedAlert::from_rule` skips pending ones).
    pub fn ingest_routed(&mut self, alerts: impl IntoIterator<Item = RoutedAlert>, now_ms: i64) {
        for a in alerts {
            self.dispatch.insert(&self.cfg, &a, now_ms);
            self.alerts.insert(a.fingerprint, a);
        }
    }

    /// Flushes due groups; the caller posts each and calls `report`.
    pub fn due(&mut self, now_ms: i64) -> Vec<Notification> {
        self.alerts.retain(|_, a| !a.resolved(now_ms));
        let (cfg, alerts, silences) = (&self.cfg, &self.alerts, &self.silences);
        let muted = |a: &RoutedAlert| {
            silences.silenced(&a.labels, now_ms)
                || inhibit::inhibited(&cfg.inhibit_rules, a, alerts.values(), now_ms)
        };
        let dues = self.dispatch.flush(cfg, now_ms, &muted);
        dues.into_iter()
            .filter_map(|due| {
                let hook = cfg.receiver(&due.receiver)?.webhooks.get(due.webhook)?;
                Some(Notification {
                    url: hook.url.clone(),
                    message: Message::build(&due, &self.external_url, hook.max_alerts, now_ms),
                    budget: Duration::from_millis(due.group_interval_ms.max(0) as u64),
                    due,
                })
            })
            .collect()
    }

    /// The outcome of posting `n`: success records it as sent (for dedup and
    /// repeat_interval); resolved alerts are dropped once their flush succeeded.
    pub fn report(&mut self, n: &Notification, ok: bool) {
        self.dispatch.report(&n.due, ok);
    }

    /// Number of aggregation groups (for tests and a gauge).
    pub fn group_count(&self) -> usize {
        self.dispatch.groups().count()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Ticks every second and posts what is due with `post` (the transport: an
/// HTTP POST of JSON, `Ok` on 2xx). Each post runs in its own task so a slow
/// receiver does not hold up the others.
pub async fn run<P, PF>(router: Arc<Mutex<Router>>, counters: Counters, post: P)
where
    P: Fn(Uri, Bytes) -> PF + Clone + Send + Sync + 'static,
    PF: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(now_ms());
        for n in due {
            let (router, counters, post) = (router.clone(), counters.clone(), post.clone());
            tokio::spawn(async move {
                let res = webhook::deliver(
                    &n.url,
                    n.body(),
                    n.budget,
                    &counters,
                    post,
                    tokio::time::sleep,
                )
                .await;
                if let Err(e) = &res {
                    tracing::warn!(receiver = %n.due.receiver, error = %e, "webhook notification failed");
                }
                router
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .report(&n, res.is_ok());
            });
        }
    }
}
