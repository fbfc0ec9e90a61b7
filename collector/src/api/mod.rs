//! The Prometheus HTTP API (`/api/v1/...`) with Prometheus's JSON shapes and
//! error format, plus `/-/healthy`, `/-/ready` and the collector's own `/metrics`.

pub mod admin;
pub mod auth;
pub mod error;
pub mod format;
pub mod own_metrics;
pub mod params;
pub mod query;
pub mod rules;
pub mod series;

use std::sync::Arc;

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::{
    query::EngineOptions,
    store::{Storage, tsdb::Tsdb},
};

/// What the API handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub storage: Arc<dyn Storage>,
    pub engine_options: EngineOptions,
    pub registry: Arc<Registry>,
    /// The store the admin endpoints act on; `None` unless `--enable-admin-api`.
    pub admin: Option<Arc<Tsdb>>,
}

pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/metadata", get(series::metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/admin/tsdb/compact", post(admin::compact))
        .route(
            "/-/healthy",
            get(|| async { "Sonde Collector is Healthy.\n" }),
        )
        // Servers start only after storage recovery, so answering at all means ready.
        .route("/-/ready", get(|| async { "Sonde Collector is Ready.\n" }))
        .route("/metrics", get(own_metrics::serve))
        .with_state(state)
}

async fn buildinfo() -> Response {
    format::success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// Text for clients that ask for something else than JSON on unknown paths.
pub async fn not_found() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}
