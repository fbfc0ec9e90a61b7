//! One export request's way in: validate, find the sender's pod, stamp the
//! Kubernetes attributes, queue it on disk, count it. The receivers (gRPC and
//! HTTP) answer success only after the spans are in the queue, so a span the
//! agent acknowledged survives the collector being away and the agent
//! restarting. A full queue is answered "retry later" (OTLP's retryable
//! codes), and the SDK keeps the spans meanwhile.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message;
use tokio::sync::Notify;

use super::{k8s, peer::Peers, red::Red};
use crate::export::otlp::buffer::Buffer;

/// Why a request was refused; the receivers map it to their protocol's code.
#[derive(Debug)]
pub enum Refusal {
    /// Malformed: retrying cannot help (gRPC InvalidArgument, HTTP 400).
    Invalid(String),
    /// The queue is full or the disk failed: retry later (gRPC Unavailable, HTTP 503).
    Busy(String),
}

type Label = [(&'static str, &'static str); 1];

#[derive(Clone, Default)]
struct IntakeStats {
    received: Family<Label, Counter>,
    refused: Family<Label, Counter>,
}

pub struct Intake {
    peers: Peers,
    node: String,
    red: Red,
    queue: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    stats: IntakeStats,
}

impl Intake {
    pub fn new(
        peers: Peers,
        node: String,
        queue: Arc<Mutex<Buffer>>,
        wake: Arc<Notify>,
        registry: &mut Registry,
    ) -> Intake {
        let stats = IntakeStats::default();
        registry.register(
            "sonde_spans_received",
            "Spans accepted from applications and queued for the collector, by protocol.",
            stats.received.clone(),
        );
        registry.register(
            "sonde_spans_refused",
            "Spans refused (the sender was told), by reason: invalid, queue_full, write_error.",
            stats.refused.clone(),
        );
        Intake {
            peers,
            node,
            red: Red::register(registry),
            queue,
            wake,
            stats,
        }
    }

    /// Queues the request's spans; `from` is (the sender's address, ours).
    pub async fn accept(
        self: &Arc<Self>,
        req: ExportTraceServiceRequest,
        from: Option<(SocketAddr, SocketAddr)>,
        protocol: &'static str,
    ) -> Result<(), Refusal> {
        let spans = count(&req);
        if let Err(e) = validate(&req) {
            self.refused("invalid", spans);
            return Err(Refusal::Invalid(e));
        }
        if spans == 0 {
            return Ok(());
        }
        let me = self.clone();
        // The sender lookup reads /proc and the queue fsyncs: off the runtime's threads.
        let queued = tokio::task::spawn_blocking(move || me.queue_blocking(req, from, spans))
            .await
            .unwrap_or_else(|e| Err(("write_error", format!("the span queue writer failed: {e}"))));
        match queued {
            Ok(()) => {
                self.wake.notify_one();
                self.stats
                    .received
                    .get_or_create(&[("protocol", protocol)])
                    .inc_by(spans);
                Ok(())
            }
            Err((reason, message)) => {
                self.refused(reason, spans);
                Err(Refusal::Busy(message))
            }
        }
    }

    fn queue_blocking(
        &self,
        mut req: ExportTraceServiceRequest,
        from: Option<(SocketAddr, SocketAddr)>,
        spans: u64,
    ) -> Result<(), (&'static str, String)> {
        let lock = || self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if lock().over_bound() {
            return Err((
                "queue_full",
                "the agent's span queue is full (the collector is behind or away); retry later"
                    .into(),
            ));
        }
        let sender = from.and_then(|(peer, ours)| self.peers.sender(peer, ours));
        k8s::stamp(&mut req, sender.as_deref(), &self.node);
        lock()
            .push(&req.encode_to_vec(), spans)
            .map_err(|e| ("write_error", format!("cannot queue spans: {e}")))?;
        self.red.observe(&req);
        Ok(())
    }

    fn refused(&self, reason: &'static str, spans: u64) {
        self.stats
            .refused
            .get_or_create(&[("reason", reason)])
            .inc_by(spans);
    }
}

fn count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

/// A span the collector could not store (ids of the wrong size or all zero, as
/// OTLP calls invalid) refuses the whole request, naming it, so nothing is
/// forwarded half.
fn validate(req: &ExportTraceServiceRequest) -> Result<(), String> {
    for (i, rs) in req.resource_spans.iter().enumerate() {
        for (j, ss) in rs.scope_spans.iter().enumerate() {
            for (k, span) in ss.spans.iter().enumerate() {
                let at = || format!("resourceSpans[{i}].scopeSpans[{j}].spans[{k}]");
                let valid = |id: &[u8], len: usize| id.len() == len && id.iter().any(|b| *b != 0);
                if !valid(&span.trace_id, 16) {
                    return Err(format!("{}.traceId: must be 16 bytes, not all zero", at()));
                }
                if !valid(&span.span_id, 8) {
                    return Err(format!("{}.spanId: must be 8 bytes, not all zero", at()));
                }
                if !(span.parent_span_id.is_empty() || span.parent_span_id.len() == 8) {
                    return Err(format!("{}.parentSpanId: must be 8 bytes or empty", at()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn req(trace_id: Vec<u8>, span_id: Vec<u8>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id,
                        span_id,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn invalid_ids_are_named() {
        assert!(validate(&req(vec![1; 16], vec![2; 8])).is_ok());
        let e = validate(&req(vec![0; 16], vec![2; 8])).unwrap_err();
        assert!(
            e.starts_with("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{e}"
        );
        let e = validate(&req(vec![1; 16], vec![2; 7])).unwrap_err();
        assert!(e.contains(".spanId: must be 8 bytes"), "{e}");
        assert_eq!(count(&req(vec![1; 16], vec![2; 8])), 1);
    }
}
