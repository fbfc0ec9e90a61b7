//! Decoding and validating writes: Prometheus remote_write and OTLP metrics
//! (gRPC, HTTP protobuf, HTTP JSON). A write is validated whole, appended to
//! storage on a blocking thread, and acknowledged only once `Storage::append`
//! returned Ok; a refused write changes nothing. Every refusal is counted on
//! the collector's own `/metrics`.

pub mod batch;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod otlp_json;
pub mod remote_write;
pub mod remote_write_proto;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::store::{AppendError, AppendStats, Storage};
use batch::WriteBatch;
pub use metrics::IngestMetrics;

/// Why a write was refused: the HTTP status, a counter reason and the message
/// the client sees.
#[derive(Debug)]
pub struct IngestError {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
    /// Samples known to be in the refused write (0 when undecodable).
    pub samples: usize,
}

impl IngestError {
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> IngestError {
        IngestError {
            status: 400,
            reason,
            message: message.into(),
            samples: 0,
        }
    }

    pub fn too_large(message: impl Into<String>) -> IngestError {
        IngestError {
            status: 413,
            reason: "too_large",
            message: message.into(),
            samples: 0,
        }
    }

    /// The answer for push protocols whose clients expect plain text (remote_write, Loki).
    pub fn plain_text_response(&self) -> axum::response::Response {
        use axum::{
            http::{StatusCode, header},
            response::IntoResponse,
        };
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }

    pub fn with_samples(mut self, n: usize) -> IngestError {
        self.samples = n;
        self
    }

    fn from_append(e: AppendError, samples: usize) -> IngestError {
        let (status, reason) = match &e {
            AppendError::SeriesLimit { .. } => (400, "series_limit"),
            AppendError::OutOfOrder { .. } => (400, "out_of_order"),
            AppendError::Invalid(_) => (400, "invalid_series"),
            AppendError::Io(_) => (500, "storage_error"),
        };
        IngestError {
            status,
            reason,
            message: e.to_string(),
            samples,
        }
    }
}

/// A refusal by the log or trace store, as a write path answers it.
pub trait AppendRefusal: std::fmt::Display {
    fn http_status(&self) -> u16;
    /// The `reason` label of the rejected counter.
    fn reason(&self) -> &'static str;
}

/// Runs a log or trace store append on a blocking thread (it waits for an
/// fsync). A refusal, or a task that died, becomes the answer for a write of
/// `samples` items; `signal` ("log", "trace") names the write in the latter.
pub(crate) async fn append_blocking<T, E>(
    signal: &str,
    samples: usize,
    append: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, IngestError>
where
    T: Send + 'static,
    E: AppendRefusal + Send + 'static,
{
    tokio::task::spawn_blocking(append)
        .await
        .map_err(|e| IngestError {
            status: 500,
            reason: "storage_error",
            message: format!("{signal} write task failed: {e}"),
            samples,
        })?
        .map_err(|e| IngestError {
            status: e.http_status(),
            reason: e.reason(),
            message: e.to_string(),
            samples,
        })
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The write path shared by every protocol. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    storage: Arc<dyn Storage>,
    pub metrics: IngestMetrics,
    /// `--max-request-bytes`, applied to compressed and decompressed bodies.
    pub max_request_bytes: usize,
}

impl Ingester {
    pub fn new(
        storage: Arc<dyn Storage>,
        registry: &mut Registry,
        max_request_bytes: usize,
    ) -> Ingester {
        Ingester {
            storage,
            metrics: IngestMetrics::new(registry),
            max_request_bytes,
        }
    }

    /// Appends the batch and its metadata; returns once storage made them
    /// durable. Counts what was accepted; the caller counts refusals.
    pub async fn commit(
        &self,
        protocol: &'static str,
        batch: WriteBatch,
    ) -> Result<AppendStats, IngestError> {
        if batch.is_empty() {
            return Ok(AppendStats::default());
        }
        let n = batch.sample_count();
        let (series, metadata) = batch.into_series();
        let storage = self.storage.clone();
        let result = tokio::task::spawn_blocking(move || {
            let stats = storage
                .append(&series)
                .map_err(|e| IngestError::from_append(e, n))?;
            if !metadata.is_empty() {
                storage
                    .set_metadata(&metadata)
                    .map_err(|e| IngestError::from_append(AppendError::Io(e), 0))?;
            }
            Ok(stats)
        })
        .await
        .unwrap_or_else(|e| {
            Err(IngestError {
                status: 500,
                reason: "storage_error",
                message: format!("write task failed: {e}"),
                samples: n,
            })
        });
        if result.is_ok() {
            self.metrics.received(protocol, n);
        }
        result
    }

    /// Counts a refused request.
    pub fn count_refusal(&self, protocol: &'static str, e: &IngestError) {
        self.metrics.request(protocol, e.reason);
        self.metrics.rejected(protocol, e.reason, e.samples);
        if e.status >= 500 {
            tracing::error!(protocol, error = %e.message, "write failed");
        } else {
            tracing::debug!(protocol, error = %e.message, "write refused");
        }
    }
}
