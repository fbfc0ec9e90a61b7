//! Turning decoded series into a validated write: name rules, duplicate and
//! empty label sets, series merged and samples sorted. Anything invalid fails
//! the whole request, so a refused write changes nothing.

use crate::model::{Labels, METRIC_NAME, MetricMetadata, Sample, TimeSeries};

/// A validated write, ready for `Storage::append`. A label set may appear
/// more than once: storage merges repeats (both stores group a batch by
/// series), so no label set is hashed or compared here; that was a tenth of
/// remote_write's CPU.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// In arrival order.
    series: Vec<TimeSeries>,
    pub metadata: Vec<(String, MetricMetadata)>,
}

impl WriteBatch {
    /// Adds samples under a raw label list (as received). Checks the rules
    /// Prometheus applies to remote writes; the error names the series.
    pub fn add(
        &mut self,
        pairs: Vec<(String, String)>,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<(), String> {
        let labels = validate_labels(pairs)?;
        self.add_valid(labels, samples);
        Ok(())
    }

    /// Adds samples to an already validated label set.
    pub fn add_valid(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        self.series.push(TimeSeries {
            labels,
            samples: samples.into_iter().collect(),
        });
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.metadata.is_empty()
    }

    /// The series for storage, samples ascending by time (a stable sort, so of
    /// two samples at one timestamp the later-sent stays later).
    pub fn into_series(self) -> (Vec<TimeSeries>, Vec<(String, MetricMetadata)>) {
        let series = self
            .series
            .into_iter()
            .filter(|s| !s.samples.is_empty())
            .map(|mut s| {
                if !s.samples.is_sorted_by_key(|x| x.t) {
                    s.samples.sort_by_key(|x| x.t);
                }
                s
            })
            .collect();
        (series, self.metadata)
    }
}

/// Validates a received label list and builds the label set.
pub fn validate_labels(pairs: Vec<(String, String)>) -> Result<Labels, String> {
    let describe = || {
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", shown.join(", "))
    };
    if pairs.iter().all(|(_, v)| v.is_empty()) {
        return Err("empty label set: a series needs at least a metric name".into());
    }
    let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
    for (name, value) in &pairs {
        if name == METRIC_NAME {
            if !is_valid_metric_name(value) {
                return Err(format!(
                    "invalid metric name {value:?} in series {}",
                    describe()
                ));
            }
        } else if !is_valid_label_name(name) {
            return Err(format!(
                "invalid label name {name:?} in series {}",
                describe()
            ));
        }
        if seen.contains(&name.as_str()) {
            return Err(format!(
                "duplicate label name {name:?} in series {}",
                describe()
            ));
        }
        seen.push(name);
    }
    if !pairs.iter().any(|(k, v)| k == METRIC_NAME && !v.is_empty()) {
        return Err(format!(
            "series {} has no metric name (__name__)",
            describe()
        ));
    }
    Ok(Labels::new(pairs))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus's classic metric name rule.
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's classic label name rule.
pub fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules() {
        assert!(validate_labels(p(&[("__name__", "up"), ("job", "a")])).is_ok());
        assert!(
            validate_labels(p(&[]))
                .unwrap_err()
                .contains("empty label set")
        );
        assert!(
            validate_labels(p(&[("job", "a")]))
                .unwrap_err()
                .contains("no metric name")
        );
        assert!(
            validate_labels(p(&[("__name__", "1up")]))
                .unwrap_err()
                .contains("invalid metric name")
        );
        assert!(
            validate_labels(p(&[("__name__", "up"), ("a-b", "x")]))
                .unwrap_err()
                .contains("invalid label name")
        );
        assert!(
            validate_labels(p(&[("__name__", "up"), ("a", "x"), ("a", "y")]))
                .unwrap_err()
                .contains("duplicate")
        );
    }

    #[test]
    fn keeps_repeats_for_storage_to_merge_and_sorts_samples() {
        let mut b = WriteBatch::default();
        b.add(
            p(&[("__name__", "up")]),
            [Sample { t: 2, v: 1.0 }, Sample { t: 1, v: 0.0 }],
        )
        .unwrap();
        b.add(p(&[("__name__", "up")]), [Sample { t: 0, v: 0.0 }])
            .unwrap();
        assert_eq!(b.sample_count(), 3);
        let (s, _) = b.into_series();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].samples.iter().map(|x| x.t).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Storage merges the repeats into one series.
        let db = crate::store::memory::MemStorage::default();
        crate::store::Storage::append(&db, &s).unwrap();
        let got = crate::store::Storage::select(&db, &[], 0, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 3);
    }
}
