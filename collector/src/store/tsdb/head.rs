//! The head: recent samples in memory, per series a sorted vector (cheap to
//! append, and small out-of-order inserts within the window land in place),
//! plus a postings index over the live series.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicI64, Ordering},
    },
};

use super::postings::{self, Postings};

/// Hash maps keyed by label sets and ids are on every write's path; SipHash's
/// DoS resistance is not needed for them (a client can only create as many
/// series as the cap allows) and cost 5% of ingest CPU.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use crate::{
    model::{Labels, Matcher, Sample, TimeSeries, matches_all},
    store::{AppendError, AppendStats},
};

pub struct SeriesBuf {
    /// Ascending by time, timestamps unique.
    pub samples: Vec<Sample>,
    /// Newest sample ever appended (including pending ones), kept when
    /// older samples move to blocks.
    pub max_t: i64,
    /// Logged but not yet fsynced: invisible to readers, but later writes
    /// are validated against them. Few, unsorted, timestamps unique.
    pub pending: Vec<Sample>,
}

pub struct MemSeries {
    pub id: u64,
    pub labels: Labels,
    pub data: Mutex<SeriesBuf>,
}

impl MemSeries {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SeriesBuf> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct HeadIndex {
    by_labels: HashMap<Labels, Arc<MemSeries>>,
    by_id: HashMap<u64, Arc<MemSeries>>,
    postings: Postings<u64>,
    next_id: u64,
}

pub struct Head {
    index: RwLock<HeadIndex>,
    /// Samples older than this are in blocks; appends below it are refused.
    min_valid_t: AtomicI64,
}

/// Where a validated group of samples goes.
pub enum Target {
    Existing(Arc<MemSeries>),
    /// Index into `Prepared::new_series`.
    New(usize),
}

/// A validated batch, ready to be logged and applied.
pub struct Prepared {
    pub new_series: Vec<Labels>,
    pub groups: Vec<(Target, Vec<Sample>)>,
    pub stats: AppendStats,
    pub max_t: i64,
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn dup_error(t: i64, labels: &Labels) -> AppendError {
    AppendError::Invalid(format!(
        "duplicate sample for timestamp {t} with a different value in series {labels}"
    ))
}

impl Default for Head {
    fn default() -> Self {
        Head {
            index: RwLock::new(HeadIndex {
                next_id: 1,
                ..Default::default()
            }),
            min_valid_t: AtomicI64::new(i64::MIN),
        }
    }
}

impl Head {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HeadIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HeadIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn min_valid_t(&self) -> i64 {
        self.min_valid_t.load(Ordering::Acquire)
    }

    pub fn set_min_valid_t(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::AcqRel);
    }

