//! The store's core: opening and recovery, the append path (validate, log,
//! apply, then a shared fsync), and reads that merge the head with blocks.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, RwLock, atomic::AtomicU64},
    time::Instant,
};

use super::{
    TsdbOptions, Tuning,
    block::{self, Block},
    head::{Head, MemSeries, Target},
    metadata,
    wal::{self, Record, Wal},
};
use crate::{
    model::{Labels, Matcher, MetricMetadata, Sample, TimeSeries},
    store::{AppendError, AppendStats, SeriesData},
};

pub struct Inner {
    pub dir: PathBuf,
    pub blocks_dir: PathBuf,
    pub opts: TsdbOptions,
    pub tuning: Tuning,
    pub head: Head,
    pub wal: Wal,
    /// Sorted by (mint, name).
    pub blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes validate + log + apply so validation sees every earlier write.
    pub append_lock: Mutex<()>,
    /// One compaction / retention pass at a time.
    pub compact_lock: Mutex<()>,
    pub metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    pub next_block_seq: AtomicU64,
    /// Writes staged in the head but not yet made visible (or dropped).
    pub inflight: Mutex<usize>,
    pub inflight_done: Condvar,
    /// Holds an exclusive `flock` on `<dir>/lock` while the store is open.
    _lock: fs::File,
}

/// Counts one staged write for [`Inner::wait_inflight`] until dropped.
struct Inflight<'a>(&'a Inner);

