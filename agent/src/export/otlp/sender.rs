//! The gRPC client loop: sends a buffer's batches oldest first, each until the
//! collector acknowledges it. A batch that fails with a retryable code is retried
//! (exponential backoff with jitter, capped at [`MAX_BACKOFF`]) and stays on disk
//! meanwhile. One loop runs per queue (spans, to the TraceService, as logs are
//! sent but gzip-compressed): metric snapshots go to the MetricsService
//! gzip-compressed, one at a time (order kept: the TSDB wants samples in order);
//! log batches go to the LogsService zstd-compressed (gzip cannot keep up with
//! 100 MiB/s of lines on one core; a collector that refuses zstd is answered with
//! gzip from then on) with up to [`LOGS_IN_FLIGHT`] requests at once on the one
//! HTTP/2 connection, each acked on its own: one request at a time waits a round
//! trip plus the collector's fsync per batch, which capped the log path at a
//! third of a core. The collector's store takes entries in any order and its
//! concurrent appends share an fsync, so more requests in flight is more throughput.
//!
//! The payload is sent exactly as it was encoded into the buffer (a pass-through
//! codec), so a batch is protobuf-encoded once however often it is retried.
//!
//! Retryable codes follow the OTLP specification (Cancelled, DeadlineExceeded,
//! ResourceExhausted, Aborted, OutOfRange, Unavailable, DataLoss), plus Unknown and
//! Internal, which tonic also reports for broken connections. Unauthenticated and
//! PermissionDenied are not about the batch but about the agent's credentials (a wrong
//! `--collector-token-file`, a client certificate the collector does not accept): every
//! batch would fail alike, so nothing is dropped; the batches stay on disk and are retried
//! at the longest backoff until the operator fixes the configuration (logged once, as an
//! error, with the collector's reason). Every other code (InvalidArgument, ...) means this
//! batch can never succeed: it is dropped, counted (`reason="rejected"`) and logged.
//!
//! Connections: https:// is TLS with the CA, client certificate and bearer token of the
//! configuration ([`CollectorConn`]); a failed connection is logged with its cause from the
//! error chain (an untrusted certificate, a refused handshake), not tonic's bare
//! "transport error".

