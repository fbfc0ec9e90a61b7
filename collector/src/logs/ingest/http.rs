//! HTTP log writes: `POST /loki/api/v1/push` (Loki JSON, optionally gzip, or
//! snappy protobuf; 204 on success as Loki) and `POST /v1/logs` (OTLP/HTTP
//! protobuf or JSON, optionally gzip; OTLP's response and error bodies).

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};

use super::{LogIngester, loki_json, loki_proto, otlp, otlp_json};
use crate::ingest::{
    IngestError,
    http::{
        OtlpSignal, empty_response_json, header_str, otlp_export, read_body, read_decoded_body,
        unsnappy,
    },
};

const PROTOCOL_LOKI: &str = "loki_push";
const PROTOCOL_OTLP: &str = "otlp_http";

/// Routes for the main HTTP port: Loki push and OTLP/HTTP logs.
pub fn routes(ingester: LogIngester) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(loki_push))
        .route("/v1/logs", post(otlp_logs))
        .with_state(ingester)
}

/// Routes for the OTLP/HTTP port.
pub fn otlp_routes(ingester: LogIngester) -> Router {
    Router::new()
        .route("/v1/logs", post(otlp_logs))
        .with_state(ingester)
}

async fn loki_push(State(ing): State<LogIngester>, headers: HeaderMap, body: Body) -> Response {
    match push(&ing, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            ing.count_refusal(PROTOCOL_LOKI, &e);
            e.plain_text_response()
        }
    }
}

async fn push(ing: &LogIngester, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    let max = ing.max_request_bytes;
    let ctype = header_str(headers, header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    // Loki reads every non-JSON body as snappy protobuf; only an explicit
    // other type is refused here, so the mistake is named.
    let json = match ctype.as_str() {
        "application/json" => true,
        "" | "application/x-protobuf" | "application/protobuf" => false,
        other => {
            return Err(IngestError {
                status: 415,
                reason: "unsupported",
                message: format!(
                    "unsupported Content-Type {other:?}: send application/json or application/x-protobuf (snappy)"
                ),
                samples: 0,
            });
        }
    };
    // Some clients label the snappy framing as a Content-Encoding; Loki accepts that too.
    let snappy_label = header_str(headers, header::CONTENT_ENCODING).eq_ignore_ascii_case("snappy");
    let raw = if snappy_label && !json {
        read_body(headers, body, max).await?.to_vec()
    } else {
        read_decoded_body(headers, body, max).await?
    };
    let hint = |mut e: IngestError| {
        if ctype.is_empty() && e.status == 400 {
            e.message.push_str(
                " (a body without Content-Type is read as snappy protobuf; send Content-Type: application/json for JSON)",
            );
        }
        e
    };
    let streams = if json {
        loki_json::decode(&raw)
    } else {
        let raw = unsnappy(&raw, max).map_err(hint)?;
        loki_proto::decode(&raw)
    }
    .map_err(|e| hint(IngestError::bad_request("malformed", e)))?;
    ing.commit(PROTOCOL_LOKI, streams).await?;
    Ok(())
}

const OTLP_LOGS: OtlpSignal<ExportLogsServiceRequest, ExportLogsServiceResponse> = OtlpSignal {
    request_name: "ExportLogsServiceRequest",
    decode_json: otlp_json::decode,
    // Every record is stored or the request refused: no partial success.
    response_json: empty_response_json,
};

async fn otlp_logs(State(ing): State<LogIngester>, headers: HeaderMap, body: Body) -> Response {
    otlp_export(
        &OTLP_LOGS,
        &headers,
        body,
        ing.max_request_bytes,
        async |req| export(&ing, PROTOCOL_OTLP, req).await,
        |e| ing.count_refusal(PROTOCOL_OTLP, e),
    )
    .await
}

/// Maps and commits an OTLP logs request; shared with gRPC.
pub(super) async fn export(
    ing: &LogIngester,
    protocol: &'static str,
    req: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse, IngestError> {
    let now = crate::logs::api::params::now_ns();
    let streams = otlp::map_request(req, now)
        .map_err(|e| IngestError::bad_request("invalid_timestamp", e))?;
    ing.commit(protocol, streams).await?;
    Ok(ExportLogsServiceResponse {
        partial_success: None,
    })
}