    /// Validates a whole batch against the head without changing anything.
    /// Callers serialize prepare+apply (the append lock).
    pub fn prepare(
        &self,
        batch: &[TimeSeries],
        max_series: usize,
        ooo_window_ms: i64,
    ) -> Result<Prepared, AppendError> {
        let mut stats = AppendStats::default();
        let min_valid = self.min_valid_t();
        let idx = self.read();
        // Group by series: a batch may name one series more than once. Known
        // series are grouped by id (one label-set hash per series, the index
        // lookup), new ones by label set.
        type Group<'a> = (&'a Labels, Option<&'a Arc<MemSeries>>, Vec<Sample>);
        let mut order: Vec<Group<'_>> = Vec::with_capacity(batch.len());
        let mut known: HashMap<u64, usize> =
            HashMap::with_capacity_and_hasher(batch.len(), Default::default());
        let mut fresh: HashMap<&Labels, usize> = HashMap::default();
        for ts in batch {
            if ts.samples.is_empty() {
                continue;
            }
            if ts.labels.is_empty() {
                return Err(AppendError::Invalid(
                    "series with an empty label set".into(),
                ));
            }
            if ts.labels.iter().any(|(k, _)| k.is_empty()) {
                return Err(AppendError::Invalid(format!(
                    "empty label name in series {}",
                    ts.labels
                )));
            }
            let existing = idx.by_labels.get(&ts.labels);
            let i = match existing {
                Some(s) => *known.entry(s.id).or_insert(order.len()),
                None => *fresh.entry(&ts.labels).or_insert(order.len()),
            };
            if i == order.len() {
                order.push((&ts.labels, existing, Vec::new()));
            }
            order[i].2.extend_from_slice(&ts.samples);
        }
        for (labels, _, samples) in &mut order {
            if !samples.is_sorted_by_key(|s| s.t) {
                samples.sort_by_key(|s| s.t);
            }
            if samples.windows(2).any(|w| w[0].t == w[1].t) {
                let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
                for s in samples.iter() {
                    match out.last() {
                        Some(last) if last.t == s.t => {
                            if !same(last.v, s.v) {
                                return Err(dup_error(s.t, labels));
                            }
                            stats.duplicates += 1;
                        }
                        _ => out.push(*s),
                    }
                }
                *samples = out;
            }
        }
        let new_count = fresh.len();
        if new_count > 0 && idx.by_id.len() + new_count > max_series {
            return Err(AppendError::SeriesLimit {
                limit: max_series,
                new_series: new_count,
            });
        }
        let mut ooo: Option<(usize, String, i64, i64)> = None;
        let mut note_ooo = |labels: &Labels, t: i64, min_t: i64| match &mut ooo {
            Some(o) => o.0 += 1,
            None => ooo = Some((1, labels.to_string(), t, min_t)),
        };
        let mut prepared = Prepared {
            new_series: Vec::new(),
            groups: Vec::with_capacity(order.len()),
            stats,
            max_t: i64::MIN,
        };
        for (labels, existing, samples) in order {
            match existing {
                Some(series) => {
                    let buf = series.lock();
                    let min_ok = min_valid.max(buf.max_t.saturating_sub(ooo_window_ms));
                    let mut accepted = Vec::with_capacity(samples.len());
                    for s in samples {
                        if s.t < min_ok {
                            note_ooo(labels, s.t, min_ok);
                        } else if s.t <= buf.max_t {
                            let existing = match buf.samples.binary_search_by_key(&s.t, |x| x.t) {
                                Ok(i) => Some(buf.samples[i].v),
                                Err(_) => buf.pending.iter().find(|x| x.t == s.t).map(|x| x.v),
                            };
                            match existing {
                                Some(v) if same(v, s.v) => prepared.stats.duplicates += 1,
                                Some(_) => return Err(dup_error(s.t, labels)),
                                None => accepted.push(s),
                            }
                        } else {
                            accepted.push(s);
                        }
                    }
                    drop(buf);
                    if !accepted.is_empty() {
                        prepared
                            .groups
                            .push((Target::Existing(series.clone()), accepted));
                    }
                }
                None => {
                    let mut accepted = Vec::with_capacity(samples.len());
                    for s in samples {
                        if s.t < min_valid {
                            note_ooo(labels, s.t, min_valid);
                        } else {
                            accepted.push(s);
                        }
                    }
                    prepared.new_series.push(labels.clone());
                    prepared
                        .groups
                        .push((Target::New(prepared.new_series.len() - 1), accepted));
                }
            }
        }
        if let Some((count, series, t, min_t)) = ooo {
            return Err(AppendError::OutOfOrder {
                count,
                series,
                t,
                min_t,
            });
        }
        for (_, s) in &prepared.groups {
            prepared.stats.samples += s.len();
            if let Some(last) = s.last() {
                prepared.max_t = prepared.max_t.max(last.t);
            }
        }
        prepared.stats.new_series = prepared.new_series.len();
        Ok(prepared)
    }

    /// Creates series (or returns existing ones), assigning fresh ids.
    pub fn create(&self, labels: &[Labels]) -> Vec<Arc<MemSeries>> {
        let mut idx = self.write();
        labels
            .iter()
            .map(|l| {
                let id = idx.next_id;
                insert(&mut idx, id, l)
            })
            .collect()
    }

    /// Creates a series with a known id (WAL replay); an existing series with
    /// the same labels is returned instead.
    pub fn create_with_id(&self, id: u64, labels: &Labels) -> Arc<MemSeries> {
        insert(&mut self.write(), id, labels)
    }

    /// Adds validated samples (any order; existing timestamps are kept).
    pub fn apply(series: &MemSeries, samples: &[Sample]) {
        insert_sorted(&mut series.lock(), samples);
    }

    /// Records logged-but-unsynced samples (see `SeriesBuf::pending`).
    pub fn stage(series: &MemSeries, samples: &[Sample]) {
        let mut buf = series.lock();
        buf.pending.extend_from_slice(samples);
        if let Some(t) = samples.iter().map(|s| s.t).max() {
            buf.max_t = buf.max_t.max(t);
        }
    }

    /// Ends staging of `samples`: made visible once durable (`durable`),
    /// dropped otherwise.
    pub fn unstage(series: &MemSeries, samples: &[Sample], durable: bool) {
        let mut buf = series.lock();
        if buf.pending.len() == samples.len() {
            // The common case: nobody else has samples pending here.
            buf.pending.clear();
        } else {
            buf.pending.retain(|p| !samples.iter().any(|s| s.t == p.t));
        }
        if durable {
            insert_sorted(&mut buf, samples);
        }
    }

