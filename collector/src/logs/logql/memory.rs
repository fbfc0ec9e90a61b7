//! An in-memory [`LogSource`] for tests (here and in `tests/logql_corpus.rs`):
//! streams with entries kept sorted by time, equal times in append order.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::logs::model::{Direction, LogEntry, LogReadError, LogSource, StreamEntries, StreamRef};
use crate::model::{Labels, Matcher, matches_all};

#[derive(Default)]
pub struct MemLogSource {
    streams: Vec<StreamEntries>,
    /// Entries visited by `scan` so far (tests check early stopping with it).
    pub scanned: AtomicU64,
}

impl MemLogSource {
    pub fn new() -> MemLogSource {
        MemLogSource::default()
    }

    /// Adds entries to the stream with these labels (creating it).
    pub fn push(&mut self, labels: Labels, entries: Vec<LogEntry>) {
        let idx = match self.streams.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                self.streams.push(StreamEntries {
                    labels,
                    entries: Vec::new(),
                });
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[idx];
        s.entries.extend(entries);
        // Stable: equal timestamps keep append order.
        s.entries.sort_by_key(|e| e.ts_ns);
    }

    pub fn scanned(&self) -> u64 {
        self.scanned.load(Ordering::Relaxed)
    }
}

impl LogSource for MemLogSource {
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StreamRef>, LogReadError> {
        Ok(self
            .streams
            .iter()
            .enumerate()
            .filter(|(_, s)| matches_all(matchers, &s.labels))
            .filter(|(_, s)| {
                s.entries
                    .iter()
                    .any(|e| e.ts_ns >= start_ns && e.ts_ns < end_ns)
            })
            .map(|(i, s)| StreamRef {
                id: i as u64,
                labels: s.labels.clone(),
            })
            .collect())
    }

    fn scan(
        &self,
        stream: &StreamRef,
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        visit: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>,
    ) -> Result<(), LogReadError> {
        let s = self
            .streams
            .get(stream.id as usize)
            .ok_or_else(|| LogReadError(format!("no stream {}", stream.id)))?;
        let in_range = s
            .entries
            .iter()
            .filter(|e| e.ts_ns >= start_ns && e.ts_ns < end_ns);
        let mut go = |e: &LogEntry| {
            self.scanned.fetch_add(1, Ordering::Relaxed);
            visit(e)
        };
        match direction {
            Direction::Forward => {
                for e in in_range {
                    if go(e).is_break() {
                        break;
                    }
                }
            }
            Direction::Backward => {
                let v: Vec<&LogEntry> = in_range.collect();
                for e in v.into_iter().rev() {
                    if go(e).is_break() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn label_names(&self, start_ns: i64, end_ns: i64) -> Result<Vec<String>, LogReadError> {
        let mut names: Vec<String> = self
            .streams(&[], start_ns, end_ns)?
            .iter()
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|(k, _)| k.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, LogReadError> {
        let mut values: Vec<String> = self
            .streams(matchers, start_ns, end_ns)?
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
