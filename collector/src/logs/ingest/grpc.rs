//! OTLP/gRPC `LogsService/Export` on the `--grpc-listen` server, beside the
//! metrics service; gzip and zstd request compression accepted (the agent
//! sends zstd).

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use super::{LogIngester, http::export};
use crate::ingest::grpc::refusal_status;

const PROTOCOL: &str = "otlp_grpc";

pub struct OtlpLogsGrpc {
    ingester: LogIngester,
}

/// The service, with `--max-request-bytes` as the decoded message limit.
pub fn service(ingester: LogIngester) -> LogsServiceServer<OtlpLogsGrpc> {
    let max = ingester.max_request_bytes;
    LogsServiceServer::new(OtlpLogsGrpc { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl LogsService for OtlpLogsGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        match export(&self.ingester, PROTOCOL, request.into_inner()).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => {
                self.ingester.count_refusal(PROTOCOL, &e);
                Err(refusal_status(e))
            }
        }
    }
}
