//! Writing metric families from collectors that read their source at scrape time.
//!
//! A thin layer over prometheus-client's `DescriptorEncoder`: one call per family,
//! samples as `(labels, value)` pairs. Families with no samples are left out, so a
//! missing source never leaves an empty `# TYPE` behind.

use std::fmt;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet},
    metrics::MetricType,
};

/// Label pairs of one sample. Keys are static; values are whatever the source said.
pub type Labels = Vec<(&'static str, String)>;

/// Builds a [`Labels`] from `key => value` pairs.
#[macro_export]
macro_rules! labels {
    ($($k:literal => $v:expr),* $(,)?) => {
        vec![$(($k, ::std::string::ToString::to_string(&$v))),*]
    };
}

fn family<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (S, f64)>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let mut m = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, f64, f64>(&value, None)?,
            _ => m.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// A gauge family.
pub fn gauge<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, f64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Gauge, samples)
}

/// A counter family. `name` is without `_total`: the encoders add it to samples.
pub fn counter<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, f64)>,
) -> fmt::Result {
    debug_assert!(
        !name.ends_with("_total"),
        "counter {name}: leave _total to the encoder"
    );
    family(enc, name, help, MetricType::Counter, samples)
}

/// An untyped family, as node_exporter serves its netstat, vmstat and sockstat values.
/// (OpenMetrics calls it `unknown`, the Prometheus text format `untyped`.)
pub fn untyped<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, f64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Unknown, samples)
}

/// One histogram sample: per-bucket (not cumulative) counts with their upper bounds,
/// the last bound being `+Inf`.
pub struct HistogramSample<S> {
    pub labels: S,
    pub sum: f64,
    pub buckets: Vec<(f64, u64)>,
}

/// A histogram family.
pub fn histogram<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = HistogramSample<S>>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for s in samples {
        let count = s.buckets.iter().map(|b| b.1).sum();
        metric
            .encode_family(&s.labels)?
            .encode_histogram::<NoLabelSet>(s.sum, count, &s.buckets, None)?;
    }
    Ok(())
}