impl<'a> Inflight<'a> {
    fn start(inner: &'a Inner) -> Inflight<'a> {
        *lock(&inner.inflight) += 1;
        Inflight(inner)
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        let mut n = lock(&self.0.inflight);
        *n -= 1;
        if *n == 0 {
            self.0.inflight_done.notify_all();
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What recovery found, for the startup log line.
#[derive(Default, Debug)]
struct Recovered {
    blocks: usize,
    segments: usize,
    records: usize,
    series: usize,
    samples: usize,
    skipped_in_blocks: usize,
    unknown_series_samples: usize,
    torn_tails: usize,
    metadata: usize,
}

fn block_seq(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

impl Inner {
    pub fn open(dir: &Path, opts: TsdbOptions, tuning: Tuning) -> io::Result<Inner> {
        let started = Instant::now();
        let mut rec = Recovered::default();
        let blocks_dir = dir.join("blocks");
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&blocks_dir)?;
        fs::create_dir_all(&wal_dir)?;
        let dir_lock = crate::store::dir_lock::lock_dir(dir, "data directory")?;

        // Blocks. A merge that crashed after renaming its output but before
        // deleting its inputs leaves both: the inputs are named in the output.
        let mut blocks = Vec::new();
        let mut next_seq = 1u64;
        for path in block::list(&blocks_dir)? {
            next_seq = next_seq.max(block_seq(&path).map_or(0, |s| s + 1));
            blocks.push(Block::open(&path)?);
        }
        let replaced: BTreeSet<String> = blocks
            .iter()
            .flat_map(|b| b.meta.sources.iter().cloned())
            .collect();
        let mut kept = Vec::new();
        for b in blocks {
            if replaced.contains(&b.name) {
                tracing::info!(file = %b.path.display(), "removing block already merged into a newer one");
                fs::remove_file(&b.path)?;
            } else {
                kept.push(Arc::new(b));
            }
        }
        kept.sort_by(|a, b| (a.meta.mint, &a.name).cmp(&(b.meta.mint, &b.name)));
        rec.blocks = kept.len();
        let head = Head::default();
        let persisted_max = kept.iter().map(|b| b.meta.maxt).max();
        if let Some(t) = persisted_max {
            head.set_min_valid_t(t.saturating_add(1));
        }
        let mut md = metadata::load(dir)?;

        // WAL replay.
        let segments = wal::list_segments(&wal_dir)?;
        // Pass 1: repair a torn tail and find the highest cut record, so
        // pass 2 skips everything already moved into blocks. Two passes keep
        // one segment in memory at a time.
        for (i, &seg) in segments.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, seg);
            let read = wal::read_segment(&path)?;
            if let Some(why) = &read.torn {
                if i + 1 != segments.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "WAL segment {} is corrupt in the middle of the log: {why}",
                            path.display()
                        ),
                    ));
                }
                // Only the last record of the last segment can be torn by a
                // crash; it was never acknowledged. Cut it off.
                tracing::warn!(file = %path.display(), reason = %why, valid_bytes = read.valid_len, "truncating torn WAL tail");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(read.valid_len)?;
                rec.torn_tails += 1;
            }
            for r in &read.records {
                if let Record::Cut(t) = r {
                    head.set_min_valid_t(*t);
                }
            }
        }
        let min_valid = head.min_valid_t();
        let mut seg_max_t = BTreeMap::new();
        let mut ids: HashMap<u64, Arc<MemSeries>> = HashMap::new();
        let mut max_id = 0u64;
        for &seg in &segments {
            let read = wal::read_segment(&wal::segment_path(&wal_dir, seg))?;
            let mut max_t = i64::MIN;
            for r in read.records {
                rec.records += 1;
                match r {
                    Record::Batch { series, samples } => {
                        for (id, labels) in series {
                            max_id = max_id.max(id);
                            ids.insert(id, head.create_with_id(id, &labels));
                        }
                        for (id, ss) in samples {
                            max_t = ss.iter().fold(max_t, |m, s| m.max(s.t));
                            let Some(series) = ids.get(&id) else {
                                rec.unknown_series_samples += ss.len();
                                continue;
                            };
                            let keep: Vec<Sample> =
                                ss.iter().copied().filter(|s| s.t >= min_valid).collect();
                            rec.skipped_in_blocks += ss.len() - keep.len();
                            rec.samples += keep.len();
                            Head::apply(series, &keep);
                        }
                    }
                    Record::Metadata(m) => {
                        rec.metadata += m.len();
                        md.extend(m);
                    }
                    Record::Cut(_) => {}
                }
            }
            seg_max_t.insert(seg, max_t);
            rec.segments += 1;
        }
        if rec.unknown_series_samples > 0 {
            tracing::warn!(
                samples = rec.unknown_series_samples,
                "WAL samples referenced series with no definition; dropped"
            );
        }
        drop(ids);
        head.bump_next_id(max_id + 1);
        // Series whose samples all turned out to be in blocks are not active.
        head.truncate_before(min_valid);
        rec.series = head.num_series();
        let first = wal::encode_batch(&head.series_table(), &[]);
        let wal = Wal::create(&wal_dir, tuning.wal_segment_bytes, seg_max_t, &first)?;
        if min_valid > i64::MIN {
            // Carry the bound forward in case the segments holding it go.
            let seq = wal.write(&wal::encode_cut(min_valid), i64::MIN)?;
            wal.sync(seq)?;
        }
        tracing::info!(
            dir = %dir.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            blocks = rec.blocks,
            wal_segments = rec.segments,
            wal_records = rec.records,
            series = rec.series,
            samples = rec.samples,
            samples_already_in_blocks = rec.skipped_in_blocks,
            dropped_unknown_series_samples = rec.unknown_series_samples,
            torn_wal_tails_truncated = rec.torn_tails,
            metadata_records = rec.metadata,
            "tsdb recovered"
        );
        Ok(Inner {
            dir: dir.to_path_buf(),
            blocks_dir,
            opts,
            tuning,
            head,
            wal,
            blocks: RwLock::new(kept),
            append_lock: Mutex::new(()),
            compact_lock: Mutex::new(()),
            metadata: RwLock::new(md),
            next_block_seq: AtomicU64::new(next_seq),
            inflight: Mutex::new(0),
            inflight_done: Condvar::new(),
            _lock: dir_lock,
        })
    }

    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        let ooo_ms = i64::try_from(self.opts.ooo_window.as_millis()).unwrap_or(i64::MAX);
        let (seq, stats, staged, rotated, _inflight) = {
            let _g = lock(&self.append_lock);
            let prep = self.head.prepare(batch, self.opts.max_series, ooo_ms)?;
            if prep.groups.is_empty() {
                return Ok(prep.stats);
            }
            let (stats, max_t) = (prep.stats, prep.max_t);
            let created = self.head.create(&prep.new_series);
            let defs: Vec<(u64, Labels)> =
                created.iter().map(|s| (s.id, s.labels.clone())).collect();
            let staged: Vec<(Arc<MemSeries>, Vec<Sample>)> = prep
                .groups
                .into_iter()
                .map(|(t, s)| match t {
                    Target::Existing(series) => (series, s),
                    Target::New(i) => (created[i].clone(), s),
                })
                .collect();
            let refs: Vec<(u64, &[Sample])> =
                staged.iter().map(|(s, ss)| (s.id, ss.as_slice())).collect();
            let record = wal::encode_batch(&defs, &refs);
            let seq = match self.wal.write(&record, max_t) {
                Ok(seq) => seq,
                Err(e) => {
                    self.head
                        .remove(&defs.iter().map(|(id, _)| *id).collect::<Vec<_>>());
                    return Err(e.into());
                }
            };
            // Later writes validate against these; readers see them only
            // once the fsync below succeeded.
            for (series, samples) in &staged {
                Head::stage(series, samples);
            }
            let inflight = Inflight::start(self);
            let rotated = if self.wal.wants_rotation() {
                self.wal
                    .rotate(&wal::encode_batch(&self.head.series_table(), &[]))
            } else {
                Ok(())
            };
            (seq, stats, staged, rotated, inflight)
        };
        // The fsync happens outside every lock readers or appenders need;
        // appenders arriving meanwhile share the next one.
        let synced = rotated.and_then(|()| self.wal.sync(seq));
        for (series, samples) in &staged {
            Head::unstage(series, samples, synced.is_ok());
        }
        synced?;
        Ok(stats)
    }

    /// Waits until every staged write has been made visible or dropped.
    /// Called with the append lock held, so no new write can stage.
    pub fn wait_inflight(&self) {
        let mut n = lock(&self.inflight);
        while *n > 0 {
            n = self
                .inflight_done
                .wait(n)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<SeriesData>> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        // Head first, then blocks: compaction publishes a block before it
        // trims the head, so this order sees every sample at least once;
        // the merge below drops the duplicates.
        let mut parts: Vec<(Labels, Vec<Sample>)> = Vec::new();
        for s in self.head.matching(matchers) {
            let buf = s.lock();
            let lo = buf.samples.partition_point(|x| x.t < mint);
            let hi = buf.samples.partition_point(|x| x.t <= maxt);
            if lo < hi {
                let v = buf.samples[lo..hi].to_vec();
                drop(buf);
                parts.push((s.labels.clone(), v));
            }
        }
        let from_head = parts.len();
        for b in self.blocks() {
            parts.extend(b.select(matchers, mint, maxt)?);
        }
        if parts.len() == from_head {
            // Head only: label sets are unique, no merging needed.
            parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            return Ok(parts
                .into_iter()
                .map(|(labels, samples)| SeriesData { labels, samples })
                .collect());
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<SeriesData> = Vec::new();
        let mut it = parts.into_iter().peekable();
        while let Some((labels, first)) = it.next() {
            let mut runs = vec![first];
            while it.peek().is_some_and(|(l, _)| *l == labels) {
                if let Some((_, v)) = it.next() {
                    runs.push(v);
                }
            }
            out.push(SeriesData {
                labels,
                samples: merge(runs),
            });
        }
        Ok(out)
    }

    pub fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<Labels>> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        let all = [Vec::new()];
        let sets: &[Vec<Matcher>] = if matcher_sets.is_empty() {
            &all
        } else {
            matcher_sets
        };
        let blocks = self.blocks();
        let mut out = BTreeSet::new();
        for ms in sets {
            for s in self.head.matching(ms) {
                let buf = s.lock();
                let lo = buf.samples.partition_point(|x| x.t < mint);
                if buf.samples.get(lo).is_some_and(|x| x.t <= maxt) {
                    drop(buf);
                    out.insert(s.labels.clone());
                }
            }
            for b in &blocks {
                out.extend(b.series(ms, mint, maxt));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Label names (`name == None`) or values of label `name` over the
    /// series `series(matcher_sets, ..)` would return.
    pub fn label_index(
        &self,
        name: Option<&str>,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<String>> {
        let mut out = BTreeSet::new();
        if mint > maxt {
            return Ok(Vec::new());
        }
        if matcher_sets.is_empty() {
            // Straight from the postings: no label sets are materialized.
            self.head.label_index(name, mint, maxt, &mut out);
            for b in self.blocks() {
                b.label_index(name, mint, maxt, &mut out);
            }
        } else {
            for l in self.series(matcher_sets, mint, maxt)? {
                match name {
                    None => out.extend(l.iter().map(|(k, _)| k.to_string())),
                    Some(n) => out.extend(l.get(n).map(str::to_string)),
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    pub fn set_metadata(&self, md: &[(String, MetricMetadata)]) -> io::Result<()> {
        // Held across the WAL write (not the fsync) so a snapshot taken
        // before WAL segments are deleted includes every logged change.
        let seq = {
            let mut map = self.metadata.write().unwrap_or_else(|e| e.into_inner());
            let changed: Vec<(String, MetricMetadata)> = md
                .iter()
                .filter(|(name, m)| map.get(name) != Some(m))
                .cloned()
                .collect();
            if changed.is_empty() {
                return Ok(());
            }
            let seq = self.wal.write(&wal::encode_metadata(&changed), i64::MIN)?;
            map.extend(changed);
            seq
        };
        self.wal.sync(seq)
    }

    pub fn metadata(&self) -> BTreeMap<String, Vec<MetricMetadata>> {
        let map = self.metadata.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect()
    }
}

/// Merges sample runs of one series into one ascending run without repeated timestamps.
pub fn merge(mut parts: Vec<Vec<Sample>>) -> Vec<Sample> {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut all: Vec<Sample> = parts.concat();
    all.sort_by_key(|s| s.t);
    all.dedup_by_key(|s| s.t);
    all
}
