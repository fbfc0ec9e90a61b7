//! A stream's open chunk: entries in arrival order (any timestamp order),
//! with a hash set that drops exact duplicates (at-least-once senders
//! retry whole batches).

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::Arc,
    time::Instant,
};

use crate::logs::model::LogEntry;

/// Fixed-seed hasher: dedup hashes never leave memory, so speed is all that matters.
type Fixed = foldhash::fast::FixedState;

#[derive(Default)]
pub struct Head {
    pub entries: Vec<LogEntry>,
    /// Entry hash -> index of the first entry with it. On a collision with
    /// a different entry the newcomer is kept but not indexed: a later exact
    /// duplicate of it would then be stored twice, which is harmless and rare.
    seen: HashMap<u64, u32, Fixed>,
    pub min_ts: i64,
    pub max_ts: i64,
    pub raw_bytes: u64,
    /// WAL sequence numbers of the oldest and newest batch with entries here.
    pub min_lsn: u64,
    pub max_lsn: u64,
    /// When the first entry arrived (for the age cut).
    pub started: Option<Instant>,
}

fn entry_hash(e: &LogEntry) -> u64 {
    let mut h = Fixed::default().build_hasher();
    e.ts_ns.hash(&mut h);
    e.line.hash(&mut h);
    e.metadata.hash(&mut h);
    h.finish()
}

/// Raw size accounted for an entry: the line plus its metadata text.
pub fn entry_bytes(e: &LogEntry) -> u64 {
    let md: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    (e.line.len() + md) as u64
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `e` unless it duplicates an entry already here; returns whether it was added.
    pub fn push(&mut self, e: LogEntry, lsn: u64) -> bool {
        let h = entry_hash(&e);
        match self.seen.get(&h) {
            Some(&i) if self.entries.get(i as usize) == Some(&e) => {
                // The batch is accounted to this head even if all of it was
                // dropped: replay must skip it once the head is in a chunk.
                self.max_lsn = self.max_lsn.max(lsn);
                return false;
            }
            Some(_) => {}
            None => {
                self.seen.insert(h, self.entries.len() as u32);
            }
        }
        if self.entries.is_empty() {
            self.min_ts = e.ts_ns;
            self.max_ts = e.ts_ns;
            self.min_lsn = lsn;
            self.max_lsn = lsn;
            self.started = Some(Instant::now());
        } else {
            self.min_ts = self.min_ts.min(e.ts_ns);
            self.max_ts = self.max_ts.max(e.ts_ns);
        }
        self.max_lsn = self.max_lsn.max(lsn);
        self.raw_bytes += entry_bytes(&e);
        self.entries.push(e);
        true
    }

    /// Empties the head into a sealed chunk, entries sorted by time (stable,
    /// so equal timestamps keep their arrival order).
    pub fn seal(&mut self) -> Sealed {
        let mut entries = std::mem::take(&mut self.entries);
        self.seen = HashMap::default();
        entries.sort_by_key(|e| e.ts_ns);
        let s = Sealed {
            entries: Arc::new(entries),
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            min_lsn: self.min_lsn,
            max_lsn: self.max_lsn,
        };
        self.raw_bytes = 0;
        self.started = None;
        s
    }

    /// Entries in `[start, end)`, sorted by time (arrival order for ties).
    pub fn sorted_in(&self, start: i64, end: i64) -> Vec<LogEntry> {
        let mut v: Vec<LogEntry> = self
            .entries
            .iter()
            .filter(|e| e.ts_ns >= start && e.ts_ns < end)
            .cloned()
            .collect();
        v.sort_by_key(|e| e.ts_ns);
        v
    }
}

/// A cut chunk waiting to be written to a chunk file (still readable from memory).
#[derive(Clone)]
pub struct Sealed {
    pub entries: Arc<Vec<LogEntry>>,
    pub min_ts: i64,
    pub max_ts: i64,
    pub min_lsn: u64,
    pub max_lsn: u64,
}
