//! The collector's own `/metrics`: ingest counters (registered by `ingest`),
//! active series and build info.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{gauge::ConstGauge, info::Info},
    registry::Registry,
};

use super::ApiState;
use crate::store::Storage;

/// Registers the metrics read at scrape time.
pub fn register(registry: &mut Registry, storage: Arc<dyn Storage>) {
    registry.register(
        "sonde_collector_build",
        "The collector's version",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    registry.register_collector(Box::new(StorageGauges { storage }));
}

struct StorageGauges {
    storage: Arc<dyn Storage>,
}

// `Collector` wants Debug; the storage handle has nothing useful to show.
impl std::fmt::Debug for StorageGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageGauges")
    }
}

impl Collector for StorageGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let g = ConstGauge::new(self.storage.active_series() as i64);
        let metric = enc.encode_descriptor(
            "sonde_collector_active_series",
            "Series counted against --max-series",
            None,
            g.metric_type(),
        )?;
        g.encode(metric)
    }
}

pub async fn serve(axum::extract::State(state): State<ApiState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}
