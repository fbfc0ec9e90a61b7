//! Pushing the agent's metrics to the collector over OTLP/gRPC.
//!
//! Every `--export-interval` a snapshot of the same registry `/metrics` serves is
//! converted ([`convert`]), written to the disk queue ([`buffer`]), and sent from
//! there oldest first by the client loop ([`sender`]); what is lost on the way is
//! counted ([`stats`]).

pub mod buffer;
pub mod convert;
pub mod problems;
pub mod raw_grpc;
pub mod sender;
pub mod stats;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::Notify;
use tracing::{error, info};

use crate::config::ExportConfig;

use self::{
    buffer::{Buffer, Kind, Overflow},
    convert::Origin,
    stats::{DropReason, ExportStats},
};

/// The push, set up but not yet running (its stats are registered before the
/// registry is shared; the snapshot task needs the shared registry).
pub struct Export {
    cfg: ExportConfig,
    origin: Origin,
    client: sender::Client,
    buffer: Arc<Mutex<Buffer>>,
    stats: ExportStats,
}

impl Export {
    /// Opens the buffer and registers `sonde_export_*`. Errors name the flag.
    pub fn prepare(
        cfg: &ExportConfig,
        node_name: String,
        registry: &mut Registry,
    ) -> anyhow::Result<Export> {
        let stats = ExportStats::default();
        stats.register(registry, Kind::Metrics);
        let buffer = Buffer::open(
            &cfg.buffer_dir,
            cfg.buffer_max_bytes,
            Kind::Metrics,
            Overflow::DropOldest,
            stats.clone(),
        )
        .map_err(|e| anyhow::anyhow!("--buffer-dir: {e}"))?;
        let client =
            sender::client(&cfg.collector, Kind::Metrics).map_err(|e| anyhow::anyhow!(e))?;
        let origin = Origin {
            node_name,
            start_unix_nano: unix_nanos(SystemTime::now()),
        };
        Ok(Export {
            cfg: cfg.clone(),
            origin,
            client,
            buffer: Arc::new(Mutex::new(buffer)),
            stats,
        })
    }

    /// Starts the snapshot task and the sender.
    pub fn spawn(self, registry: Arc<Registry>) {
        info!(
            collector = %self.cfg.collector,
            interval = ?self.cfg.export_interval,
            buffer_dir = %self.cfg.buffer_dir.display(),
            buffer_max_bytes = self.cfg.buffer_max_bytes,
            "pushing metrics over OTLP/gRPC"
        );
        let wake = Arc::new(Notify::new());
        // Retry soon after a short blip, but never faster than 4 times per interval.
        let initial_backoff = (self.cfg.export_interval / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        tokio::spawn(sender::run(
            self.client,
            self.buffer.clone(),
            wake.clone(),
            self.stats.clone(),
            initial_backoff,
        ));
        tokio::spawn(snapshots(
            self.cfg.export_interval,
            registry,
            self.origin,
            self.buffer,
            self.stats,
            wake,
        ));
    }
}

async fn snapshots(
    interval: Duration,
    registry: Arc<Registry>,
    origin: Origin,
    buffer: Arc<Mutex<Buffer>>,
    stats: ExportStats,
    wake: Arc<Notify>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (registry, origin, buffer, stats) = (
            registry.clone(),
            origin.clone(),
            buffer.clone(),
            stats.clone(),
        );
        // Collectors read /proc and /sys, and the buffer writes a file: blocking work.
        let done =
            tokio::task::spawn_blocking(move || snapshot_once(&registry, &origin, &buffer, &stats))
                .await;
        match done {
            Ok(true) => wake.notify_one(),
            Ok(false) => {}
            Err(e) => error!("export snapshot task failed: {e}"),
        }
    }
}

/// Takes one snapshot into the buffer; false when there was nothing to queue.
fn snapshot_once(
    registry: &Registry,
    origin: &Origin,
    buffer: &Mutex<Buffer>,
    stats: &ExportStats,
) -> bool {
    let now = unix_nanos(SystemTime::now());
    let families = match prometheus_client::encoding::prometheus_protobuf::encode(registry) {
        Ok(f) => f,
        Err(e) => {
            error!("encoding metrics for export: {e}");
            return false;
        }
    };
    // Counted after encoding, so snapshot n carries n-1: the collector can see gaps.
    stats.snapshot_taken();
    let batch = convert::to_request(&families, origin, now);
    let payload = batch.request.encode_to_vec();
    let mut buffer = buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match buffer.push(&payload, batch.points) {
        Ok(()) => true,
        Err(e) => {
            stats.dropped(DropReason::WriteError, 1, batch.points);
            error!("writing a batch to the export buffer: {e}; dropped");
            false
        }
    }
}

pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The node name the resource carries: `--node-name`, else this host's name.
pub fn node_name(configured: Option<&str>) -> String {
    if let Some(n) = configured {
        return n.to_string();
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL or the end either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc == 0 && len > 0 {
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else {
        "unknown".into()
    }
}
