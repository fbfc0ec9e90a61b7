//! OTLP/gRPC `TraceService/Export` (port 4317 by default), gzip accepted.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use super::{
    MAX_REQUEST_BYTES,
    intake::{Intake, Refusal},
};

struct Receiver(Arc<Intake>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let from = request.remote_addr().zip(request.local_addr());
        match self.0.accept(request.into_inner(), from, "grpc").await {
            Ok(()) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: None,
            })),
            Err(Refusal::Invalid(m)) => Err(Status::invalid_argument(m)),
            Err(Refusal::Busy(m)) => Err(Status::unavailable(m)),
        }
    }
}

pub async fn serve(listener: tokio::net::TcpListener, intake: Arc<Intake>) -> anyhow::Result<()> {
    let service = TraceServiceServer::new(Receiver(intake))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
