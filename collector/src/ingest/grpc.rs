//! OTLP/gRPC: the `MetricsService/Export` server (gzip accepted).

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use super::{Ingester, http::export};

const PROTOCOL: &str = "otlp_grpc";

pub struct OtlpGrpc {
    ingester: Ingester,
}

/// The service, with `--max-request-bytes` as the decoded message limit.
pub fn service(ingester: Ingester) -> MetricsServiceServer<OtlpGrpc> {
    let max = ingester.max_request_bytes;
    MetricsServiceServer::new(OtlpGrpc { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
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
                Err(match (e.status, e.reason) {
                    (_, "series_limit") | (413, _) => Status::resource_exhausted(e.message),
                    (s, _) if s >= 500 => Status::unavailable(e.message),
                    _ => Status::invalid_argument(e.message),
                })
            }
        }
    }
}
