//! Problem events as core/v1 Events, deduplicated and rate limited like client-go's
//! EventCorrelator.
//!
//! Written by hand on `Api<Event>` rather than with `kube::runtime::events::Recorder`:
//! the Recorder writes events.k8s.io/v1 Events (with a series, not `count`), has no spam
//! filter, and keeps its dedupe cache for a fixed 6 minutes. NPD, the kubelet and
//! `kubectl describe node` work with core/v1 Events whose `count` and `lastTimestamp`
//! grow, which is what this does.
//!
//! Order per event, as in client-go: observe (a repeat within the window bumps the
//! remembered count), then filter (the spam filter may refuse it), then write. A refused
//! repeat still counted, so the next write that gets through carries the true count.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    COMPONENT, KubeReportOptions, backoff, limiter::Limiter, stats::Stats, time::api_time,
};
use crate::detect::problem::{PodRef, ProblemEvent, Severity};

/// What makes two problem events the same Event. The involved object is always this
/// node, so it is not part of the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    source: String,
    reason: String,
    message: String,
    severity: Severity,
    /// The related pod: (namespace, name, uid).
    pod: Option<(String, String, String)>,
}

impl Key {
    fn of(ev: &ProblemEvent) -> Key {
        Key {
            source: ev.source.clone(),
            reason: ev.reason.clone(),
            message: ev.message.clone(),
            severity: ev.severity,
            pod: ev
                .pods
                .first()
                .map(|p| (p.namespace.clone(), p.pod.clone(), p.uid.clone())),
        }
    }
}

#[derive(Clone, Debug)]
struct Seen {
    /// The Event this key was written as; `None` until a create succeeds.
    name: Option<String>,
    count: i32,
    first: SystemTime,
    last_seen: Instant,
}

/// Remembers recent Events (client-go's eventLogger, with a time window).
#[derive(Debug)]
struct Correlator {
    window: std::time::Duration,
    capacity: usize,
    seen: HashMap<Key, Seen>,
}

impl Correlator {
    /// Records one occurrence and returns what to write: the existing Event's name (then
    /// a patch) or none (a create), with the count and first time the Event should carry.
    fn observe(&mut self, key: &Key, time: SystemTime, now: Instant) -> Seen {
        let window = self.window;
        let entry = match self.seen.get_mut(key) {
            Some(s) if now.saturating_duration_since(s.last_seen) < window => {
                s.count = s.count.saturating_add(1);
                s.last_seen = now;
                s
            }
            _ => {
                if !self.seen.contains_key(key) && self.seen.len() >= self.capacity.max(1) {
                    self.evict(now);
                }
                self.seen.insert(
                    key.clone(),
                    Seen {
                        name: None,
                        count: 1,
                        first: time,
                        last_seen: now,
                    },
                );
                self.seen.get_mut(key).expect("just inserted")
            }
        };
        entry.clone()
    }

    /// Makes room: everything outside the window, else the least recently seen.
    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.seen
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < window);
        if self.seen.len() >= self.capacity.max(1)
            && let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            self.seen.remove(&oldest);
        }
    }

    /// The Event for `key` now exists as `name`.
    fn created(&mut self, key: &Key, name: String) {
        if let Some(s) = self.seen.get_mut(key) {
            s.name = Some(name);
        }
    }

    /// The Event for `key` is gone from the server (expired): start a new one.
    fn restart(&mut self, key: &Key, time: SystemTime) -> Seen {
        let s = self.seen.get_mut(key).expect("observed before written");
        s.name = None;
        s.count = 1;
        s.first = time;
        s.clone()
    }
}

/// Why a write failed, as far as the caller acts on it.
enum WriteError {
    NotFound,
    AlreadyExists,
    /// Logged and counted; `retry` for errors that may pass (network, 429, 5xx, timeout).
    Other {
        message: String,
        retry: bool,
    },
}

impl From<kube::Error> for WriteError {
    fn from(e: kube::Error) -> WriteError {
        match &e {
            kube::Error::Api(s) if s.is_not_found() => WriteError::NotFound,
            kube::Error::Api(s) if s.is_already_exists() => WriteError::AlreadyExists,
            kube::Error::Api(s) => WriteError::Other {
                retry: s.code == 429 || s.code >= 500,
                message: e.to_string(),
            },
            _ => WriteError::Other {
                message: e.to_string(),
                retry: true,
            },
        }
    }
}

