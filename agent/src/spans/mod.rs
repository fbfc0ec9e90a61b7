//! Application spans: the node-local OTLP endpoint (the Jaeger agent's old
//! role). Data flows one way:
//!
//! ```text
//! grpc (4317) / http (4318) -> intake: validate, peer (sender's pod), k8s (attributes)
//! kernel (eBPF HTTP spans, already attributed) -^
//!   -> disk queue <buffer-dir>/traces (acknowledged to the app once queued)
//!   -> red (traces_spanmetrics_*) ; sender -> collector's TraceService
//! ```

mod grpc;
mod http;
mod intake;
mod k8s;
mod peer;
mod red;
mod socket_owner;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::registry::Registry;
use tokio::{
    net::TcpListener,
    sync::{Notify, mpsc},
};
use tracing::{error, info};

use crate::{
    config::{ExportConfig, SpansConfig},
    enrich::workloads::Workloads,
    export::otlp::{
        buffer::{Buffer, Kind, Overflow},
        sender,
        stats::ExportStats,
    },
};

/// The largest export request taken (decoded), as the OpenTelemetry Collector's
/// default for its gRPC receiver is 4 MiB; ours is roomier for HTTP batches.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Binds both receivers (a taken port is an error now, not later), opens the
/// queue and starts the sender. `kernel` carries spans the eBPF HTTP probe
/// built (their resource attributes already name the pod). Call inside the runtime.
pub async fn start(
    cfg: &SpansConfig,
    export: &ExportConfig,
    node: String,
    workloads: Arc<Mutex<Workloads>>,
    procfs: std::path::PathBuf,
    kernel: Option<mpsc::Receiver<ExportTraceServiceRequest>>,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let bind = |flag: &'static str, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--{flag} {addr}: {e}"))
    };
    let grpc_listener = bind("otlp-grpc-listen", cfg.grpc_listen).await?;
    let http_listener = bind("otlp-http-listen", cfg.http_listen).await?;

    let stats = ExportStats::default();
    stats.register_spans(registry);
    let dir = export.buffer_dir.join("traces");
    let queue = Buffer::open(
        &dir,
        export.buffer_max_bytes,
        Kind::Traces,
        Overflow::Block,
        stats.clone(),
    )
    .map_err(|e| anyhow::anyhow!("--buffer-dir: {e}"))?;
    let queue = Arc::new(Mutex::new(queue));
    let wake = Arc::new(Notify::new());
    let client = sender::client(&export.collector, Kind::Traces).map_err(|e| anyhow::anyhow!(e))?;
    tokio::spawn(sender::run(
        client,
        queue.clone(),
        wake.clone(),
        stats,
        Duration::from_millis(250),
    ));

    let peers = peer::Peers::new(workloads, procfs);
    let intake = Arc::new(intake::Intake::new(peers, node, queue, wake, registry));
    info!(grpc = %cfg.grpc_listen, http = %cfg.http_listen, "receiving OTLP spans");
    if let Some(mut kernel) = kernel {
        let i = intake.clone();
        tokio::spawn(async move {
            while let Some(req) = kernel.recv().await {
                // Refusals are counted by the intake; the kernel cannot be asked to retry.
                let _ = i.accept(req, None, "ebpf").await;
            }
        });
    }
    let i = intake.clone();
    tokio::spawn(async move {
        if let Err(e) = grpc::serve(grpc_listener, i).await {
            error!(error = %e, "the OTLP/gRPC span receiver stopped");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = http::serve(http_listener, intake).await {
            error!(error = %e, "the OTLP/HTTP span receiver stopped");
        }
    });
    Ok(())
}