use std::{
    marker::PhantomData,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::{
    Message,
    bytes::{Buf, BufMut, Bytes},
};
use tokio::{sync::Notify, task::JoinSet};
use tonic::{
    Code, Status,
    codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::{HeaderValue, uri::PathAndQuery},
    metadata::MetadataValue,
    transport::Channel,
};
use tracing::{debug, error, info, warn};

use crate::config::CollectorConn;

use super::{
    buffer::{Buffer, Kind, Pending},
    raw_grpc,
    stats::{DropReason, ExportStats},
};

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one export request may take before it counts as failed (and is retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Log export requests in flight at once (metrics: one).
pub const LOGS_IN_FLIGHT: usize = 4;
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A client for one queue's OTLP service. The channel connects on first use, so
/// the agent starts (and buffers) while the collector is away. Clones share the
/// connection and the zstd fallback.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    kind: Kind,
    /// Set once the collector has said it cannot decompress zstd.
    zstd_refused: Arc<AtomicBool>,
    /// `Bearer <token>` for the `authorization` header, when configured.
    authorization: Option<HeaderValue>,
    /// https://: failures get the TLS hints of [`describe`].
    tls: bool,
}

/// The one place every queue's connection is built: TLS and token from `collector`.
pub fn client(collector: &CollectorConn, kind: Kind) -> Result<Client, String> {
    let url = &collector.url;
    let endpoint = collector
        .endpoint()
        .map_err(|e| format!("--collector {url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(60)));
    let authorization = match &collector.authorization {
        Some(a) => {
            let mut v =
                HeaderValue::from_str(a).map_err(|e| format!("--collector-token-file: {e}"))?;
            // Kept out of HPACK's dynamic table and debug output.
            v.set_sensitive(true);
            Some(v)
        }
        None => None,
    };
    Ok(Client {
        channel: endpoint.connect_lazy(),
        kind,
        zstd_refused: Arc::new(AtomicBool::new(false)),
        authorization,
        tls: collector.tls.is_some(),
    })
}

impl Client {
    fn encoding(&self) -> CompressionEncoding {
        match self.kind {
            Kind::Logs if !self.zstd_refused.load(Ordering::Relaxed) => CompressionEncoding::Zstd,
            _ => CompressionEncoding::Gzip,
        }
    }

    /// Whether batches go out compressed by us ([`raw_grpc`]): logs, until the
    /// collector refuses zstd.
    fn precompresses(&self) -> bool {
        self.kind == Kind::Logs && !self.zstd_refused.load(Ordering::Relaxed)
    }

    /// Sends a log batch framed by [`raw_grpc::zstd_frame`].
    async fn export_zstd(&self, frame: Bytes) -> Result<(i64, String), Status> {
        let reply =
            raw_grpc::unary(&self.channel, LOGS_PATH, frame, self.authorization.as_ref()).await?;
        let r = ExportLogsServiceResponse::decode(reply)
            .map_err(|e| Status::internal(format!("undecodable reply: {e}")))?;
        Ok(r.partial_success.map_or((0, String::new()), |p| {
            (p.rejected_log_records, p.error_message)
        }))
    }

    /// How many requests this queue keeps in flight.
    pub fn max_in_flight(&self) -> usize {
        match self.kind {
            Kind::Metrics => 1,
            // Spans, like log records, may arrive in any order.
            Kind::Logs | Kind::Traces => LOGS_IN_FLIGHT,
        }
    }

    /// Sends one encoded request; returns the records the collector refused
    /// (partial success) and its message.
    pub async fn export(&self, payload: Vec<u8>) -> Result<(i64, String), Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .send_compressed(self.encoding())
            .accept_compressed(CompressionEncoding::Gzip);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("collector not ready: {e}")))?;
        let mut request = tonic::Request::new(payload);
        if let Some(a) = &self.authorization {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(a.as_bytes())
                    .map_err(|e| Status::internal(format!("the token as gRPC metadata: {e}")))?,
            );
        }
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
                let path = PathAndQuery::from_static(LOGS_PATH);
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
            Kind::Traces => {
                let path = PathAndQuery::from_static(TRACES_PATH);
                let r = grpc
                    .unary(
                        request,
                        path,
                        RawCodec::<ExportTraceServiceResponse>::default(),
                    )
                    .await?;
                Ok(r.into_inner()
                    .partial_success
                    .map_or((0, String::new()), |p| (p.rejected_spans, p.error_message)))
            }
        }
    }

    /// A server that cannot decompress zstd says so with Unimplemented; gzip it is then.
    fn fall_back_from(&self, status: &Status) -> bool {
        if self.kind == Kind::Logs
            && status.code() == Code::Unimplemented
            && status.message().contains("zstd")
        {
            // Concurrent requests may all be refused; say it once.
            if !self.zstd_refused.swap(true, Ordering::Relaxed) {
                warn!("the collector does not accept zstd; sending logs gzip-compressed");
            }
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

/// The collector refused the agent's credentials (token, client certificate): not the
/// batch's fault, so it is kept and retried, never dropped.
pub fn is_credentials_refused(code: Code) -> bool {
    matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}

/// The status's message with the causes behind it (tonic says "transport error" and keeps
/// "invalid peer certificate: UnknownIssuer" in the chain), plus what to check; `tls`: the
/// connection is https://.
pub fn describe(status: &Status, tls: bool) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = if text.is_empty() {
                s_text
            } else {
                format!("{text}: {s_text}")
            };
        }
        source = s.source();
    }
    let hint = if status.code() == Code::Unauthenticated {
        Some(
            "the collector refused the token: check --collector-token-file against the collector's --auth-token-file",
        )
    } else if status.code() == Code::PermissionDenied {
        Some("the collector refused this agent's credentials")
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Some("the collector's certificate is not trusted: check --collector-ca-file")
    } else if text.contains("CertificateRequired") || text.contains("received fatal alert") {
        Some(
            "the collector refused the TLS handshake: it may want a client certificate it trusts (--collector-cert-file, --collector-key-file)",
        )
    } else if tls && text.contains("connection closed") {
        // TLS 1.3 finishes the client's side of the handshake before the server checks
        // the client certificate; its refusal reaches us as a closed connection.
        Some(
            "the collector closed the connection; with mutual TLS this is how a refused client certificate shows: check that --collector-cert-file is signed by the collector's --tls-client-ca-file (the collector logs and counts the reason)",
        )
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h} ({text})"),
        None => text,
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
/// One per batch being sent: a new batch starts from the initial step.
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration) -> Backoff {
        Backoff { step: initial }
    }

    pub fn next_wait(&mut self) -> Duration {
        let half = self.step / 2;
        let jitter = half.mul_f64(fastrand::f64());
        self.step = (self.step * 2).min(MAX_BACKOFF);
        half + jitter
    }
}

/// Failures are logged once per outage (then at debug), and the recovery once;
/// shared by the requests in flight.
type FailingSince = Arc<Mutex<Option<Instant>>>;

/// Sends forever, keeping up to [`Client::max_in_flight`] batches in flight.
/// `wake` is notified whenever a batch is added to the buffer.
pub async fn run(
    client: Client,
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    stats: ExportStats,
    initial_backoff: Duration,
) {
    let max = client.max_in_flight();
    let failing: FailingSince = Arc::default();
    let mut sending = JoinSet::new();
    loop {
        while sending.len() < max {
            let Some(pending) = with_buffer(&buffer, |b| b.next()).await else {
                break;
            };
            sending.spawn(send_until_done(
                client.clone(),
                buffer.clone(),
                stats.clone(),
                pending,
                Backoff::new(initial_backoff),
                failing.clone(),
            ));
        }
        if sending.is_empty() {
            wake.notified().await;
            continue;
        }
        let room = sending.len() < max;
        tokio::select! {
            done = sending.join_next() => {
                if let Some(Err(e)) = done {
                    // Its batch stays on disk and is sent after a restart.
                    error!(error = %e, "an export request task failed");
                }
            }
            () = wake.notified(), if room => {}
        }
    }
}

