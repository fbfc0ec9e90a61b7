//! The node's conditions on its status: patched when the hub's set changes, and otherwise
//! once per heartbeat, one patch for all of them.

use std::{sync::Arc, time::SystemTime};

use k8s_openapi::api::core::v1::{Node, NodeCondition as ApiCondition};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::{
    sync::watch,
    time::{Instant, sleep_until},
};

use super::{COMPONENT, KubeReportOptions, backoff, stats::Stats, time::api_time};
use crate::detect::problem::NodeCondition;

/// What of a condition reaches the API (the pods do not), to tell a change from a repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    kind: String,
    status: &'static str,
    reason: String,
    message: String,
    last_transition: SystemTime,
}

fn sent(conditions: &[NodeCondition]) -> Vec<Sent> {
    conditions
        .iter()
        .map(|c| Sent {
            kind: c.kind.clone(),
            status: c.status.as_str(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition: c.last_transition,
        })
        .collect()
}

/// The strategic merge patch NPD sends: only our conditions, merged by `type`.
fn patch_body(conditions: &[Sent], now: SystemTime) -> serde_json::Value {
    let conditions: Vec<ApiCondition> = conditions
        .iter()
        .map(|c| ApiCondition {
            type_: c.kind.clone(),
            status: c.status.to_string(),
            reason: Some(c.reason.clone()),
            message: Some(c.message.clone()),
            last_transition_time: Some(api_time(c.last_transition)),
            last_heartbeat_time: Some(api_time(now)),
        })
        .collect();
    json!({ "status": { "conditions": conditions } })
}

pub(super) async fn run(
    api: Api<Node>,
    node: String,
    mut rx: watch::Receiver<Vec<NodeCondition>>,
    opts: Arc<KubeReportOptions>,
    stats: Arc<Stats>,
) {
    let params = PatchParams {
        field_manager: Some(COMPONENT.into()),
        ..PatchParams::default()
    };
    // What the Node holds from us (after the last patch that succeeded), and when.
    let mut landed: Option<Vec<Sent>> = None;
    let mut landed_at = Instant::now();
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let mut hub_open = true;
    loop {
        let current = sent(&rx.borrow_and_update());
        let now = Instant::now();
        let changed = !current.is_empty() && landed.as_ref() != Some(&current);
        // Heartbeats refresh what landed; an empty set (nothing to say) gets none.
        let heartbeat_at =
            (!current.is_empty() && landed.is_some()).then(|| landed_at + opts.heartbeat);
        let heartbeat_due = heartbeat_at.is_some_and(|t| now >= t);
        let due = changed || heartbeat_due;
        if due && retry_at.is_none_or(|t| now >= t) {
            let body = patch_body(&current, SystemTime::now());
            let result = tokio::time::timeout(
                opts.request_timeout,
                api.patch_status(&node, &params, &Patch::Strategic(&body)),
            )
            .await;
            match result {
                Ok(Ok(_)) => {
                    Stats::inc(&stats.patches_ok);
                    if failures > 0 {
                        tracing::info!(node, failures, "node conditions patched again");
                    }
                    tracing::debug!(
                        node,
                        conditions = current.len(),
                        heartbeat = !changed,
                        "patched node conditions"
                    );
                    landed = Some(current);
                    landed_at = Instant::now();
                    failures = 0;
                    retry_at = None;
                }
                failed => {
                    Stats::inc(&stats.patches_failed);
                    failures = failures.saturating_add(1);
                    let wait = backoff(&opts, failures);
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", opts.request_timeout),
                    };
                    // The first failure and then every tenth, so an outage does not flood the log.
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(node, failures, retry_in = ?wait, %error, "patching node conditions failed");
                    }
                    retry_at = Some(Instant::now() + wait);
                }
            }
            continue; // the set may have changed while we waited for the answer
        }
        if !hub_open && !due {
            tracing::debug!(node, "condition source closed; condition reporting ends");
            return;
        }
        // Sleep until a retry is due, the heartbeat is due, or the set changes.
        let wake = if due { retry_at } else { heartbeat_at };
        tokio::select! {
            changed = rx.changed(), if hub_open => hub_open = changed.is_ok(),
            _ = sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
        }
    }
}
