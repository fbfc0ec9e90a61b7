//! Log writes: Loki push (JSON, snappy protobuf) and OTLP logs (gRPC, HTTP
//! protobuf and JSON), each decoded whole into streams, then appended to the
//! log store in one call on a blocking thread and acknowledged once durable.
//! A refused write changes nothing and is counted by reason. Body limits,
//! decompression and error shapes are the metric write path's
//! ([`crate::ingest`]).

pub mod grpc;
pub mod http;
pub mod labels;
pub mod loki_json;
pub mod loki_proto;
pub mod metrics;
pub mod otlp;
pub mod otlp_json;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::{
    ingest::{IngestError, append_blocking},
    logs::{
        model::StreamEntries,
        store::{LogAppendStats, LogStore},
    },
};
pub use metrics::LogIngestMetrics;

/// The log write path shared by every protocol. Cheap to clone.
#[derive(Clone)]
pub struct LogIngester {
    store: Arc<LogStore>,
    pub metrics: LogIngestMetrics,
    /// `--max-request-bytes`, applied to compressed and decompressed bodies.
    pub max_request_bytes: usize,
}

impl LogIngester {
    pub fn new(store: Arc<LogStore>, registry: &mut Registry, max_request_bytes: usize) -> Self {
        LogIngester {
            store,
            metrics: LogIngestMetrics::new(registry),
            max_request_bytes,
        }
    }

    /// Appends the streams in one store call; returns once durable. Counts
    /// what was accepted; the caller counts refusals ([`Self::count_refusal`]).
    pub async fn commit(
        &self,
        protocol: &'static str,
        mut streams: Vec<StreamEntries>,
    ) -> Result<LogAppendStats, IngestError> {
        streams.retain(|s| !s.entries.is_empty());
        let n: usize = streams.iter().map(|s| s.entries.len()).sum();
        if n == 0 {
            self.metrics.accepted(protocol, 0, 0, 0);
            return Ok(LogAppendStats::default());
        }
        let store = self.store.clone();
        let stats = append_blocking("log", n, move || store.append(streams)).await?;
        self.metrics
            .accepted(protocol, stats.entries, stats.bytes, stats.duplicates);
        Ok(stats)
    }

    /// Counts a refused request (its entries, or one if they are unknown).
    pub fn count_refusal(&self, protocol: &'static str, e: &IngestError) {
        self.metrics.writes.refused(protocol, e);
    }
}
