//! Puts the node's problems into Kubernetes, as node-problem-detector does: the hub's
//! conditions on the Node's status, its problem events as core/v1 Events.
//!
//! Two tasks, each with its own failure handling:
//! - [`conditions`] patches `nodes/<node>/status` (strategic merge keyed by `type`, so the
//!   kubelet's conditions stay untouched) on every change and otherwise once per
//!   heartbeat; failed patches are retried with capped backoff, always with the latest set.
//! - [`events`] creates Events, folds repeats into one Event's `count` and rate limits
//!   like client-go's EventCorrelator (see there for why not kube's `Recorder`).
//!
//! Everything refused or failed is counted on /metrics ([`stats`]); API errors are logged
//! and never end the tasks.

mod conditions;
mod events;
mod limiter;
mod stats;
#[cfg(test)]
mod tests;
mod time;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use tokio::sync::{mpsc, watch};

use crate::detect::problem::{NodeCondition, ProblemEvent};

/// The name we write as Events' `source.component` and `reportingComponent`, and as the
/// field manager of our patches.
pub const COMPONENT: &str = "sonde-agent";

/// How the reporter talks to the API server. The defaults are NPD's and client-go's.
#[derive(Clone, Debug)]
pub struct KubeReportOptions {
    /// Re-patch unchanged conditions this often, refreshing `lastHeartbeatTime` (NPD: 5m).
    pub heartbeat: Duration,
    /// Where Events go. The real API server accepts Events about a Node (cluster-scoped)
    /// only in `default`, which is NPD's choice too.
    pub event_namespace: String,
    /// A repeat of an Event (same reason, message, type, node and pod) seen within this
    /// window updates that Event's count instead of creating one (client-go: 10m).
    pub dedupe_window: Duration,
    /// Distinct Events remembered for deduplication; the least recently seen go first
    /// (client-go: 4096).
    pub dedupe_cache_size: usize,
    /// Events each source may send in a burst per reason (client-go's spam filter:
    /// 25 per source) ...
    pub source_burst: u32,
    /// ... and the time it takes to earn one more (client-go: 5m).
    pub source_refill: Duration,
    /// A cap over all sources together: burst ...
    pub global_burst: u32,
    /// ... and the time to earn one more.
    pub global_refill: Duration,
    /// First wait after a failed request; doubles per failure up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Tries per Event write before it is counted as failed and dropped (conditions are
    /// never dropped: the latest set is retried until it lands).
    pub event_attempts: u32,
    /// A request that takes longer than this is abandoned and counts as failed.
    pub request_timeout: Duration,
}

impl Default for KubeReportOptions {
    fn default() -> Self {
        KubeReportOptions {
            heartbeat: Duration::from_secs(5 * 60),
            event_namespace: "default".into(),
            dedupe_window: Duration::from_secs(10 * 60),
            dedupe_cache_size: 4096,
            source_burst: 25,
            source_refill: Duration::from_secs(5 * 60),
            global_burst: 50,
            global_refill: Duration::from_secs(10),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            event_attempts: 3,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Patches this node's conditions (strategic merge on nodes/<node>/status; lastTransitionTime
/// from NodeCondition, lastHeartbeatTime = now; patch only on change or every heartbeat) and
/// creates/updates Events (involvedObject = the Node, `related` = first pod if any; deduplicated
/// with counts; rate limited like client-go's spam filter; what is dropped is counted on
/// /metrics). Never panics or exits on API errors: retries with backoff, logs, counts.
///
/// Call inside the tokio runtime. The condition task ends when the `conditions` sender is
/// dropped (after landing the last set), the event task when the `events` sender is.
pub fn spawn(
    client: ::kube::Client,
    node: String,
    conditions: watch::Receiver<Vec<NodeCondition>>,
    events: mpsc::Receiver<ProblemEvent>,
    opts: KubeReportOptions,
    registry: &mut prometheus_client::registry::Registry,
) {
    if !matches!(opts.event_namespace.as_str(), "default" | "") {
        tracing::warn!(
            namespace = %opts.event_namespace,
            "the API server accepts Events about a Node only in the default namespace; \
             Event writes will likely be refused"
        );
    }
    let stats = Arc::new(stats::Stats::default());
    registry.register_collector(Box::new(stats::Collector(stats.clone())));
    let opts = Arc::new(opts);
    let nodes: Api<Node> = Api::all(client.clone());
    let event_api: Api<Event> = Api::namespaced(client, &opts.event_namespace);
    tokio::spawn(conditions::run(
        nodes,
        node.clone(),
        conditions,
        opts.clone(),
        stats.clone(),
    ));
    tokio::spawn(events::run(event_api, node, events, opts, stats));
}

/// The wait before retry number `failures` (1 = after the first failure): doubling from
/// `retry_initial`, capped at `retry_max`, with up to 25% jitter so that many agents
/// coming back after an API outage do not retry in step.
fn backoff(opts: &KubeReportOptions, failures: u32) -> Duration {
    let doubled = opts
        .retry_initial
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = doubled.min(opts.retry_max);
    base.mul_f64(1.0 - 0.25 * fastrand::f64())
}
