//! Runs the host collectors on each scrape and reports, as node_exporter does, how
//! long each took and whether it succeeded.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tracing::{debug, info, warn};

use super::{
    HostPaths,
    source::{Collect, Error, Sources},
};
use crate::export::families;

#[derive(Debug)]
pub(super) struct HostCollector {
    paths: HostPaths,
    collectors: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    collector: Box<dyn Collect>,
    /// Set while the collector keeps failing, so a broken source logs once, not
    /// once per scrape.
    failing: AtomicBool,
}

impl HostCollector {
    pub fn new(paths: HostPaths, collectors: Vec<Box<dyn Collect>>) -> Self {
        let collectors = collectors
            .into_iter()
            .map(|collector| Entry {
                collector,
                failing: AtomicBool::new(false),
            })
            .collect();
        HostCollector { paths, collectors }
    }
}

impl Collector for HostCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let src = Sources::new(&self.paths);
        let mut outcomes = Vec::with_capacity(self.collectors.len());
        for entry in &self.collectors {
            let start = Instant::now();
            let result = entry.collector.collect(&src, &mut enc);
            let seconds = start.elapsed().as_secs_f64();
            let ok = match result {
                Ok(()) => {
                    entry.succeeded();
                    true
                }
                Err(Error::Encode(e)) => return Err(e),
                Err(e) => {
                    entry.failed(&e);
                    false
                }
            };
            outcomes.push((entry.collector.name(), seconds, ok));
        }
        families::gauge(
            &mut enc,
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            outcomes
                .iter()
                .map(|&(name, seconds, _)| ([("collector", name)], seconds)),
        )?;
        families::gauge(
            &mut enc,
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            outcomes
                .iter()
                .map(|&(name, _, ok)| ([("collector", name)], if ok { 1.0 } else { 0.0 })),
        )
    }
}

impl Entry {
    fn failed(&self, err: &Error) {
        if self.failing.swap(true, Ordering::Relaxed) {
            return;
        }
        let name = self.collector.name();
        // A missing file usually means a kernel without that feature (PSI, IPv6):
        // node_exporter logs that at debug level too.
        if err.is_not_found() {
            debug!(collector = name, "host collector has no source: {err}");
        } else {
            warn!(collector = name, "host collector failed: {err}");
        }
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            info!(
                collector = self.collector.name(),
                "host collector recovered"
            );
        }
    }
}
