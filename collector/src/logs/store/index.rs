//! The in-memory stream table: label set -> stream, postings (label pair ->
//! stream ids) for selectors, and per stream its chunk references, the chunks
//! being written, and its open head.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use super::{
    chunk_file::{ChunkFile, ChunkMeta},
    head::{Head, Sealed},
};
use crate::{
    model::{Labels, Matcher, matches_all},
    store::tsdb::postings::{self, Postings},
};

/// A chunk in a chunk file.
#[derive(Clone)]
pub struct ChunkRef {
    pub file: Arc<ChunkFile>,
    pub meta: ChunkMeta,
}

pub struct Stream {
    pub labels: Labels,
    /// Chunks on disk, in the order they were cut.
    pub chunks: Vec<ChunkRef>,
    /// Cut chunks not yet in a chunk file (read from memory meanwhile).
    pub sealed: Vec<Arc<Sealed>>,
    pub head: Head,
    /// Newest WAL batch whose entries for this stream are in chunk files.
    pub flushed_lsn: u64,
    /// Time range of everything stored (i64::MAX..i64::MIN when nothing is).
    pub min_ts: i64,
    pub max_ts: i64,
    /// Counted against `max_streams`: had an append recently or holds unflushed data.
    pub active: bool,
    pub last_append: Instant,
}

impl Stream {
    fn new(labels: Labels) -> Stream {
        Stream {
            labels,
            chunks: Vec::new(),
            sealed: Vec::new(),
            head: Head::default(),
            flushed_lsn: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            active: false,
            last_append: Instant::now(),
        }
    }

    /// Whether the stream may hold entries in `[start, end)`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_ts < end && self.max_ts >= start
    }

    pub fn widen(&mut self, min_ts: i64, max_ts: i64) {
        self.min_ts = self.min_ts.min(min_ts);
        self.max_ts = self.max_ts.max(max_ts);
    }

    /// Recomputes the time range after chunks were removed.
    pub fn recompute_range(&mut self) {
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
        let mut ranges: Vec<(i64, i64)> = self
            .chunks
            .iter()
            .map(|c| (c.meta.min_ts, c.meta.max_ts))
            .collect();
        ranges.extend(self.sealed.iter().map(|s| (s.min_ts, s.max_ts)));
        if !self.head.is_empty() {
            ranges.push((self.head.min_ts, self.head.max_ts));
        }
        for (a, b) in ranges {
            self.widen(a, b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.sealed.is_empty() && self.head.is_empty()
    }

    /// Oldest WAL batch with entries for this stream not yet in a chunk file.
    pub fn pinned_lsn(&self) -> Option<u64> {
        let head = (!self.head.is_empty()).then_some(self.head.min_lsn);
        self.sealed.iter().map(|s| s.min_lsn).chain(head).min()
    }
}

/// A chunk file and the streams with chunks in it.
pub struct FileEntry {
    pub file: Arc<ChunkFile>,
    pub streams: Vec<u64>,
}

#[derive(Default)]
pub struct Index {
    pub streams: HashMap<u64, Stream>,
    by_labels: HashMap<Labels, u64>,
    postings: Postings<u64>,
    next_id: u64,
    /// Streams with `active` set.
    pub active: usize,
    /// Entries and line+metadata bytes stored (files plus memory).
    pub entries: u64,
    pub raw_bytes: u64,
    /// Line+metadata bytes in heads (not yet cut).
    pub head_bytes: u64,
    pub files: BTreeMap<u64, FileEntry>,
    pub file_bytes: u64,
    /// The next WAL sequence number to hand out.
    pub next_lsn: u64,
    /// First LSN of each live WAL segment, oldest first (approximate: used
    /// only to pick which streams to cut when the WAL grows too long).
    pub seg_first_lsn: VecDeque<u64>,
    /// Sealed chunks whose file write failed; retried by the next cut.
    pub unwritten: Vec<(u64, Arc<Sealed>)>,
}

impl Index {
    pub fn lookup(&self, labels: &Labels) -> Option<u64> {
        self.by_labels.get(labels).copied()
    }

    /// The stream's id, created (inactive, empty) if new.
    pub fn get_or_create(&mut self, labels: &Labels) -> u64 {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        let id = self.next_id;
        self.next_id += 1;
        postings::add(&mut self.postings, labels, id);
        self.by_labels.insert(labels.clone(), id);
        self.streams.insert(id, Stream::new(labels.clone()));
        id
    }

    /// Ids of streams matching every matcher, ascending.
    pub fn matching(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut ids = match postings::candidates(&self.postings, matchers) {
            Some(c) => c,
            None => self.streams.keys().copied().collect(),
        };
        ids.retain(|id| {
            self.streams
                .get(id)
                .is_some_and(|s| matches_all(matchers, &s.labels))
        });
        ids.sort_unstable();
        ids
    }

    pub fn set_active(&mut self, id: u64, now: Instant) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.last_append = now;
            if !s.active {
                s.active = true;
                self.active += 1;
            }
        }
    }

    /// Marks streams idle for longer than `idle` with nothing unflushed as
    /// inactive, and forgets inactive streams that hold nothing.
    pub fn expire_active(&mut self, idle: std::time::Duration, now: Instant) {
        let mut n = 0;
        let mut empty = Vec::new();
        for (id, s) in self.streams.iter_mut() {
            if s.active
                && s.head.is_empty()
                && s.sealed.is_empty()
                && now.duration_since(s.last_append) >= idle
            {
                s.active = false;
                n += 1;
            }
            if !s.active && s.is_empty() {
                empty.push(*id);
            }
        }
        self.active -= n;
        self.remove_empty(&empty);
    }

    /// Drops streams that hold nothing any more, then rebuilds the postings.
    pub fn remove_empty(&mut self, candidates: &[u64]) -> usize {
        let mut removed = 0;
        for id in candidates {
            if self
                .streams
                .get(id)
                .is_some_and(|s| s.is_empty() && !s.active)
                && let Some(s) = self.streams.remove(id)
            {
                self.by_labels.remove(&s.labels);
                removed += 1;
            }
        }
        if removed > 0 {
            let mut p = Postings::new();
            let mut ids: Vec<(&u64, &Stream)> = self.streams.iter().collect();
            ids.sort_unstable_by_key(|(id, _)| **id);
            for (id, s) in ids {
                postings::add(&mut p, &s.labels, *id);
            }
            self.postings = p;
        }
        removed
    }

    /// The oldest LSN still needed by unflushed data, or `next_lsn` if none is.
    pub fn wal_needed_from(&self) -> u64 {
        let streams = self.streams.values().filter_map(Stream::pinned_lsn);
        let unwritten = self.unwritten.iter().map(|(_, s)| s.min_lsn);
        streams.chain(unwritten).min().unwrap_or(self.next_lsn)
    }
}
