//! Admin endpoints, like Prometheus's `/api/v1/admin/tsdb/...`: served only
//! with `--enable-admin-api`; otherwise they answer as Prometheus does with
//! its admin API off: 503 `{"errorType":"unavailable","error":"admin APIs disabled"}`.

use std::{sync::Arc, time::Instant};

use axum::{extract::State, response::Response};
use serde_json::json;

use super::{ApiState, error::ApiError, format};
use crate::store::tsdb::{Tsdb, TsdbStats};

fn disabled() -> ApiError {
    ApiError {
        status: 503,
        error_type: "unavailable",
        message: "admin APIs disabled (start sonde-collector with --enable-admin-api)".into(),
    }
}

fn stats_json(s: &TsdbStats) -> serde_json::Value {
    json!({
        "headSeries": s.head_series,
        "blocks": s.blocks,
        "blockBytes": s.block_bytes,
        "blockSamples": s.block_samples,
        "walBytes": s.wal_bytes,
    })
}

/// `POST /api/v1/admin/tsdb/compact`: writes every head sample into blocks,
/// merges and applies retention, and deletes the WAL segments now covered by
/// blocks. Answers the store's figures before and after.
pub async fn compact(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let tsdb: Arc<Tsdb> = state.admin.clone().ok_or_else(disabled)?;
    let started = Instant::now();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let before = tsdb.stats();
        tsdb.compact(true)?;
        Ok::<_, std::io::Error>((before, tsdb.stats()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("compaction task failed: {e}")))?
    .map_err(|e| ApiError::internal(format!("compaction failed: {e}")))?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        elapsed_ms,
        blocks = after.blocks,
        block_bytes = after.block_bytes,
        wal_bytes_before = before.wal_bytes,
        wal_bytes_after = after.wal_bytes,
        "compaction requested through the admin API done"
    );
    Ok(format::success(json!({
        "before": stats_json(&before),
        "after": stats_json(&after),
        "elapsedMs": elapsed_ms,
    })))
}
