//! Loki's HTTP API on `--http-listen`, with Loki's JSON shapes and errors, as
//! Grafana's Loki data source and logcli use it: queries, label and series
//! metadata, live tail (websocket), index stats, build info and `/ready`.

pub mod error;
pub mod format;
pub mod metadata;
pub mod params;
pub mod query;
pub mod store_metrics;
pub mod tail;

use std::{sync::Arc, time::Duration};

use axum::{Router, response::Response, routing::get};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use serde_json::json;

use crate::logs::{logql::LogQlLimits, store::LogStore};

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct LogApiState {
    pub store: Arc<LogStore>,
    /// `max_lines` is `--logs-max-lines`.
    pub limits: LogQlLimits,
    /// `--query-timeout`.
    pub timeout: Duration,
    pub metrics: LogApiMetrics,
}

/// Counters about tail clients, on the collector's `/metrics` (the store's
/// size gauges are registered beside them, see [`store_metrics`]).
#[derive(Clone, Default)]
pub struct LogApiMetrics {
    pub dropped_entries: Counter,
    pub lagged_batches: Counter,
}

impl LogApiMetrics {
    pub fn new(registry: &mut Registry, store: Arc<LogStore>) -> LogApiMetrics {
        store_metrics::register(registry, store);
        let m = LogApiMetrics::default();
        registry.register(
            "sonde_collector_log_tail_dropped_entries",
            "Log entries not sent to a tail client because it read too slowly (named to it in dropped_entries)",
            m.dropped_entries.clone(),
        );
        registry.register(
            "sonde_collector_log_tail_lagged_batches",
            "Pushed batches a tail client's reader missed because it fell behind the store's broadcast",
            m.lagged_batches.clone(),
        );
        m
    }
}

pub fn routes(state: LogApiState) -> Router {
    Router::new()
        .route(
            "/loki/api/v1/query",
            get(query::instant).post(query::instant),
        )
        .route(
            "/loki/api/v1/query_range",
            get(query::range).post(query::range),
        )
        .route(
            "/loki/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route(
            "/loki/api/v1/label/{name}/values",
            get(metadata::label_values).post(metadata::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(metadata::index_stats).post(metadata::index_stats),
        )
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        // Servers start only after both stores are open: answering means ready.
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(state)
}

/// Loki's build info (not wrapped in status/data). Grafana reads `version` to
/// decide which Loki features to use; we report the Loki API level this
/// collector follows, and Sonde's own version as the revision.
async fn buildinfo() -> Response {
    query::json_response(json!({
        "version": "3.0.0",
        "revision": concat!("sonde-collector-", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
