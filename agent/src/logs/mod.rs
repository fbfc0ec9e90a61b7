//! Container logs: tail -> parse -> redact -> ship over OTLP logs/gRPC.
//!
//! Files: `<log-dir>/<ns>_<pod>_<uid>/<container>/*.log` ([`discover`], [`path`]),
//! each followed by a [`follower::Follower`] (CRI or Docker JSON per line,
//! [`cri`], [`docker`]), rotation and restarts handled by [`tailer`], positions
//! checkpointed by [`positions`] (format documented there). Lines are redacted
//! ([`redact`]) and encoded into OTLP batches ([`batch`]) by the reader thread,
//! written to the disk queue `<buffer-dir>/logs` by the writer thread
//! ([`pipeline`]), and sent by the shared OTLP sender (`export::otlp::sender`).
//!
//! With `--log-tap on`, lines of containers that have no log file come from the
//! kernel's stdout/stderr tap (`probes::stdio`) into the same batches ([`tap`]).
//!
//! Nothing is dropped for lack of room: past the queue's bound the reader stops
//! (the files are the buffer). What cannot be kept is counted in
//! `sonde_logs_lines_dropped_total{reason}`; what was repaired in
//! `sonde_logs_lines_malformed_total{reason}` ([`stats`]).

pub mod batch;
pub mod cri;
pub mod discover;
pub mod docker;
pub mod follower;
pub mod path;
pub mod pipeline;
pub mod positions;
pub mod redact;
pub mod stats;
pub mod tailer;
pub mod tap;
#[cfg(test)]
mod tests;

use std::{
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::{
    config::{ExportConfig, LogsConfig},
    export::otlp::{
        buffer::{Buffer, Kind, Overflow},
        sender,
        stats::ExportStats,
    },
};

/// Which output a line came from (`log.iostream`); `Unknown` for lines that
/// did not parse, which then carry no stream attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    Unknown,
}

/// Bound of the log queue before the tailer pauses: a quarter of
/// `--buffer-max-bytes`, at least 8 MiB (a few batches in flight).
pub fn queue_bound(buffer_max_bytes: u64) -> u64 {
    (buffer_max_bytes / 4).max(8 << 20)
}

/// Opens the queue and checkpoint (errors name the flag), registers
/// `sonde_logs_*`, and starts the reader, writer and sender. Call inside the runtime.
pub fn start(
    cfg: &LogsConfig,
    export: &ExportConfig,
    node: String,
    tap: Option<tap::TapInput>,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let export_stats = ExportStats::default();
    export_stats.register(registry, Kind::Logs);
    let stats = stats::LogStats::new(export_stats.clone());
    stats.register(registry);
    let dir = export.buffer_dir.join("logs");
    let bound = queue_bound(export.buffer_max_bytes);
    let buffer = Buffer::open(
        &dir,
        bound,
        Kind::Logs,
        Overflow::Block,
        export_stats.clone(),
    )
    .map_err(|e| anyhow::anyhow!("--buffer-dir: {e}"))?;
    positions::check_writable(&cfg.positions)
        .map_err(|e| anyhow::anyhow!("--log-positions: {e}"))?;
    let saved = positions::load(&cfg.positions).unwrap_or_else(|e| {
        warn!("--log-positions: {e}; starting without positions (files are read from the start)");
        Vec::new()
    });
    let client = sender::client(&export.collector, Kind::Logs).map_err(|e| anyhow::anyhow!(e))?;
    let redactor = stats.redactor(cfg.redact.clone().map(|(_, r)| r).unwrap_or_default());
    info!(
        log_dir = %cfg.log_dir.display(),
        positions = %cfg.positions.display(),
        queue = %dir.display(),
        queue_bound = bound,
        redaction_rules = cfg.redact.as_ref().map_or(0, |(_, r)| r.rules.len()),
        "tailing container logs, shipping over OTLP/gRPC"
    );
    let buffer = Arc::new(Mutex::new(buffer));
    let wake = Arc::new(Notify::new());
    tokio::spawn(sender::run(
        client,
        buffer.clone(),
        wake.clone(),
        export_stats,
        Duration::from_millis(250),
    ));
    let tap = tap.map(|t| tap::Tap::new(t, node.clone()));
    let tailer = tailer::Tailer::new(cfg.log_dir.clone(), node, saved, stats.clone());
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let flush = cfg.flush_interval;
    let reader_buffer = buffer.clone();
    std::thread::Builder::new()
        .name("logs-reader".into())
        .spawn(move || {
            pipeline::reader_loop(tailer, tap, redactor, flush, reader_buffer, tx, stop, stats)
        })?;
    let positions_path = cfg.positions.clone();
    std::thread::Builder::new()
        .name("logs-writer".into())
        .spawn(move || pipeline::writer_loop(rx, buffer, wake, positions_path))?;
    Ok(())
}
