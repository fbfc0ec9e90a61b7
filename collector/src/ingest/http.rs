//! HTTP write endpoints: `POST /api/v1/write` (remote_write 1.0) and
//! `POST /v1/metrics` (OTLP/HTTP, protobuf or JSON, optionally gzip).

use std::io::Read;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use super::{IngestError, Ingester, otlp, otlp_json, remote_write};

/// Routes for the main HTTP port: remote_write and OTLP/HTTP.
pub fn routes(ingester: Ingester) -> Router {
    Router::new()
        .route("/api/v1/write", post(remote_write_handler))
        .route("/v1/metrics", post(otlp_handler))
        .with_state(ingester)
}

/// Routes for the OTLP/HTTP port.
pub fn otlp_routes(ingester: Ingester) -> Router {
    Router::new()
        .route("/v1/metrics", post(otlp_handler))
        .with_state(ingester)
}

const PROTOCOL_RW: &str = "remote_write";
const PROTOCOL_OTLP: &str = "otlp_http";

/// Reads the body, refusing more than `max` bytes as sent (413). Shared with
/// the log write paths.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, IngestError> {
    let too_large = || {
        IngestError::too_large(format!(
            "request body is larger than --max-request-bytes ({max} bytes)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())
}

pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn remote_write_handler(
    State(ing): State<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match remote_write(&ing, &headers, body).await {
        Ok(()) => {
            ing.metrics.request(PROTOCOL_RW, "ok");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            ing.count_refusal(PROTOCOL_RW, &e);
            e.plain_text_response()
        }
    }
}

async fn remote_write(ing: &Ingester, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    let encoding = header_str(headers, header::CONTENT_ENCODING);
    if !(encoding.is_empty() || encoding.eq_ignore_ascii_case("snappy")) {
        return Err(IngestError {
            status: 415,
            reason: "unsupported",
            message: format!(
                "unsupported Content-Encoding {encoding:?}: remote_write bodies are snappy"
            ),
            samples: 0,
        });
    }
    let ctype = header_str(headers, header::CONTENT_TYPE);
    if ctype.contains("io.prometheus.write.v2") {
        return Err(IngestError {
            status: 415,
            reason: "unsupported",
            message: "remote_write 2.0 is not supported; send prometheus.WriteRequest (1.0)".into(),
            samples: 0,
        });
    }
    let body = read_body(headers, body, ing.max_request_bytes).await?;
    let decoded = remote_write::decode(&body, ing.max_request_bytes)?;
    let histograms = decoded.histograms_rejected;
    ing.commit(PROTOCOL_RW, decoded.batch).await?;
    // Counted only once the float samples beside them were accepted.
    ing.metrics
        .exemplars_dropped(PROTOCOL_RW, decoded.exemplars_dropped);
    ing.metrics
        .rejected(PROTOCOL_RW, "native_histogram", histograms);
    Ok(())
}

/// An OTLP/HTTP body's encoding, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

/// The body's OTLP encoding from Content-Type; 415 for anything else.
pub(crate) fn otlp_encoding(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    let ctype = header_str(headers, header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ctype.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(IngestError {
            status: 415,
            reason: "unsupported",
            message: format!(
                "unsupported Content-Type {other:?}: send application/x-protobuf or application/json"
            ),
            samples: 0,
        }),
    }
}

/// How one signal's OTLP/HTTP endpoint reads requests and writes answers.
pub(crate) struct OtlpSignal<Req, Resp> {
    /// The protobuf message name, for decode errors.
    pub request_name: &'static str,
    pub decode_json: fn(&[u8]) -> Result<Req, String>,
    /// The success body for a JSON request.
    pub response_json: fn(&Resp) -> Vec<u8>,
}

/// An OTLP/HTTP export (`/v1/metrics`, `/v1/logs`, `/v1/traces`): the
/// encoding from Content-Type, the body read within `max` bytes and
/// decompressed, decoded, and handed to `export`; the answer is the response
/// in the request's encoding, or a `google.rpc.Status` for a refusal, which
/// `refused` counts.
pub(crate) async fn otlp_export<Req, Resp, Fut>(
    signal: &OtlpSignal<Req, Resp>,
    headers: &HeaderMap,
    body: Body,
    max: usize,
    export: impl FnOnce(Req) -> Fut,
    refused: impl Fn(&IngestError),
) -> Response
where
    Req: Message + Default,
    Resp: Message,
    Fut: Future<Output = Result<Resp, IngestError>>,
{
    let enc = match otlp_encoding(headers) {
        Ok(enc) => enc,
        Err(e) => {
            refused(&e);
            return status_response(Encoding::Protobuf, &e);
        }
    };
    let result = async {
        let raw = read_decoded_body(headers, body, max).await?;
        let req = match enc {
            Encoding::Protobuf => Req::decode(raw.as_slice()).map_err(|e| {
                IngestError::bad_request(
                    "malformed",
                    format!("protobuf {}: {e}", signal.request_name),
                )
            })?,
            Encoding::Json => {
                (signal.decode_json)(&raw).map_err(|e| IngestError::bad_request("malformed", e))?
            }
        };
        export(req).await
    }
    .await;
    match result {
        Ok(resp) => {
            let body = match enc {
                Encoding::Protobuf => resp.encode_to_vec(),
                Encoding::Json => (signal.response_json)(&resp),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type(enc))],
                body,
            )
                .into_response()
        }
        Err(e) => {
            refused(&e);
            status_response(enc, &e)
        }
    }
}

