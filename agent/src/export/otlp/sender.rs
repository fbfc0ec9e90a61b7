//! The gRPC client loop: sends a buffer's oldest batch until the collector
//! acknowledges it, then the next. Order is kept: a batch that fails with a
//! retryable code is retried (exponential backoff with jitter, capped at
//! [`MAX_BACKOFF`]) before anything newer is sent. One loop runs per queue: metric
//! snapshots go to the MetricsService gzip-compressed, log batches to the
//! LogsService zstd-compressed (gzip cannot keep up with 100 MiB/s of lines on one
//! core; a collector that refuses zstd is answered with gzip from then on).
//!
//! The payload is sent exactly as it was encoded into the buffer (a pass-through
//! codec), so a batch is protobuf-encoded once however often it is retried.
//!
//! Retryable codes follow the OTLP specification (Cancelled, DeadlineExceeded,
//! ResourceExhausted, Aborted, OutOfRange, Unavailable, DataLoss), plus Unknown and
//! Internal, which tonic also reports for broken connections. Every other code
//! (InvalidArgument, Unauthenticated, ...) means this batch can never succeed: it
//! is dropped, counted (`reason="rejected"`) and logged.

use std::{
    marker::PhantomData,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
};
use prost::bytes::{Buf, BufMut};
use tokio::sync::Notify;
use tonic::{
    Code, Status,
    codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};
use tracing::{debug, error, info, warn};

use super::{
    buffer::{Buffer, Kind, Pending},
    stats::{DropReason, ExportStats},
};

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one export request may take before it counts as failed (and is retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one queue's OTLP service. The channel connects on first use, so
/// the agent starts (and buffers) while the collector is away.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    kind: Kind,
    encoding: CompressionEncoding,
}

pub fn client(url: &str, kind: Kind) -> Result<Client, String> {
    let endpoint = Channel::from_shared(url.to_string())
        .map_err(|e| format!("--collector {url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(60)));
    let encoding = match kind {
        Kind::Metrics => CompressionEncoding::Gzip,
        Kind::Logs => CompressionEncoding::Zstd,
    };
    Ok(Client {
        channel: endpoint.connect_lazy(),
        kind,
        encoding,
    })
}

impl Client {
    /// Sends one encoded request; returns the records the collector refused
    /// (partial success) and its message.
    pub async fn export(&mut self, payload: Vec<u8>) -> Result<(i64, String), Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .send_compressed(self.encoding)
            .accept_compressed(CompressionEncoding::Gzip);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("collector not ready: {e}")))?;
        let request = tonic::Request::new(payload);
        match self.kind {
            Kind::Metrics => {
                let path = PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                );
                let r = grpc
                    .unary(
                        request,
                        path,
                        RawCodec::<ExportMetricsServiceResponse>::default(),
                    )
                    .await?;
                Ok(r.into_inner()
                    .partial_success
                    .map_or((0, String::new()), |p| {
                        (p.rejected_data_points, p.error_message)
                    }))
            }
            Kind::Logs => {
                let path = PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                );
                let r = grpc
                    .unary(
                        request,
                        path,
                        RawCodec::<ExportLogsServiceResponse>::default(),
                    )
                    .await?;
                Ok(r.into_inner()
                    .partial_success
                    .map_or((0, String::new()), |p| {
                        (p.rejected_log_records, p.error_message)
                    }))
            }
        }
    }

    /// A server that cannot decompress zstd says so with Unimplemented; gzip it is then.
    fn fall_back_from(&mut self, status: &Status) -> bool {
        if self.encoding == CompressionEncoding::Zstd
            && status.code() == Code::Unimplemented
            && status.message().contains("zstd")
        {
            warn!("the collector does not accept zstd; sending logs gzip-compressed");
            self.encoding = CompressionEncoding::Gzip;
            return true;
        }
        false
    }
}

/// Sends already-encoded protobuf bytes and decodes the reply as `R`. Hand-written
/// because tonic's prost codec wants a message to encode, and decoding a buffered
/// batch only to encode it again would double the CPU cost per byte.
struct RawCodec<R>(PhantomData<R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = MessageDecoder<R>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> MessageDecoder<R> {
        MessageDecoder(PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct MessageDecoder<R>(PhantomData<R>);

impl<R: prost::Message + Default> Decoder for MessageDecoder<R> {
    type Item = R;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        let r = R::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("undecodable reply: {e}")))?;
        Ok(Some(r))
    }
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
    mut client: Client,
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
        send_until_done(
            &mut client,
            &buffer,
            &stats,
            pending,
            &mut backoff,
            &mut failing_since,
        )
        .await;
    }
}

async fn send_until_done(
    client: &mut Client,
    buffer: &Arc<Mutex<Buffer>>,
    stats: &ExportStats,
    pending: Pending,
    backoff: &mut Backoff,
    failing_since: &mut Option<Instant>,
) {
    let seq = pending.seq;
    let what = match client.kind {
        Kind::Metrics => "metrics",
        Kind::Logs => "logs",
    };
    loop {
        let started = Instant::now();
        let result = client.export(pending.payload.clone()).await;
        stats.request_took(started.elapsed().as_secs_f64());
        match result {
            Ok((rejected, message)) => {
                if let Some(since) = failing_since.take() {
                    info!(after = ?since.elapsed(), what, "collector reachable again; sending buffered batches");
                }
                backoff.reset();
                if rejected > 0 {
                    let n = rejected as u64;
                    stats.dropped(DropReason::PartiallyRejected, 0, n);
                    warn!(
                        count = n,
                        what, "collector refused part of a batch: {message}"
                    );
                }
                with_buffer(buffer, move |b| b.ack(seq)).await;
                return;
            }
            Err(status) if client.fall_back_from(&status) => {}
            Err(status) if is_retryable(status.code()) => {
                stats.failed_request(status.code());
                let wait = backoff.next_wait();
                if failing_since.is_none() {
                    *failing_since = Some(Instant::now());
                    warn!(code = ?status.code(), what, "export to the collector failed, keeping batches on disk and retrying: {}", status.message());
                } else {
                    debug!(code = ?status.code(), ?wait, what, "export retry failed: {}", status.message());
                }
                tokio::time::sleep(wait).await;
            }
            Err(status) => {
                stats.failed_request(status.code());
                error!(
                    code = ?status.code(),
                    count = pending.points,
                    what,
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
        assert!(
            client("not a url", Kind::Logs)
                .unwrap_err()
                .starts_with("--collector")
        );
    }
}
