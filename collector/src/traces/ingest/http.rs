//! `POST /v1/traces`: OTLP/HTTP protobuf or JSON, optionally gzip; OTLP's
//! response and error bodies (`google.rpc.Status` in the request's encoding).

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{TraceIngester, otlp_json};
use crate::ingest::{
    IngestError,
    http::{Encoding, content_type, otlp_encoding, read_decoded_body, status_response},
};

const PROTOCOL: &str = "otlp_http";

/// Routes for the main HTTP port and the OTLP/HTTP port alike.
pub fn routes(ingester: TraceIngester) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_traces))
        .with_state(ingester)
}

async fn otlp_traces(State(ing): State<TraceIngester>, headers: HeaderMap, body: Body) -> Response {
    let enc = match otlp_encoding(&headers) {
        Ok(enc) => enc,
        Err(e) => {
            ing.count_refusal(PROTOCOL, &e);
            return status_response(Encoding::Protobuf, &e);
        }
    };
    let result = async {
        let raw = read_decoded_body(&headers, body, ing.max_request_bytes).await?;
        let req = match enc {
            Encoding::Protobuf => {
                ExportTraceServiceRequest::decode(raw.as_slice()).map_err(|e| {
                    IngestError::bad_request(
                        "malformed",
                        format!("protobuf ExportTraceServiceRequest: {e}"),
                    )
                })?
            }
            Encoding::Json => {
                otlp_json::decode(&raw).map_err(|e| IngestError::bad_request("malformed", e))?
            }
        };
        ing.export(PROTOCOL, req).await
    }
    .await;
    match result {
        Ok(resp) => {
            let body = match enc {
                Encoding::Protobuf => resp.encode_to_vec(),
                Encoding::Json => b"{}".to_vec(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type(enc))],
                body,
            )
                .into_response()
        }
        Err(e) => {
            ing.count_refusal(PROTOCOL, &e);
            status_response(enc, &e)
        }
    }
}