async fn send_until_done(
    client: Client,
    buffer: Arc<Mutex<Buffer>>,
    stats: ExportStats,
    pending: Pending,
    mut backoff: Backoff,
    failing: FailingSince,
) {
    let Pending {
        seq,
        points,
        mut payload,
    } = pending;
    // Compressed once, on first use; retries resend the same bytes.
    let mut frame: Option<Bytes> = None;
    let what = match client.kind {
        Kind::Metrics => "metrics",
        Kind::Logs => "logs",
        Kind::Traces => "traces",
    };
    let failing_since = || failing.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if frame.is_none() && client.precompresses() {
            let (back, framed) = tokio::task::spawn_blocking(move || {
                let f = raw_grpc::zstd_frame(&payload);
                (payload, f)
            })
            .await
            .expect("compression task panicked");
            payload = back;
            match framed {
                Ok(f) => frame = Some(f),
                // Not expected; tonic's own compression still works.
                Err(e) => warn!(
                    what,
                    "zstd-compressing a batch: {e}; letting tonic compress it"
                ),
            }
        }
        let started = Instant::now();
        let result = match frame.clone().filter(|_| client.precompresses()) {
            Some(f) => client.export_zstd(f).await,
            None => client.export(payload.clone()).await,
        };
        stats.request_took(started.elapsed().as_secs_f64());
        match result {
            Ok((rejected, message)) => {
                if let Some(since) = failing_since().take() {
                    info!(after = ?since.elapsed(), what, "collector reachable again; sending buffered batches");
                }
                if rejected > 0 {
                    let n = rejected as u64;
                    stats.dropped(DropReason::PartiallyRejected, 0, n);
                    warn!(
                        count = n,
                        what, "collector refused part of a batch: {message}"
                    );
                }
                with_buffer(&buffer, move |b| b.ack(seq)).await;
                return;
            }
            Err(status) if client.fall_back_from(&status) => {}
            Err(status) if is_retryable(status.code()) || is_credentials_refused(status.code()) => {
                stats.failed_request(status.code());
                let refused = is_credentials_refused(status.code());
                // A configuration error does not heal by itself: retry at the longest step.
                let wait = if refused {
                    MAX_BACKOFF
                } else {
                    backoff.next_wait()
                };
                let first = {
                    let mut f = failing_since();
                    let first = f.is_none();
                    f.get_or_insert_with(Instant::now);
                    first
                };
                let why = describe(&status, client.tls);
                if first && refused {
                    error!(code = ?status.code(), what, "export to the collector refused (unauthenticated), keeping batches on disk and retrying every {MAX_BACKOFF:?}: {why}");
                } else if first {
                    warn!(code = ?status.code(), what, "export to the collector failed, keeping batches on disk and retrying: {why}");
                } else {
                    debug!(code = ?status.code(), ?wait, what, "export retry failed: {why}");
                }
                tokio::time::sleep(wait).await;
            }
            Err(status) => {
                stats.failed_request(status.code());
                error!(
                    code = ?status.code(),
                    count = points,
                    what,
                    "collector refused a batch for good; dropped: {}",
                    describe(&status, client.tls)
                );
                with_buffer(&buffer, move |b| b.reject(seq, DropReason::Rejected)).await;
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
    fn backoff_doubles_with_jitter_up_to_the_cap() {
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
        // Refused credentials keep the batches (retried), unlike a refused batch.
        assert!(is_credentials_refused(Code::Unauthenticated));
        assert!(is_credentials_refused(Code::PermissionDenied));
        assert!(!is_credentials_refused(Code::InvalidArgument));
    }

    #[test]
    fn descriptions_say_why() {
        let s =
            Status::unauthenticated("the bearer token is not the collector's --auth-token-file");
        let d = describe(&s, true);
        assert!(
            d.contains("--collector-token-file") && d.contains("bearer token"),
            "{d}"
        );
        let s = Status::unavailable("transport error: invalid peer certificate: UnknownIssuer");
        assert!(describe(&s, true).contains("not trusted"));
        let s = Status::unavailable("transport error: connection closed");
        assert!(describe(&s, true).contains("--collector-cert-file"));
        assert!(!describe(&s, false).contains("--collector-cert-file"));
    }

    #[test]
    fn bad_urls_name_the_flag() {
        let conn = CollectorConn {
            url: "not a url".into(),
            tls: None,
            authorization: None,
        };
        assert!(
            client(&conn, Kind::Logs)
                .unwrap_err()
                .starts_with("--collector")
        );
    }
}
