//! Starting problem detection: the sources, the hub, and the reporters the
//! configuration asks for.
//!
//! ```text
//! npd (kmsg rules, log-counter, plugins) ─┐
//! health (kubelet, runtime, clock, fs, PSI) ├─> hub ─┬─> export::kube (Node status, Events)
//! evidence (eBPF: OOM, TCP, block I/O, runq) ┘       ├─> export::problems (problem_* metrics)
//!                                                   └─> export::otlp::problems (collector)
//! ```

use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::{evidence, health, hub, npd, problem::ConditionDefault};
use crate::{
    config::{Config, ProblemsConfig, RuntimeSocket},
    export::{self, problems::ProblemMetrics},
    probes::reader::Latest,
};

/// What the probes hand to detection.
pub struct ProbeInputs {
    pub latest: Latest,
    /// OOM kills from the ring buffer; `None` when the oom probe is off.
    pub ooms: Option<mpsc::Receiver<evidence::OomKill>>,
}

/// Findings waiting for the hub; sources wait (kmsg) or drop and count past it.
const FINDINGS_QUEUE: usize = 4096;
/// Events waiting for a reporter; past it the hub drops and counts them.
const EVENTS_QUEUE: usize = 2048;
/// How long an OOM kill seen by one of the kernel log and the probe waits for the other.
const OOM_HOLD: Duration = Duration::from_secs(2);

/// Starts everything; errors name the flag (a bad monitor file, an unusable
/// kubeconfig, an unwritable buffer directory). Call inside the runtime.
pub fn start(
    cfg: &Config,
    problems: &ProblemsConfig,
    probes: ProbeInputs,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let monitors = if problems.monitor_files.is_empty() {
        npd::builtin()
    } else {
        npd::load(&problems.monitor_files).map_err(|e| anyhow::anyhow!("--problem-config: {e}"))?
    };
    let (tx, rx) = mpsc::channel(FINDINGS_QUEUE);
    let mut defaults: Vec<ConditionDefault> = npd::start(monitors, tx.clone(), registry)?;
    defaults.extend(health::start(health_config(cfg, problems), tx.clone()));
    let oom_hold = if probes.ooms.is_some() {
        OOM_HOLD
    } else {
        Duration::ZERO
    };
    defaults.extend(evidence::start(
        evidence_config(problems),
        probes.latest,
        probes.ooms,
        tx,
    ));

    let metrics = ProblemMetrics::default();
    registry.register_collector(Box::new(metrics.clone()));
    let (conditions, conditions_rx) = watch::channel(Vec::new());
    let kube_events = match &cfg.node_name {
        Some(node) => {
            let client = crate::enrich::pods::client(cfg.kubeconfig.as_deref())?;
            let (etx, erx) = mpsc::channel(EVENTS_QUEUE);
            let opts = export::kube::KubeReportOptions {
                heartbeat: problems.heartbeat,
                event_namespace: problems.event_namespace.clone(),
                ..Default::default()
            };
            export::kube::spawn(client, node.clone(), conditions_rx, erx, opts, registry);
            info!(node = %node, "reporting node problems as NodeConditions and Events");
            Some(etx)
        }
        None => {
            info!(
                "no node name: node problems are on /metrics (problem_*) only, not in Kubernetes"
            );
            None
        }
    };
    let records = match &cfg.export {
        Some(e) => {
            let (rtx, rrx) = mpsc::channel(EVENTS_QUEUE);
            let node = export::otlp::node_name(cfg.node_name.as_deref());
            export::otlp::problems::spawn(rrx, e, node, registry)?;
            Some(rtx)
        }
        None => None,
    };
    let hub = hub::Hub::new(
        defaults,
        hub::Outputs {
            conditions,
            kube_events,
            records,
        },
        metrics,
        oom_hold,
    );
    tokio::spawn(hub.run(rx));
    Ok(())
}

fn health_config(cfg: &Config, p: &ProblemsConfig) -> health::HealthConfig {
    health::HealthConfig {
        interval: p.health_interval,
        kubelet: p.kubelet_healthz.clone(),
        runtime_socket: match &p.runtime_socket {
            RuntimeSocket::Off => None,
            RuntimeSocket::At(path) => Some(path.clone()),
            // None there yet: containerd's is where a broken runtime most likely is.
            RuntimeSocket::Found => health::detect_runtime_socket(&cfg.rootfs).or_else(|| {
                Some(
                    cfg.rootfs
                        .join(health::RUNTIME_SOCKETS[0].trim_start_matches('/')),
                )
            }),
        },
        procfs: cfg.procfs.clone(),
        rootfs: cfg.rootfs.clone(),
        ..Default::default()
    }
}

fn evidence_config(p: &ProblemsConfig) -> evidence::EvidenceConfig {
    evidence::EvidenceConfig {
        tcp_retransmits_per_second: p.tcp_retransmits_per_second,
        blockio_p99: p.blockio_p99,
        runqueue_p99: p.runqueue_p99,
        sustain: p.sustain,
        ..Default::default()
    }
}