const OTLP_METRICS: OtlpSignal<ExportMetricsServiceRequest, ExportMetricsServiceResponse> =
    OtlpSignal {
        request_name: "ExportMetricsServiceRequest",
        decode_json: otlp_json::decode,
        response_json: metrics_response_json,
    };

async fn otlp_handler(State(ing): State<Ingester>, headers: HeaderMap, body: Body) -> Response {
    let export = async |req| {
        let resp = export(&ing, PROTOCOL_OTLP, req).await?;
        ing.metrics.request(PROTOCOL_OTLP, "ok");
        Ok(resp)
    };
    otlp_export(
        &OTLP_METRICS,
        &headers,
        body,
        ing.max_request_bytes,
        export,
        |e| ing.count_refusal(PROTOCOL_OTLP, e),
    )
    .await
}

pub(crate) fn content_type(enc: Encoding) -> &'static str {
    match enc {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    }
}

/// Maps, commits and builds the OTLP response; shared with gRPC.
pub(super) async fn export(
    ing: &Ingester,
    protocol: &'static str,
    req: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, IngestError> {
    let mapped = otlp::map_request(req);
    let rejected_points = mapped.rejected_points();
    ing.commit(protocol, mapped.batch).await?;
    for (reason, n) in &mapped.rejected {
        ing.metrics.rejected(protocol, reason, *n);
    }
    ing.metrics.exemplars_dropped(protocol, mapped.exemplars);
    let partial_success = (rejected_points > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected_points as i64,
        error_message: mapped.first_error.unwrap_or_default(),
    });
    Ok(ExportMetricsServiceResponse { partial_success })
}

/// Reads a body and undoes its `Content-Encoding` (gzip or none); the body
/// as sent and as decompressed are both bounded by `max` (`--max-request-bytes`).
/// Shared with the log write paths.
pub(crate) async fn read_decoded_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Vec<u8>, IngestError> {
    let encoding = header_str(headers, header::CONTENT_ENCODING).to_ascii_lowercase();
    // Refused before reading: an unsupported body is not buffered for nothing.
    if !matches!(encoding.as_str(), "" | "identity" | "gzip") {
        return Err(IngestError {
            status: 415,
            reason: "unsupported",
            message: format!("unsupported Content-Encoding {encoding:?} (gzip or none)"),
            samples: 0,
        });
    }
    let raw = read_body(headers, body, max).await?;
    if encoding == "gzip" {
        gunzip(&raw, max)
    } else {
        Ok(raw.to_vec())
    }
}

/// Undoes snappy block compression (the framing of Loki's protobuf push).
/// The decompressed size is checked against `max` from snappy's length
/// header before anything is allocated.
pub(crate) fn unsnappy(data: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    let len = snap::raw::decompress_len(data).map_err(|e| {
        IngestError::bad_request(
            "malformed",
            format!("snappy: {e} (protobuf bodies are snappy block-compressed)"),
        )
    })?;
    if len > max {
        return Err(IngestError::too_large(format!(
            "decompressed body is {len} bytes, more than --max-request-bytes ({max})"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| IngestError::bad_request("malformed", format!("snappy: {e}")))
}

/// Decompresses at most `max` bytes; more is a 413.
pub(crate) fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::bad_request("malformed", format!("gzip: {e}")))?;
    if out.len() > max {
        return Err(IngestError::too_large(format!(
            "decompressed body is larger than --max-request-bytes ({max} bytes)"
        )));
    }
    Ok(out)
}

/// OTLP/JSON's response: int64 as a decimal string, as the protobuf JSON mapping says.
fn metrics_response_json(resp: &ExportMetricsServiceResponse) -> Vec<u8> {
    match &resp.partial_success {
        None => b"{}".to_vec(),
        Some(p) => serde_json::json!({
            "partialSuccess": {"rejectedDataPoints": p.rejected_data_points.to_string(), "errorMessage": p.error_message}
        })
        .to_string()
        .into_bytes(),
    }
}

/// The JSON answer of a signal whose writes are stored whole or refused:
/// no partial success to report.
pub(crate) fn empty_response_json<Resp>(_: &Resp) -> Vec<u8> {
    b"{}".to_vec()
}

/// `google.rpc.Status`, the body OTLP/HTTP servers answer errors with.
/// Hand-written: two fields of a stable message, not worth a dependency.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC code for a refusal: RESOURCE_EXHAUSTED (8) for limits (too many
/// series or streams, too large), INTERNAL (13) for server faults,
/// INVALID_ARGUMENT (3) otherwise.
pub(crate) fn grpc_code(e: &IngestError) -> i32 {
    match (e.status, e.reason) {
        (_, "series_limit" | "stream_limit") | (413 | 429, _) => 8,
        (s, _) if s >= 500 => 13,
        _ => 3,
    }
}

/// An OTLP/HTTP error answer: `google.rpc.Status` in the request's encoding
/// with the refusal's HTTP status. Shared with `/v1/logs`.
pub(crate) fn status_response(enc: Encoding, e: &IngestError) -> Response {
    let code = grpc_code(e);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match enc {
        Encoding::Protobuf => RpcStatus {
            code,
            message: e.message.clone(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": e.message})
            .to_string()
            .into_bytes(),
    };
    (status, [(header::CONTENT_TYPE, content_type(enc))], body).into_response()
}
