//! OTLP/gRPC: the `MetricsService/Export` server (gzip and zstd accepted).

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use super::{IngestError, Ingester, http::export};

const PROTOCOL: &str = "otlp_grpc";

pub struct OtlpGrpc {
    ingester: Ingester,
}

/// The service, with `--max-request-bytes` as the decoded message limit.
pub fn service(ingester: Ingester) -> MetricsServiceServer<OtlpGrpc> {
    let max = ingester.max_request_bytes;
    MetricsServiceServer::new(OtlpGrpc { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

/// A refusal as a gRPC status, with the code OTLP prescribes: limits are
/// RESOURCE_EXHAUSTED, server faults UNAVAILABLE (retryable), the rest
/// INVALID_ARGUMENT. Shared with the logs service.
pub fn refusal_status(e: IngestError) -> Status {
    match super::http::grpc_code(&e) {
        8 => Status::resource_exhausted(e.message),
        13 => Status::unavailable(e.message),
        _ => Status::invalid_argument(e.message),
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        match export(&self.ingester, PROTOCOL, request.into_inner()).await {
            Ok(resp) => {
                self.ingester.metrics.request(PROTOCOL, "ok");
                Ok(Response::new(resp))
            }
            Err(e) => {
                self.ingester.count_refusal(PROTOCOL, &e);
                Err(refusal_status(e))
            }
        }
    }
}
