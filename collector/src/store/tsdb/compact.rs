//! Compaction and retention: cut old head samples into level-0 blocks,
//! merge small adjacent blocks into larger ones, delete WAL segments whose
//! samples are all in blocks, and drop blocks past the retention limits.
//!
//! Crash safety: a block only becomes visible after it is fsynced and
//! renamed; WAL segments and merged-away blocks are deleted only after that.

use std::{
    collections::BTreeMap,
    fs, io,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use super::{
    block::{self, Block, BlockWriter},
    db::{Inner, lock, merge},
    metadata, wal,
};
use crate::model::Labels;

/// How many blocks of the level below make one block of the next level.
const MERGE_FACTORS: [i64; 2] = [6, 6];

impl Inner {
    /// One maintenance pass: head compaction, block merges, retention.
    pub fn maintain(&self, force_head: bool) -> io::Result<()> {
        let _c = lock(&self.compact_lock);
        self.compact_head(force_head)?;
        self.merge_blocks()?;
        self.apply_retention()
    }

    fn new_block_name(&self) -> String {
        format!(
            "{:010}.{}",
            self.next_block_seq.fetch_add(1, Ordering::Relaxed),
            block::EXT
        )
    }

    fn publish(&self, b: Block, remove: &[String]) {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        blocks.retain(|x| !remove.contains(&x.name));
        blocks.push(Arc::new(b));
        blocks.sort_by(|a, b| (a.meta.mint, &a.name).cmp(&(b.meta.mint, &b.name)));
    }

    /// Moves head samples older than the cut into blocks. Normally the cut is
    /// the block-range boundary at least half a range behind the newest
    /// sample, so late samples still find their series in the head; `force`
    /// moves everything (samples up to the newest become unappendable).
    fn compact_head(&self, force: bool) -> io::Result<()> {
        let Some((hmin, hmax)) = self.head.time_range() else {
            return Ok(());
        };
        let r = self.tuning.block_range_ms;
        let cut = if force {
            hmax.saturating_add(1)
        } else {
            hmax.saturating_sub(r / 2).div_euclid(r).saturating_mul(r)
        };
        if cut <= hmin {
            return Ok(());
        }
        let started = Instant::now();
        {
            // Under the append lock: no write validated against the old
            // bound can still be applying.
            let _g = lock(&self.append_lock);
            self.head.set_min_valid_t(cut);
            // Writes validated against the old bound but still waiting for
            // their fsync must land in the head before it is read.
            self.wait_inflight();
        }
        let mut series: Vec<Arc<super::head::MemSeries>> = self.head.all_series();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut w = hmin.div_euclid(r).saturating_mul(r);
        let mut written = 0usize;
        while w < cut {
            let end = w.saturating_add(r).min(cut);
            let name = self.new_block_name();
            let mut bw = BlockWriter::new(&self.blocks_dir, &name)?;
            for s in &series {
                let part = {
                    let buf = s.lock();
                    let lo = buf.samples.partition_point(|x| x.t < w);
                    let hi = buf.samples.partition_point(|x| x.t < end);
                    buf.samples[lo..hi].to_vec()
                };
                bw.add(&s.labels, &part)?;
            }
            if bw.num_samples() == 0 {
                bw.abandon()?;
            } else {
                let samples = bw.num_samples();
                let size = bw.finish(0, Vec::new())?;
                let b = Block::open(&self.blocks_dir.join(&name))?;
                tracing::info!(block = %name, mint = b.meta.mint, maxt = b.meta.maxt, series = b.num_series(), samples, bytes = size,
                    bytes_per_sample = size as f64 / samples as f64, "head compacted into block");
                self.publish(b, &[]);
                written += 1;
            }
            // Skip empty windows: one stray ancient sample must not cost a
            // pass per block range in between.
            let next = series
                .iter()
                .filter_map(|s| {
                    let buf = s.lock();
                    let i = buf.samples.partition_point(|x| x.t < end);
                    buf.samples.get(i).map(|x| x.t)
                })
                .min();
            w = match next {
                Some(t) if t < cut => t.div_euclid(r).saturating_mul(r).max(end),
                _ => cut,
            };
        }
        let dropped;
        {
            let _g = lock(&self.append_lock);
            dropped = self.head.truncate_before(cut);
            // Close the segment holding the compacted samples, so it can go.
            self.wal
                .rotate(&wal::encode_batch(&self.head.series_table(), &[]))?;
            let seq = self.wal.write(&wal::encode_cut(cut), i64::MIN)?;
            self.wal.sync(seq)?;
        }
        self.truncate_wal(cut)?;
        tracing::info!(
            cut,
            blocks = written,
            series_no_longer_active = dropped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "head compaction done"
        );
        Ok(())
    }

    /// Deletes WAL segments whose samples are all older than `t`, after
    /// saving metadata (whose records may live in those segments).
    fn truncate_wal(&self, t: i64) -> io::Result<()> {
        let snapshot = self
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        metadata::save(&self.dir, &snapshot)?;
        let n = self.wal.truncate_before(t)?;
        if n > 0 {
            tracing::info!(
                segments = n,
                "deleted WAL segments whose samples are in blocks"
            );
        }
        Ok(())
    }

    /// Merges blocks that fall in the same window of the next level once the
    /// head can no longer add to that window.
    fn merge_blocks(&self) -> io::Result<()> {
        let mut range = self.tuning.block_range_ms;
        for f in MERGE_FACTORS {
            range = range.saturating_mul(f);
            let min_valid = self.head.min_valid_t();
            let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
            for b in self.blocks() {
                let w = b.meta.mint.div_euclid(range);
                if b.meta.maxt.div_euclid(range) == w {
                    groups.entry(w).or_default().push(b);
                }
            }
            for (w, group) in groups {
                let window_end = w.saturating_add(1).saturating_mul(range);
                if group.len() < 2 || window_end > min_valid {
                    continue;
                }
                self.merge(&group)?;
            }
        }
        Ok(())
    }

    fn merge(&self, group: &[Arc<Block>]) -> io::Result<()> {
        let started = Instant::now();
        let name = self.new_block_name();
        let mut bw = BlockWriter::new(&self.blocks_dir, &name)?;
        // Each block lists its series in label order: a k-way merge streams
        // one series at a time instead of loading whole blocks.
        let mut pos = vec![0usize; group.len()];
        loop {
            let next: Option<Labels> = group
                .iter()
                .zip(&pos)
                .filter_map(|(b, &i)| b.series_labels(i))
                .min()
                .cloned();
            let Some(labels) = next else { break };
            let mut parts = Vec::new();
            for (b, i) in group.iter().zip(pos.iter_mut()) {
                if b.series_labels(*i) == Some(&labels) {
                    parts.push(b.read_series(*i)?);
                    *i += 1;
                }
            }
            bw.add(&labels, &merge(parts))?;
        }
        let level = group.iter().map(|b| b.meta.level).max().unwrap_or(0) + 1;
        // Transitive, so that after a crash every ancestor still on disk
        // (e.g. restored inputs of an input) is recognized as replaced.
        let mut sources: Vec<String> = group
            .iter()
            .flat_map(|b| std::iter::once(b.name.clone()).chain(b.meta.sources.iter().cloned()))
            .collect();
        sources.sort();
        sources.dedup();
        let samples = bw.num_samples();
        let size = bw.finish(level, sources.clone())?;
        let b = Block::open(&self.blocks_dir.join(&name))?;
        tracing::info!(block = %name, level, sources = ?sources, samples, bytes = size,
            bytes_per_sample = size as f64 / samples.max(1) as f64, elapsed_ms = started.elapsed().as_millis() as u64, "merged blocks");
        let inputs: Vec<String> = group.iter().map(|b| b.name.clone()).collect();
        self.publish(b, &inputs);
        for s in group {
            remove_block_file(s)?;
        }
        Ok(())
    }

    /// Drops whole blocks past the retention time (relative to the newest
    /// sample stored) and, oldest first, while the total size is over budget.
    fn apply_retention(&self) -> io::Result<()> {
        let blocks = self.blocks();
        let newest = blocks
            .iter()
            .map(|b| b.meta.maxt)
            .chain(self.head.time_range().map(|(_, hi)| hi))
            .max();
        let Some(newest) = newest else { return Ok(()) };
        let keep_ms = i64::try_from(self.opts.retention_time.as_millis()).unwrap_or(i64::MAX);
        // Relative to the newest sample (as Prometheus does), but never to a
        // time in the future: one sample with a bogus far-future timestamp
        // must not expire everything.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i64::MAX, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            });
        let horizon = newest.min(now).saturating_sub(keep_ms);
        let mut drop: Vec<(Arc<Block>, &str)> = Vec::new();
        let mut live: Vec<&Arc<Block>> = Vec::new();
        for b in &blocks {
            if b.meta.maxt < horizon {
                drop.push((b.clone(), "time"));
            } else {
                live.push(b);
            }
        }
        if let Some(limit) = self.opts.retention_bytes {
            live.sort_by_key(|b| b.meta.maxt);
            let mut total: u64 = live.iter().map(|b| b.size).sum::<u64>() + self.wal.size_bytes();
            for b in live {
                if total <= limit {
                    break;
                }
                total = total.saturating_sub(b.size);
                drop.push((b.clone(), "size"));
            }
        }
        if drop.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = drop.iter().map(|(b, _)| b.name.clone()).collect();
        self.blocks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|b| !names.contains(&b.name));
        for (b, why) in &drop {
            tracing::info!(block = %b.name, mint = b.meta.mint, maxt = b.meta.maxt, bytes = b.size, reason = why, "retention: deleting block");
            remove_block_file(b)?;
        }
        Ok(())
    }
}

fn remove_block_file(b: &Block) -> io::Result<()> {
    // Readers still holding the block keep reading through their open file.
    match fs::remove_file(&b.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