struct Sink {
    api: Api<Event>,
    node: String,
    opts: Arc<KubeReportOptions>,
    stats: Arc<Stats>,
    correlator: Correlator,
    limiter: Limiter,
    /// The last name's nanosecond part, so names stay unique within one nanosecond tick.
    last_nanos: u128,
    /// Failures in a row, to log an outage once rather than per event.
    failing: u32,
}

pub(super) async fn run(
    api: Api<Event>,
    node: String,
    mut rx: mpsc::Receiver<ProblemEvent>,
    opts: Arc<KubeReportOptions>,
    stats: Arc<Stats>,
) {
    let mut sink = Sink {
        api,
        node,
        correlator: Correlator {
            window: opts.dedupe_window,
            capacity: opts.dedupe_cache_size,
            seen: HashMap::new(),
        },
        limiter: Limiter::new(
            opts.source_burst,
            opts.source_refill,
            opts.global_burst,
            opts.global_refill,
            Instant::now(),
        ),
        opts,
        stats,
        last_nanos: 0,
        failing: 0,
    };
    while let Some(ev) = rx.recv().await {
        sink.handle(ev).await;
    }
    tracing::debug!(
        node = sink.node,
        "problem event source closed; event reporting ends"
    );
}

impl Sink {
    async fn handle(&mut self, ev: ProblemEvent) {
        let now = Instant::now();
        let key = Key::of(&ev);
        let mut seen = self.correlator.observe(&key, ev.time, now);
        // Keyed by reason too (client-go keys by source alone): an OOM storm must
        // not silence the disk error that follows it. The global bucket still caps both.
        if !self
            .limiter
            .allow(&format!("{}\0{}", ev.source, ev.reason), now)
        {
            Stats::inc(&self.stats.events_rate_limited);
            tracing::debug!(
                source = ev.source,
                reason = ev.reason,
                "problem event rate limited"
            );
            return;
        }
        if let Some(name) = seen.name.clone() {
            match self.patch(&name, &seen, &ev).await {
                Ok(()) => return self.done(&self.stats.events_updated),
                Err(WriteError::NotFound) => seen = self.correlator.restart(&key, ev.time),
                Err(e) => return self.failed(&ev, e),
            }
        }
        match self.create(&seen, &ev).await {
            Ok(name) => {
                self.correlator.created(&key, name);
                self.done(&self.stats.events_created);
            }
            Err(e) => self.failed(&ev, e),
        }
    }

    fn done(&self, counter: &std::sync::atomic::AtomicU64) {
        Stats::inc(counter);
    }

    fn failed(&mut self, ev: &ProblemEvent, e: WriteError) {
        Stats::inc(&self.stats.events_failed);
        self.failing = self.failing.saturating_add(1);
        let error = match e {
            WriteError::NotFound => "not found".to_string(),
            WriteError::AlreadyExists => "name already taken".to_string(),
            WriteError::Other { message, .. } => message,
        };
        if self.failing == 1 || self.failing.is_multiple_of(100) {
            tracing::warn!(
                reason = ev.reason,
                failed_in_a_row = self.failing,
                %error,
                "writing a problem Event failed; dropped (counted in sonde_problem_events_total)"
            );
        }
    }

