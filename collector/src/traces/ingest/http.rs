//! `POST /v1/traces`: OTLP/HTTP protobuf or JSON, optionally gzip; OTLP's
//! response and error bodies (`google.rpc.Status` in the request's encoding).

use axum::{
    Router, body::Body, extract::State, http::HeaderMap, response::Response, routing::post,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::{TraceIngester, otlp_json};
use crate::ingest::http::{OtlpSignal, empty_response_json, otlp_export};

const PROTOCOL: &str = "otlp_http";

/// Routes for the main HTTP port and the OTLP/HTTP port alike.
pub fn routes(ingester: TraceIngester) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_traces))
        .with_state(ingester)
}

const OTLP_TRACES: OtlpSignal<ExportTraceServiceRequest, ExportTraceServiceResponse> = OtlpSignal {
    request_name: "ExportTraceServiceRequest",
    decode_json: otlp_json::decode,
    // Every span is stored or the request refused: no partial success.
    response_json: empty_response_json,
};

async fn otlp_traces(State(ing): State<TraceIngester>, headers: HeaderMap, body: Body) -> Response {
    otlp_export(
        &OTLP_TRACES,
        &headers,
        body,
        ing.max_request_bytes,
        async |req| ing.export(PROTOCOL, req).await,
        |e| ing.count_refusal(PROTOCOL, e),
    )
    .await
}
