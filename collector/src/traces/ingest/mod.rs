//! Trace writes: OTLP traces over gRPC (`TraceService/Export`) and HTTP
//! (`POST /v1/traces`, protobuf or JSON), each decoded and validated whole,
//! then appended to the trace store in one call on a blocking thread and
//! acknowledged once durable. A refused write changes nothing and is counted
//! by reason. Body limits, decompression and error shapes are the metric
//! write path's ([`crate::ingest`]).

pub mod grpc;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod otlp_json;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prometheus_client::registry::Registry;

use crate::{
    ingest::{IngestError, append_blocking},
    traces::store::{TraceAppendStats, TraceStore},
};
pub use metrics::TraceIngestMetrics;

/// The trace write path shared by both protocols. Cheap to clone.
#[derive(Clone)]
pub struct TraceIngester {
    store: Arc<TraceStore>,
    pub metrics: TraceIngestMetrics,
    /// `--max-request-bytes`, applied to compressed and decompressed bodies.
    pub max_request_bytes: usize,
}

impl TraceIngester {
    pub fn new(store: Arc<TraceStore>, registry: &mut Registry, max_request_bytes: usize) -> Self {
        crate::traces::store::metrics::register(registry, store.clone());
        TraceIngester {
            store,
            metrics: TraceIngestMetrics::new(registry),
            max_request_bytes,
        }
    }

    /// Validates, maps and appends a request; returns once durable. Counts
    /// what was accepted; the caller counts refusals ([`Self::count_refusal`]).
    pub async fn export(
        &self,
        protocol: &'static str,
        req: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let n = otlp::span_count(&req);
        let spans = otlp::map_request(req)
            .map_err(|e| IngestError::bad_request("invalid_span", e).with_samples(n))?;
        let store = self.store.clone();
        let stats: TraceAppendStats = if spans.is_empty() {
            TraceAppendStats::default()
        } else {
            append_blocking("trace", n, move || store.append(spans)).await?
        };
        self.metrics
            .accepted(protocol, stats.spans, stats.duplicates);
        // Every span is stored or the request refused: no partial success.
        Ok(ExportTraceServiceResponse {
            partial_success: None,
        })
    }

    /// Counts a refused request (its spans, or one if they are unknown).
    pub fn count_refusal(&self, protocol: &'static str, e: &IngestError) {
        self.metrics.writes.refused(protocol, e);
    }
}
