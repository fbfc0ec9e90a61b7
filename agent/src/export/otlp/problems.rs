//! Node problems to the collector as OTLP log records, so they can be queried
//! with LogQL and alerted on next to the logs.
//!
//! One `ResourceLogs` per record (problems are rare; grouping would save little).
//! Resource attributes, which the collector turns into stream labels:
//! `k8s.node.name`, `service.name` = `sonde-problems`, `problem` (the reason,
//! e.g. `OOMKilling`), `problem.kind` (`event` or `condition`), for a condition
//! change `condition` (its type) and `condition.status`, and, when a pod is
//! involved, `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name` of the
//! first one. The record: `time_unix_nano` (when it was found), severity WARN
//! for problems and INFO for condition changes, the message as the body, and
//! the attribute `problem.source` (the monitor that found it).
//!
//! So `{service_name="sonde-problems", problem="OOMKilling"}` selects OOM kills,
//! and `sum by (node) (count_over_time({problem_kind="event"}[5m]))` counts
//! problems per node.
//!
//! The queue is `<buffer-dir>/problems`, a disk queue like the logs' (at least
//! once; past its bound the oldest batches are dropped and counted in
//! `sonde_problems_export_dropped_records_total`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber},
    resource::v1::Resource,
};
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tracing::error;

use super::{
    buffer::{Buffer, Kind, Overflow},
    sender,
    stats::ExportStats,
    unix_nanos,
};
use crate::{config::ExportConfig, detect::problem::Severity, export::problems::ProblemRecord};

/// Records per request, at most.
const MAX_BATCH: usize = 512;
/// The queue's bound: problems are small and rare, so a few MiB hold days of them.
const QUEUE_BYTES: u64 = 16 << 20;

/// Opens `<buffer-dir>/problems`, registers `sonde_problems_export_*`, and starts
/// the batcher and the sender. Call inside the runtime.
pub fn spawn(
    records: mpsc::Receiver<ProblemRecord>,
    export: &ExportConfig,
    node: String,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let stats = ExportStats::default();
    stats.register_problems(registry);
    let dir = export.buffer_dir.join("problems");
    let buffer = Buffer::open(
        &dir,
        QUEUE_BYTES,
        Kind::Logs,
        Overflow::DropOldest,
        stats.clone(),
    )
    .map_err(|e| anyhow::anyhow!("--buffer-dir: {e}"))?;
    let client = sender::client(&export.collector, Kind::Logs).map_err(|e| anyhow::anyhow!(e))?;
    let buffer = Arc::new(Mutex::new(buffer));
    let wake = Arc::new(Notify::new());
    tokio::spawn(sender::run(
        client,
        buffer.clone(),
        wake.clone(),
        stats,
        Duration::from_millis(250),
    ));
    tokio::spawn(batch_loop(records, node, buffer, wake));
    Ok(())
}

async fn batch_loop(
    mut records: mpsc::Receiver<ProblemRecord>,
    node: String,
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::new();
    while records.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len() as u64;
        let payload = encode(&batch, &node).encode_to_vec();
        batch.clear();
        let buffer = buffer.clone();
        // The queue writes and fsyncs a file: off the runtime's threads.
        let pushed = tokio::task::spawn_blocking(move || {
            buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&payload, n)
        })
        .await;
        match pushed {
            Ok(Ok(())) => wake.notify_one(),
            Ok(Err(e)) => {
                error!(error = %e, records = n, "cannot queue problem records; they are lost")
            }
            Err(e) => error!(error = %e, "the problem queue writer failed"),
        }
    }
}

fn encode(records: &[ProblemRecord], node: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: records.iter().map(|r| resource_logs(r, node)).collect(),
    }
}

fn resource_logs(r: &ProblemRecord, node: &str) -> ResourceLogs {
    let e = &r.event;
    let mut attrs = vec![
        kv("k8s.node.name", node),
        kv("service.name", "sonde-problems"),
        kv("problem", &e.reason),
    ];
    match &r.condition {
        Some((kind, status)) => {
            attrs.push(kv("problem.kind", "condition"));
            attrs.push(kv("condition", kind));
            attrs.push(kv("condition.status", status.as_str()));
        }
        None => attrs.push(kv("problem.kind", "event")),
    }
    if let Some(pod) = e.pods.first() {
        for (k, v) in [
            ("k8s.namespace.name", &pod.namespace),
            ("k8s.pod.name", &pod.pod),
            ("k8s.container.name", &pod.container),
        ] {
            if !v.is_empty() {
                attrs.push(kv(k, v));
            }
        }
    }
    let (severity_number, severity_text) = match e.severity {
        Severity::Warning => (SeverityNumber::Warn, "WARN"),
        Severity::Normal => (SeverityNumber::Info, "INFO"),
    };
    let record = LogRecord {
        time_unix_nano: unix_nanos(e.time),
        observed_time_unix_nano: unix_nanos(SystemTime::now()),
        severity_number: severity_number as i32,
        severity_text: severity_text.into(),
        body: Some(string(&e.message)),
        attributes: vec![kv("problem.source", &e.source)],
        ..Default::default()
    };
    ResourceLogs {
        resource: Some(Resource {
            attributes: attrs,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![record],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(string(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::problem::{PodRef, ProblemEvent, Status};

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        attrs
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| match &a.value {
                Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) => Some(s.as_str()),
                _ => None,
            })
    }

    #[test]
    fn records_carry_the_problem_and_the_pod_as_resource_attributes() {
        let event = ProblemEvent {
            source: "kernel-monitor".into(),
            reason: "OOMKilling".into(),
            message: "Killed process 1 (x)".into(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            severity: Severity::Warning,
            pods: vec![PodRef {
                namespace: "shop".into(),
                pod: "cart".into(),
                container: String::new(),
                uid: String::new(),
            }],
        };
        let req = encode(
            &[
                ProblemRecord {
                    event: event.clone(),
                    condition: None,
                },
                ProblemRecord {
                    event,
                    condition: Some(("KernelDeadlock".into(), Status::True)),
                },
            ],
            "node-1",
        );
        // Through the wire format and back, as the collector will read it.
        let req = ExportLogsServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(req.resource_logs.len(), 2);
        let res = &req.resource_logs[0].resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "problem"), Some("OOMKilling"));
        assert_eq!(attr(res, "problem.kind"), Some("event"));
        assert_eq!(attr(res, "k8s.pod.name"), Some("cart"));
        assert_eq!(attr(res, "k8s.container.name"), None);
        assert_eq!(attr(res, "k8s.node.name"), Some("node-1"));
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 5_000_000_000);
        assert_eq!(rec.severity_text, "WARN");
        assert_eq!(
            attr(&rec.attributes, "problem.source"),
            Some("kernel-monitor")
        );
        let res = &req.resource_logs[1].resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "condition"), Some("KernelDeadlock"));
        assert_eq!(attr(res, "condition.status"), Some("True"));
    }
}
