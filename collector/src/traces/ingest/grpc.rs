//! OTLP/gRPC `TraceService/Export` on the `--grpc-listen` server, beside the
//! metrics and logs services; gzip and zstd request compression accepted.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use super::TraceIngester;
use crate::ingest::grpc::refusal_status;

const PROTOCOL: &str = "otlp_grpc";

pub struct OtlpTracesGrpc {
    ingester: TraceIngester,
}

/// The service, with `--max-request-bytes` as the decoded message limit.
pub fn service(ingester: TraceIngester) -> TraceServiceServer<OtlpTracesGrpc> {
    let max = ingester.max_request_bytes;
    TraceServiceServer::new(OtlpTracesGrpc { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl TraceService for OtlpTracesGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match self.ingester.export(PROTOCOL, request.into_inner()).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => {
                self.ingester.count_refusal(PROTOCOL, &e);
                Err(refusal_status(e))
            }
        }
    }
}