    /// Runs `op` up to `event_attempts` times while it fails with an error worth retrying.
    async fn attempt<F, Fut, T>(&self, mut op: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match tokio::time::timeout(self.opts.request_timeout, op()).await {
                Ok(r) => r.map_err(WriteError::from),
                Err(_) => Err(WriteError::Other {
                    message: format!("no answer within {:?}", self.opts.request_timeout),
                    retry: true,
                }),
            };
            match result {
                Err(WriteError::Other { retry: true, .. }) if tries < self.opts.event_attempts => {
                    tokio::time::sleep(backoff(&self.opts, tries)).await;
                }
                other => return other,
            }
        }
    }

    async fn patch(
        &mut self,
        name: &str,
        seen: &Seen,
        ev: &ProblemEvent,
    ) -> Result<(), WriteError> {
        // What client-go's eventObserve patches.
        let body = json!({
            "count": seen.count,
            "lastTimestamp": api_time(ev.time),
            "message": ev.message,
        });
        let params = PatchParams::default();
        let patch = Patch::Strategic(&body);
        let api = &self.api;
        self.attempt(|| api.patch(name, &params, &patch)).await?;
        self.failing = 0;
        Ok(())
    }

    /// Creates the Event; returns its name.
    async fn create(&mut self, seen: &Seen, ev: &ProblemEvent) -> Result<String, WriteError> {
        let mut event = self.event(seen, ev);
        let params = PostParams::default();
        // A taken name (another writer, or a clock step back) gets one fresh try.
        for _ in 0..2 {
            let api = &self.api;
            match self.attempt(|| api.create(&params, &event)).await {
                Ok(created) => {
                    self.failing = 0;
                    return Ok(created.metadata.name.unwrap_or_default());
                }
                Err(WriteError::AlreadyExists) => event.metadata.name = Some(self.name()),
                Err(e) => return Err(e),
            }
        }
        Err(WriteError::AlreadyExists)
    }

    /// client-go's naming: `<involved object>.<unix nanoseconds in hex>`.
    fn name(&mut self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.last_nanos = nanos.max(self.last_nanos + 1);
        format!("{}.{:x}", self.node, self.last_nanos)
    }

    fn event(&mut self, seen: &Seen, ev: &ProblemEvent) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(self.name()),
                namespace: Some(self.opts.event_namespace.clone()),
                ..ObjectMeta::default()
            },
            // As NPD and the kubelet reference their node: the uid is the node's name,
            // which is what `kubectl describe node` looks for.
            involved_object: ObjectReference {
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                uid: Some(self.node.clone()),
                ..ObjectReference::default()
            },
            related: ev.pods.first().map(pod_reference),
            reason: Some(ev.reason.clone()),
            message: Some(ev.message.clone()),
            type_: Some(ev.severity.as_str().into()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(api_time(seen.first)),
            last_timestamp: Some(api_time(ev.time)),
            count: Some(seen.count),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(self.node.clone()),
            ..Event::default()
        }
    }
}

fn pod_reference(p: &PodRef) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(p.namespace.clone()),
        name: Some(p.pod.clone()),
        uid: (!p.uid.is_empty()).then(|| p.uid.clone()),
        // The kubelet's way to point at one container of a pod.
        field_path: (!p.container.is_empty())
            .then(|| format!("spec.containers{{{}}}", p.container)),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod correlator_tests {
    use std::time::Duration;

    use super::*;

    fn ev(message: &str) -> ProblemEvent {
        ProblemEvent {
            source: "kernel-monitor".into(),
            reason: "OOMKilling".into(),
            message: message.into(),
            time: SystemTime::now(),
            severity: Severity::Warning,
            pods: vec![],
        }
    }

    #[test]
    fn repeats_within_the_window_count_up_and_expire() {
        let mut c = Correlator {
            window: Duration::from_secs(600),
            capacity: 2,
            seen: HashMap::new(),
        };
        let t0 = Instant::now();
        let a = Key::of(&ev("a"));
        assert_eq!(c.observe(&a, SystemTime::now(), t0).count, 1);
        c.created(&a, "n.1".into());
        let s = c.observe(&a, SystemTime::now(), t0 + Duration::from_secs(599));
        assert_eq!((s.count, s.name.as_deref()), (2, Some("n.1")));
        // The window runs from the last occurrence.
        let s = c.observe(&a, SystemTime::now(), t0 + Duration::from_secs(1198));
        assert_eq!(s.count, 3);
        let s = c.observe(&a, SystemTime::now(), t0 + Duration::from_secs(1798));
        assert_eq!(
            (s.count, s.name),
            (1, None),
            "outside the window: a new Event"
        );

        // Capacity 2: a third key evicts the least recently seen.
        let t = t0 + Duration::from_secs(1800);
        let (b, d) = (Key::of(&ev("b")), Key::of(&ev("d")));
        c.observe(&b, SystemTime::now(), t);
        c.observe(&d, SystemTime::now(), t + Duration::from_secs(1));
        assert_eq!(c.seen.len(), 2);
        assert!(!c.seen.contains_key(&a));
    }
}
