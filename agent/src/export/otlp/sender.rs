//! The gRPC client loop: sends the buffer's oldest batch, gzip-compressed, until
//! the collector acknowledges it, then the next. Order is kept: a batch that fails
//! with a retryable code is retried (exponential backoff with jitter, capped at
//! [`MAX_BACKOFF`]) before anything newer is sent.
//!
//! Retryable codes follow the OTLP specification (Cancelled, DeadlineExceeded,
//! ResourceExhausted, Aborted, OutOfRange, Unavailable, DataLoss), plus Unknown and
//! Internal, which tonic also reports for broken connections. Every other code
//! (InvalidArgument, Unauthenticated, ...) means this batch can never succeed: it
//! is dropped, counted (`reason="rejected"`) and logged.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
};
use prost::Message;
use tokio::sync::Notify;
use tonic::{Code, codec::CompressionEncoding, transport::Channel};
use tracing::{debug, error, info, warn};

use super::{
    buffer::{Buffer, Pending},
    stats::{DropReason, ExportStats},
};

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one export request may take before it counts as failed (and is retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to `url` that connects on first use, so the agent starts (and buffers)
/// while the collector is away.
pub fn client(url: &str) -> Result<MetricsServiceClient<Channel>, String> {
    let endpoint = Channel::from_shared(url.to_string())
        .map_err(|e| format!("--collector {url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(60)));
    Ok(MetricsServiceClient::new(endpoint.connect_lazy())
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip))
}

pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unknown
            | Code::Internal
    )
}

/// Exponential backoff with "equal jitter": each wait is between half and all of
/// the current step, so agents that lost the collector together do not return together.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration) -> Backoff {
        Backoff {
            initial,
            step: initial,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let half = self.step / 2;
        let jitter = half.mul_f64(fastrand::f64());
        self.step = (self.step * 2).min(MAX_BACKOFF);
        half + jitter
    }

    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// Sends forever. `wake` is notified whenever a batch is added to the buffer.
pub async fn run(
    mut client: MetricsServiceClient<Channel>,
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    stats: ExportStats,
    initial_backoff: Duration,
) {
    let mut backoff = Backoff::new(initial_backoff);
    // Failures are logged once per outage (then at debug), and the recovery once.
    let mut failing_since: Option<Instant> = None;
    loop {
        let Some(pending) = with_buffer(&buffer, |b| b.next()).await else {
            wake.notified().await;
            continue;
        };
        let request = match ExportMetricsServiceRequest::decode(pending.payload.as_slice()) {
            Ok(r) => r,
            Err(e) => {
                // The CRC matched, so we wrote it this way; nothing to retry.
                error!(
                    seq = pending.seq,
                    "buffered batch does not decode ({e}); dropped"
                );
                with_buffer(&buffer, move |b| b.reject(pending.seq, DropReason::Corrupt)).await;
                continue;
            }
        };
        send_until_done(
            &mut client,
            &buffer,
            &stats,
            pending,
            request,
            &mut backoff,
            &mut failing_since,
        )
        .await;
    }
}

async fn send_until_done(
    client: &mut MetricsServiceClient<Channel>,
    buffer: &Arc<Mutex<Buffer>>,
    stats: &ExportStats,
    pending: Pending,
    request: ExportMetricsServiceRequest,
    backoff: &mut Backoff,
    failing_since: &mut Option<Instant>,
) {
    let seq = pending.seq;
    loop {
        let started = Instant::now();
        let result = client.export(request.clone()).await;
        stats.request_took(started.elapsed().as_secs_f64());
        match result {
            Ok(response) => {
                if let Some(since) = failing_since.take() {
                    info!(after = ?since.elapsed(), "collector reachable again; sending buffered batches");
                }
                backoff.reset();
                if let Some(partial) = response.into_inner().partial_success
                    && partial.rejected_data_points > 0
                {
                    let n = partial.rejected_data_points as u64;
                    stats.dropped(DropReason::PartiallyRejected, 0, n);
                    warn!(
                        points = n,
                        "collector refused part of a batch: {}", partial.error_message
                    );
                }
                with_buffer(buffer, move |b| b.ack(seq)).await;
                return;
            }
            Err(status) if is_retryable(status.code()) => {
                stats.failed_request(status.code());
                let wait = backoff.next_wait();
                if failing_since.is_none() {
                    *failing_since = Some(Instant::now());
                    warn!(code = ?status.code(), "export to the collector failed, keeping batches on disk and retrying: {}", status.message());
                } else {
                    debug!(code = ?status.code(), ?wait, "export retry failed: {}", status.message());
                }
                tokio::time::sleep(wait).await;
            }
            Err(status) => {
                stats.failed_request(status.code());
                error!(
                    code = ?status.code(),
                    points = pending.points,
                    "collector refused a batch for good; dropped: {}",
                    status.message()
                );
                with_buffer(buffer, move |b| b.reject(seq, DropReason::Rejected)).await;
                return;
            }
        }
    }
}

/// Runs `f` on the buffer off the async workers: it reads, writes and deletes files.
async fn with_buffer<T: Send + 'static>(
    buffer: &Arc<Mutex<Buffer>>,
    f: impl FnOnce(&mut Buffer) -> T + Send + 'static,
) -> T {
    let buffer = buffer.clone();
    tokio::task::spawn_blocking(move || {
        let mut b = buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut b)
    })
    .await
    .expect("buffer task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200));
        let w = b.next_wait();
        assert!(
            w >= Duration::from_millis(100) && w <= Duration::from_millis(200),
            "{w:?}"
        );
        let w = b.next_wait();
        assert!(
            w >= Duration::from_millis(200) && w <= Duration::from_millis(400),
            "{w:?}"
        );
        for _ in 0..20 {
            assert!(b.next_wait() <= MAX_BACKOFF);
        }
        assert!(b.next_wait() >= MAX_BACKOFF / 2);
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(200));
    }

    #[test]
    fn retry_classification() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
        ] {
            assert!(is_retryable(code), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
        ] {
            assert!(!is_retryable(code), "{code:?}");
        }
    }

    #[test]
    fn bad_urls_name_the_flag() {
        assert!(client("not a url").unwrap_err().starts_with("--collector"));
    }
}
