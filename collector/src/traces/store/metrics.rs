//! The trace store's size on the collector's `/metrics`, read at scrape time.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::gauge::ConstGauge,
    registry::Registry,
};

use super::TraceStore;

pub fn register(registry: &mut Registry, store: Arc<TraceStore>) {
    registry.register_collector(Box::new(TraceStoreGauges { store }));
}

struct TraceStoreGauges {
    store: Arc<TraceStore>,
}

// `Collector` wants Debug; the store handle has nothing useful to show.
impl std::fmt::Debug for TraceStoreGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceStoreGauges")
    }
}

impl Collector for TraceStoreGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self.store.stats();
        for (name, help, v) in [
            (
                "sonde_collector_trace_stored_spans",
                "Spans held by the trace store (segments and memory)",
                s.spans,
            ),
            (
                "sonde_collector_trace_segments",
                "Trace segment files",
                s.segments,
            ),
            (
                "sonde_collector_trace_disk_bytes",
                "Bytes the trace store uses on disk (segment files and WAL)",
                s.disk_bytes,
            ),
            (
                "sonde_collector_trace_corrupt_segments",
                "Trace segment files set aside at start because they could not be read",
                self.store.corrupt_files(),
            ),
        ] {
            let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
            let metric = enc.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(metric)?;
        }
        Ok(())
    }
}
