//! The agent's HTTP endpoints: `/metrics` (Prometheus text or OpenMetrics, by the
//! `Accept` header, as Prometheus negotiates) and `/healthz`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{encoding::text, registry::Registry};
use tokio::net::TcpListener;

use super::text_format::{drop_empty_label_sets, openmetrics_to_prometheus};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr`; binding errors surface before the agent reports it is serving.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))
}

pub async fn serve(listener: TcpListener, registry: Arc<Registry>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(index))
        .with_state(registry);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>Sonde agent</title></head><body><h1>Sonde agent</h1>\
      <p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/healthz\">Health</a></p></body></html>\n",
    )
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    // Collectors read /proc and /sys: blocking file I/O, kept off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut om = String::with_capacity(64 * 1024);
        text::encode(&mut om, &registry).map(|()| om)
    })
    .await;
    match encoded {
        Ok(Ok(om)) if openmetrics => (
            [(header::CONTENT_TYPE, OPENMETRICS)],
            drop_empty_label_sets(om),
        )
            .into_response(),
        Ok(Ok(om)) => (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            openmetrics_to_prometheus(&om),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("collecting metrics: {e}\n"),
        )
            .into_response(),
    }
}
