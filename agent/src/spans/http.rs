//! OTLP/HTTP `POST /v1/traces` (port 4318 by default): protobuf, plain or
//! gzip. Answers as OTLP/HTTP says: 200 with an `ExportTraceServiceResponse`;
//! errors with a `google.rpc.Status` body, 400 for a malformed request (do not
//! retry), 503 when the queue is full (retry), 413 and 415 for a body too large
//! or of another type. JSON is refused with 415 for now: the SDKs' HTTP
//! exporters send protobuf.

use std::{io::Read, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, State, connect_info::Connected},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
    serve::IncomingStream,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;

use super::{
    MAX_REQUEST_BYTES,
    intake::{Intake, Refusal},
};

const PROTOBUF: &str = "application/x-protobuf";

/// Both ends of the connection: the peer to find the sender, ours to find its socket.
#[derive(Clone, Copy, Debug)]
struct Ends {
    peer: SocketAddr,
    ours: Option<SocketAddr>,
}

impl Connected<IncomingStream<'_, TcpListener>> for Ends {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Ends {
        Ends {
            peer: *stream.remote_addr(),
            ours: stream.io().local_addr().ok(),
        }
    }
}

/// `google.rpc.Status`, OTLP/HTTP's error body (only the fields we fill).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

pub async fn serve(listener: TcpListener, intake: Arc<Intake>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(intake);
    axum::serve(listener, app.into_make_service_with_connect_info::<Ends>()).await?;
    Ok(())
}

async fn traces(
    State(intake): State<Arc<Intake>>,
    ConnectInfo(ends): ConnectInfo<Ends>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req = match decode(&headers, body).await {
        Ok(r) => r,
        Err((status, message)) => return error(status, message),
    };
    let from = ends.ours.map(|ours| (ends.peer, ours));
    match intake.accept(req, from, "http").await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROTOBUF)],
            ExportTraceServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
        Err(Refusal::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(Refusal::Busy(m)) => error(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

async fn decode(
    headers: &HeaderMap,
    body: Body,
) -> Result<ExportTraceServiceRequest, (StatusCode, String)> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let ctype = value(header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if !matches!(ctype, PROTOBUF | "application/protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {ctype:?}: the agent takes OTLP protobuf ({PROTOBUF})"),
        ));
    }
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is over {MAX_REQUEST_BYTES} bytes"),
        )
    };
    let raw: Bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| too_large())?;
    let raw = match value(header::CONTENT_ENCODING) {
        "" | "identity" => raw.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("gzip: {e}")))?;
            if out.len() > MAX_REQUEST_BYTES {
                return Err(too_large());
            }
            out
        }
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?}: gzip or none"),
            ));
        }
    };
    ExportTraceServiceRequest::decode(raw.as_slice()).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("not an OTLP ExportTraceServiceRequest: {e}"),
        )
    })
}

fn error(status: StatusCode, message: String) -> Response {
    // gRPC's codes for the same cases: InvalidArgument, Unavailable, else Unknown.
    let code = match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 2,
    };
    let body = RpcStatus { code, message }.encode_to_vec();
    (status, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}
