//! What the reporter did, for /metrics.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use prometheus_client::encoding::DescriptorEncoder;

use crate::export::families;

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub events_created: AtomicU64,
    pub events_updated: AtomicU64,
    pub events_rate_limited: AtomicU64,
    pub events_failed: AtomicU64,
    pub patches_ok: AtomicU64,
    pub patches_failed: AtomicU64,
}

impl Stats {
    pub(super) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

#[derive(Debug)]
pub(super) struct Collector(pub Arc<Stats>);

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let get = |c: &AtomicU64| c.load(Relaxed) as f64;
        families::counter(
            &mut enc,
            "sonde_problem_events",
            "Problem Events written to Kubernetes (created, or a repeat updating one's count), \
             refused by the rate limiter, or failed after retries.",
            [
                ("created", get(&s.events_created)),
                ("updated", get(&s.events_updated)),
                ("rate_limited", get(&s.events_rate_limited)),
                ("failed", get(&s.events_failed)),
            ]
            .map(|(result, v)| (crate::labels!("result" => result), v)),
        )?;
        families::counter(
            &mut enc,
            "sonde_node_condition_patches",
            "Patches of this node's status conditions, by result (failed ones are retried).",
            [
                ("ok", get(&s.patches_ok)),
                ("failed", get(&s.patches_failed)),
            ]
            .map(|(result, v)| (crate::labels!("result" => result), v)),
        )
    }
}
