//! The log store's size on the collector's `/metrics`, read at scrape time.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::gauge::ConstGauge,
    registry::Registry,
};

use crate::logs::store::LogStore;

pub fn register(registry: &mut Registry, store: Arc<LogStore>) {
    registry.register_collector(Box::new(LogStoreGauges { store }));
}

struct LogStoreGauges {
    store: Arc<LogStore>,
}

// `Collector` wants Debug; the store handle has nothing useful to show.
impl std::fmt::Debug for LogStoreGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStoreGauges")
    }
}

impl Collector for LogStoreGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self.store.stats();
        for (name, help, v) in [
            (
                "sonde_collector_log_streams",
                "Log streams known to the store, counted against --logs-max-streams",
                s.streams,
            ),
            (
                "sonde_collector_log_stored_entries",
                "Log entries held by the store",
                s.entries,
            ),
            (
                "sonde_collector_log_stored_line_bytes",
                "Bytes of log lines held by the store, uncompressed",
                s.raw_bytes,
            ),
            (
                "sonde_collector_log_disk_bytes",
                "Bytes the log store uses on disk (chunk files and WAL), counted against --logs-retention-size",
                s.disk_bytes,
            ),
        ] {
            let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
            let metric = enc.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(metric)?;
        }
        Ok(())
    }
}
