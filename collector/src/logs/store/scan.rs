//! Reads: selecting streams through the postings, and scanning one stream's
//! chunks, cut-but-unwritten chunks and head in time order, one group of
//! overlapping pieces at a time (usually a single chunk), so memory stays
//! bounded by a chunk whatever the range.

use std::{collections::BTreeSet, ops::ControlFlow, sync::Arc};

use super::{chunk_file::ChunkFile, chunk_file::ChunkMeta, db::Inner};
use crate::{
    logs::model::{Direction, LogEntry, LogReadError, StreamRef},
    model::Matcher,
};

enum Source {
    Chunk(Arc<ChunkFile>, ChunkMeta),
    Mem(Arc<Vec<LogEntry>>),
}

struct Piece {
    min_ts: i64,
    max_ts: i64,
    /// Cut order: ties on timestamp go to the earlier piece.
    order: usize,
    src: Source,
}

impl Piece {
    fn load(&self) -> Result<Arc<Vec<LogEntry>>, LogReadError> {
        match &self.src {
            Source::Chunk(f, m) => f.read_chunk(m).map(Arc::new).map_err(LogReadError),
            Source::Mem(v) => Ok(v.clone()),
        }
    }
}

impl Inner {
    pub fn streams(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<StreamRef> {
        let ix = self.read();
        ix.matching(matchers)
            .into_iter()
            .filter_map(|id| {
                let s = ix.streams.get(&id)?;
                s.overlaps(start, end).then(|| StreamRef {
                    id,
                    labels: s.labels.clone(),
                })
            })
            .collect()
    }

    pub fn label_index(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<String> {
        let ix = self.read();
        let mut out = BTreeSet::new();
        for id in ix.matching(matchers) {
            let Some(s) = ix.streams.get(&id) else {
                continue;
            };
            if !s.overlaps(start, end) {
                continue;
            }
            match name {
                None => out.extend(s.labels.iter().map(|(k, _)| k.to_string())),
                Some(n) => out.extend(s.labels.get(n).map(str::to_string)),
            }
        }
        out.into_iter().collect()
    }

    /// The pieces of a stream overlapping `[start, end)`, snapshotted under the lock.
    fn pieces(&self, id: u64, start: i64, end: i64) -> Vec<Piece> {
        let ix = self.read();
        let Some(s) = ix.streams.get(&id) else {
            return Vec::new();
        };
        let overlaps = |a: i64, b: i64| a < end && b >= start;
        let mut out = Vec::new();
        for c in &s.chunks {
            if overlaps(c.meta.min_ts, c.meta.max_ts) {
                out.push(Piece {
                    min_ts: c.meta.min_ts,
                    max_ts: c.meta.max_ts,
                    order: out.len(),
                    src: Source::Chunk(c.file.clone(), c.meta),
                });
            }
        }
        for sealed in &s.sealed {
            if overlaps(sealed.min_ts, sealed.max_ts) {
                out.push(Piece {
                    min_ts: sealed.min_ts,
                    max_ts: sealed.max_ts,
                    order: out.len(),
                    src: Source::Mem(sealed.entries.clone()),
                });
            }
        }
        if !s.head.is_empty() && overlaps(s.head.min_ts, s.head.max_ts) {
            let v = s.head.sorted_in(start, end);
            if let (Some(a), Some(b)) = (v.first(), v.last()) {
                out.push(Piece {
                    min_ts: a.ts_ns,
                    max_ts: b.ts_ns,
                    order: out.len(),
                    src: Source::Mem(Arc::new(v)),
                });
            }
        }
        out
    }

    pub fn scan(
        &self,
        stream: &StreamRef,
        start: i64,
        end: i64,
        direction: Direction,
        visit: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>,
    ) -> Result<(), LogReadError> {
        if start >= end {
            return Ok(());
        }
        let mut pieces = self.pieces(stream.id, start, end);
        pieces.sort_by_key(|p| (p.min_ts, p.order));
        // Groups of transitively overlapping pieces; groups are disjoint in
        // time, so visiting them in order visits entries in order.
        let mut groups: Vec<Vec<Piece>> = Vec::new();
        let mut group_max = i64::MIN;
        for p in pieces {
            match groups.last_mut() {
                Some(g) if p.min_ts <= group_max => {
                    group_max = group_max.max(p.max_ts);
                    g.push(p);
                }
                _ => {
                    group_max = p.max_ts;
                    groups.push(vec![p]);
                }
            }
        }
        if direction == Direction::Backward {
            groups.reverse();
        }
        let in_range = |e: &&LogEntry| e.ts_ns >= start && e.ts_ns < end;
        for mut group in groups {
            let entries: Arc<Vec<LogEntry>> = if group.len() == 1 {
                group[0].load()?
            } else {
                // Concatenated in cut order then stably sorted: equal
                // timestamps stay in the order they were appended.
                group.sort_by_key(|p| p.order);
                let mut all = Vec::new();
                for p in &group {
                    all.extend(p.load()?.iter().filter(in_range).cloned());
                }
                all.sort_by_key(|e| e.ts_ns);
                Arc::new(all)
            };
            // Sorted by time: the range is a slice.
            let lo = entries.partition_point(|e| e.ts_ns < start);
            let hi = entries.partition_point(|e| e.ts_ns < end);
            let slice = &entries[lo..hi.max(lo)];
            let flow = match direction {
                Direction::Forward => slice.iter().try_for_each(&mut *visit),
                Direction::Backward => slice.iter().rev().try_for_each(&mut *visit),
            };
            if flow.is_break() {
                return Ok(());
            }
        }
        Ok(())
    }
}
