//! An in-memory `Storage`: no durability, no compression, linear scans.
//! Used by the PromQL test-script runner (which loads small data sets and
//! throws them away) and by unit tests of the query engine and API.

use std::{
    collections::{BTreeMap, HashMap},
    sync::RwLock,
};

use super::{AppendError, AppendStats, SeriesData, Storage};
use crate::model::{Labels, Matcher, MetricMetadata, TimeSeries, matches_all};

#[derive(Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<crate::model::Sample>>>,
    metadata: RwLock<HashMap<String, MetricMetadata>>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Drops everything (the test scripts' `clear`).
    pub fn clear(&self) {
        self.series.write().unwrap().clear();
        self.metadata.write().unwrap().clear();
    }
}

impl Storage for MemStorage {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        let mut all = self.series.write().unwrap();
        let mut stats = AppendStats::default();
        for ts in batch {
            let samples = all.entry(ts.labels.clone()).or_insert_with(|| {
                stats.new_series += 1;
                Vec::new()
            });
            for s in &ts.samples {
                // Keep samples sorted; a sample at an existing timestamp replaces it
                // (the test scripts rely on that when a `load` block repeats a series).
                match samples.binary_search_by(|x| x.t.cmp(&s.t)) {
                    Ok(i) => samples[i] = *s,
                    Err(i) => samples.insert(i, *s),
                }
                stats.samples += 1;
            }
        }
        Ok(stats)
    }

    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<SeriesData>> {
        let all = self.series.read().unwrap();
        Ok(all
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .filter_map(|(l, s)| {
                let lo = s.partition_point(|x| x.t < mint);
                let hi = s.partition_point(|x| x.t <= maxt);
                (lo < hi).then(|| SeriesData {
                    labels: l.clone(),
                    samples: s[lo..hi].to_vec(),
                })
            })
            .collect())
    }

    fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<Labels>> {
        let all = self.series.read().unwrap();
        Ok(all
            .iter()
            .filter(|(l, _)| {
                matcher_sets.is_empty() || matcher_sets.iter().any(|m| matches_all(m, l))
            })
            .filter(|(_, s)| s.iter().any(|x| x.t >= mint && x.t <= maxt))
            .map(|(l, _)| l.clone())
            .collect())
    }

    fn set_metadata(&self, metadata: &[(String, MetricMetadata)]) -> std::io::Result<()> {
        let mut m = self.metadata.write().unwrap();
        for (name, md) in metadata {
            m.insert(name.clone(), md.clone());
        }
        Ok(())
    }

    fn metadata(&self) -> std::io::Result<BTreeMap<String, Vec<MetricMetadata>>> {
        Ok(self
            .metadata
            .read()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect())
    }

    fn active_series(&self) -> usize {
        self.series.read().unwrap().len()
    }
}