    /// Removes series (e.g. created for a write whose WAL record failed).
    pub fn remove(&self, ids: &[u64]) {
        let mut idx = self.write();
        for id in ids {
            if let Some(s) = idx.by_id.remove(id) {
                idx.by_labels.remove(&s.labels);
                for (k, v) in s.labels.iter() {
                    let empty_name = if let Some(values) = idx.postings.get_mut(k) {
                        if let Some(list) = values.get_mut(v) {
                            if let Ok(i) = list.binary_search(id) {
                                list.remove(i);
                            }
                            if list.is_empty() {
                                values.remove(v);
                            }
                        }
                        values.is_empty()
                    } else {
                        false
                    };
                    if empty_name {
                        idx.postings.remove(k);
                    }
                }
            }
        }
    }

    pub fn num_series(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn all_series(&self) -> Vec<Arc<MemSeries>> {
        self.read().by_id.values().cloned().collect()
    }

    /// (min, max) sample time in the head, if it holds any sample.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut r: Option<(i64, i64)> = None;
        for s in self.all_series() {
            let buf = s.lock();
            if let (Some(a), Some(b)) = (buf.samples.first(), buf.samples.last()) {
                r = Some(r.map_or((a.t, b.t), |(lo, hi)| (lo.min(a.t), hi.max(b.t))));
            }
        }
        r
    }

    /// Series matching all matchers (unsorted).
    pub fn matching(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let idx = self.read();
        match postings::candidates(&idx.postings, matchers) {
            Some(ids) => ids
                .iter()
                .filter_map(|id| idx.by_id.get(id))
                .filter(|s| matches_all(matchers, &s.labels))
                .cloned()
                .collect(),
            None => idx
                .by_id
                .values()
                .filter(|s| matches_all(matchers, &s.labels))
                .cloned()
                .collect(),
        }
    }

    /// Adds to `out` the label names (with `name == None`) or the values of
    /// label `name` carried by some series with samples in `[mint, maxt]`.
    pub fn label_index(
        &self,
        name: Option<&str>,
        mint: i64,
        maxt: i64,
        out: &mut BTreeSet<String>,
    ) {
        let idx = self.read();
        let has_data = |id: &u64| {
            idx.by_id.get(id).is_some_and(|s| {
                let buf = s.lock();
                let lo = buf.samples.partition_point(|x| x.t < mint);
                buf.samples.get(lo).is_some_and(|x| x.t <= maxt)
            })
        };
        postings::label_index(&idx.postings, name, out, has_data);
    }

    /// Drops samples older than `t` and then series left without samples.
    pub fn truncate_before(&self, t: i64) -> usize {
        let mut empty = Vec::new();
        for s in self.all_series() {
            let mut buf = s.lock();
            let cut = buf.samples.partition_point(|x| x.t < t);
            buf.samples.drain(..cut);
            if buf.samples.is_empty() && buf.pending.is_empty() {
                empty.push(s.id);
            }
        }
        self.remove(&empty);
        empty.len()
    }

    /// Highest id handed out so far plus one.
    pub fn bump_next_id(&self, at_least: u64) {
        let mut idx = self.write();
        idx.next_id = idx.next_id.max(at_least);
    }

    /// Live series as (id, labels) for a WAL segment's series table.
    pub fn series_table(&self) -> Vec<(u64, Labels)> {
        let idx = self.read();
        let mut v: Vec<(u64, Labels)> = idx
            .by_id
            .values()
            .map(|s| (s.id, s.labels.clone()))
            .collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v
    }
}

fn insert_sorted(buf: &mut SeriesBuf, samples: &[Sample]) {
    for s in samples {
        match buf.samples.last() {
            Some(last) if last.t >= s.t => {
                if let Err(i) = buf.samples.binary_search_by_key(&s.t, |x| x.t) {
                    buf.samples.insert(i, *s);
                }
            }
            _ => buf.samples.push(*s),
        }
        buf.max_t = buf.max_t.max(s.t);
    }
}

fn insert(idx: &mut HeadIndex, id: u64, labels: &Labels) -> Arc<MemSeries> {
    if let Some(s) = idx.by_labels.get(labels) {
        return s.clone();
    }
    let s = Arc::new(MemSeries {
        id,
        labels: labels.clone(),
        data: Mutex::new(SeriesBuf {
            samples: Vec::new(),
            max_t: i64::MIN,
            pending: Vec::new(),
        }),
    });
    idx.next_id = idx.next_id.max(id + 1);
    idx.by_labels.insert(labels.clone(), s.clone());
    idx.by_id.insert(id, s.clone());
    postings::add(&mut idx.postings, labels, id);
    s
}
