//! The store's core: open (segment indexes, then WAL replay), append
//! (validate, span limit, log, apply, shared fsync), and the cut that turns
//! the head into a segment and lets the WAL shrink.

use std::{
    collections::{BTreeMap, HashMap},
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use super::{
    TraceAppendError, TraceAppendStats, TraceStoreOptions, Tuning,
    head::Head,
    segment::{self, Segment},
    wal_record::{self, Record},
};
use crate::{
    store::{
        clock::{dur_ns, now_ns},
        data_files,
        maintenance::Maintained,
        record_wal,
        tsdb::wal::{Wal, list_segments, segment_path},
    },
    traces::model::{Span, TraceId, hex},
};

/// What queries read: the head, heads cut but not yet written, segments.
#[derive(Default)]
pub struct State {
    pub head: Head,
    /// Cut heads whose segment is being (or failed to be) written; written
    /// together on the next cut so `flushed_lsn` never skips one.
    pub sealed: Vec<Arc<Head>>,
    pub segments: BTreeMap<u64, Arc<Segment>>,
    pub next_lsn: u64,
}

impl State {
    /// Spans of `trace` already held, everywhere.
    pub fn span_count(&self, trace: &TraceId) -> u64 {
        self.head.span_count(trace)
            + self.sealed.iter().map(|h| h.span_count(trace)).sum::<u64>()
            + self
                .segments
                .values()
                .filter_map(|s| s.find(trace))
                .map(|t| u64::from(t.spans))
                .sum::<u64>()
    }

    fn in_memory(&self, trace: &TraceId, span: &crate::traces::model::SpanId) -> bool {
        self.head.has_span(trace, span) || self.sealed.iter().any(|h| h.has_span(trace, span))
    }
}

pub struct Inner {
    pub seg_dir: PathBuf,
    pub opts: TraceStoreOptions,
    pub tuning: Tuning,
    state: RwLock<State>,
    pub wal: Wal,
    /// One cut or retention pass at a time.
    maintain_lock: Mutex<()>,
    next_seq: AtomicU64,
    pub corrupt_files: u64,
    /// Holds an exclusive `flock` on `<dir>/lock` while the store is open.
    _lock: fs::File,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(dir: &Path, opts: TraceStoreOptions, tuning: Tuning) -> io::Result<Inner> {
        let started = Instant::now();
        let data_files::StoreDirs {
            data: seg_dir,
            wal: wal_dir,
            lock: dir_lock,
        } = data_files::open_dirs(dir, "segments", "trace directory")?;
        let mut st = State::default();
        let mut corrupt = 0u64;
        let names = data_files::list(&seg_dir, segment::parse_name)?;
        let next_seq = names.last().map_or(1, |(s, _)| s + 1);
        let mut flushed_lsn = 0u64;
        for (seq, path) in names {
            match Segment::open(&path, seq) {
                Ok(seg) => {
                    flushed_lsn = flushed_lsn.max(seg.flushed_lsn);
                    st.segments.insert(seq, Arc::new(seg));
                }
                Err(e) => {
                    corrupt += 1;
                    data_files::set_aside(&path, segment::EXT, "trace segment", &e)?;
                }
            }
        }

        let horizon = now_ns().saturating_sub(dur_ns(opts.retention_time));
        let mut next_lsn = flushed_lsn + 1;
        let mut existing = BTreeMap::new();
        let (mut records, mut replayed, mut skipped, mut torn) = (0u64, 0u64, 0u64, 0usize);
        let now = Instant::now();
        for seg in list_segments(&wal_dir)? {
            let path = segment_path(&wal_dir, seg);
            let mut seg_max = i64::MIN;
            let seg_torn =
                record_wal::replay_segment(&path, "trace", wal_record::decode_record, |r| {
                    let Record::Batch { lsn, spans } = r else {
                        return;
                    };
                    records += 1;
                    next_lsn = next_lsn.max(lsn + 1);
                    seg_max = seg_max.max(lsn as i64);
                    if lsn <= flushed_lsn {
                        skipped += spans.len() as u64;
                        return;
                    }
                    for s in spans {
                        if s.end_ns() < horizon {
                            skipped += 1;
                        } else if st.head.push(s, lsn, now) {
                            replayed += 1;
                        }
                    }
                })?;
            torn += usize::from(seg_torn);
            existing.insert(seg, seg_max);
        }
        st.next_lsn = next_lsn;
        let wal = Wal::create(
            &wal_dir,
            tuning.wal_segment_bytes,
            existing,
            &wal_record::encode_header(),
        )?;
        tracing::info!(
            dir = %dir.display(),
            duration_ms = started.elapsed().as_millis() as u64,
            segments = st.segments.len(),
            corrupt_segments = corrupt,
            wal_records = records,
            replayed_spans = replayed,
            skipped_spans = skipped,
            torn_wal_segments = torn,
            "trace store recovered"
        );
        Ok(Inner {
            seg_dir,
            opts,
            tuning,
            state: RwLock::new(st),
            wal,
            maintain_lock: Mutex::new(()),
            next_seq: AtomicU64::new(next_seq),
            corrupt_files: corrupt,
            _lock: dir_lock,
        })
    }

    /// Checks every span and the per-trace limit; on any refusal writes
    /// nothing. Returns once the spans are in the fsynced WAL. Returns
    /// whether the head wants a cut.
    pub fn append(&self, spans: Vec<Span>) -> Result<(TraceAppendStats, bool), TraceAppendError> {
        if spans.is_empty() {
            return Ok((TraceAppendStats::default(), false));
        }
        let now = now_ns();
        let oldest = now.saturating_sub(dur_ns(self.opts.retention_time));
        let newest = now.saturating_add(dur_ns(self.opts.max_future));
        for s in &spans {
            if s.end_ns() < oldest {
                return Err(TraceAppendError::TooOld {
                    trace: hex(&s.trace_id),
                    span: hex(&s.span_id),
                    end_ns: s.end_ns(),
                });
            }
            if s.start_ns > newest {
                return Err(TraceAppendError::TooNew {
                    trace: hex(&s.trace_id),
                    span: hex(&s.span_id),
                    start_ns: s.start_ns,
                });
            }
        }
        // Encoded before taking the lock, so concurrent appenders do this in
        // parallel; only the LSN is written inside.
        let mut payload = wal_record::encode_batch(0, &spans);
        let mut stats = TraceAppendStats::default();
        let (seq, wants_cut) = {
            let mut st = self.write();
            // New spans per trace in this request (resends of held spans and
            // repeats inside the request do not count).
            let mut adding: HashMap<TraceId, std::collections::HashSet<[u8; 8]>> = HashMap::new();
            for s in &spans {
                if !st.in_memory(&s.trace_id, &s.span_id) {
                    adding.entry(s.trace_id).or_default().insert(s.span_id);
                }
            }
            let limit = self.opts.max_spans_per_trace as u64;
            for (trace, ids) in &adding {
                let stored = st.span_count(trace);
                let total = stored + ids.len() as u64;
                if total > limit {
                    return Err(TraceAppendError::TooManySpans {
                        trace: hex(trace),
                        stored,
                        adding: ids.len() as u64,
                        total,
                        limit: self.opts.max_spans_per_trace,
                    });
                }
            }
            let lsn = st.next_lsn;
            payload[1..9].copy_from_slice(&lsn.to_le_bytes());
            // A failed write leaves the head untouched (the WAL cuts off a
            // partial record itself).
            let seq = self.wal.write(&payload, lsn as i64)?;
            st.next_lsn += 1;
            drop(payload);
            let now_i = Instant::now();
            for s in spans {
                if st.head.push(s, lsn, now_i) {
                    stats.spans += 1;
                } else {
                    stats.duplicates += 1;
                }
            }
            if self.wal.wants_rotation()
                && let Err(e) = self.wal.rotate(&wal_record::encode_header())
            {
                // The record is written; its fsync below reports a real problem.
                tracing::warn!(error = %e, "trace WAL segment rotation failed");
            }
            (seq, st.head.bytes >= self.tuning.head_max_bytes)
        };
        self.wal.sync(seq)?;
        Ok((stats, wants_cut))
    }

    /// Cuts the head (if `force`, or it is big or old) and writes every cut
    /// head into one segment, then drops the WAL segments it covers.
    pub fn cut(&self, force: bool) -> io::Result<()> {
        let _m = lock(&self.maintain_lock);
        let sealed: Vec<Arc<Head>> = {
            let mut st = self.write();
            let h = &st.head;
            let due = !h.is_empty()
                && (force
                    || h.bytes >= self.tuning.head_max_bytes
                    || h.started
                        .is_some_and(|t| t.elapsed() >= self.tuning.max_head_age));
            if due {
                let head = std::mem::take(&mut st.head);
                st.sealed.push(Arc::new(head));
                // The sealed spans' records are all in closed segments now,
                // which can go once the segment file is written.
                if let Err(e) = self.wal.rotate(&wal_record::encode_header()) {
                    tracing::warn!(error = %e, "trace WAL rotation at cut failed; retried later");
                }
            }
            st.sealed.clone()
        };
        if sealed.is_empty() {
            return Ok(());
        }
        let flushed_lsn = sealed.iter().map(|h| h.max_lsn).max().unwrap_or(0);
        let mut traces: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
        for h in &sealed {
            for (id, t) in &h.traces {
                traces
                    .entry(*id)
                    .or_default()
                    .extend(t.spans.iter().cloned());
            }
        }
        for spans in traces.values_mut() {
            spans.sort_by_key(|s| s.start_ns);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let written = segment::write(
            &self.seg_dir,
            seq,
            &traces,
            flushed_lsn,
            self.tuning.block_bytes,
            self.tuning.zstd_level,
        )
        .and_then(|path| match Segment::open(&path, seq) {
            Ok(s) => Ok(s),
            Err(e) => {
                // The heads are retried; this file must not also count on reopen.
                let _ = fs::remove_file(&path);
                Err(e)
            }
        });
        let seg = match written {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, traces = traces.len(),
                    "writing a trace segment failed; its spans stay in memory and the WAL, retrying later");
                return Err(e);
            }
        };
        tracing::debug!(file = %seg.path.display(), traces = seg.traces.len(), "trace segment written");
        {
            let mut st = self.write();
            st.sealed
                .retain(|h| !sealed.iter().any(|w| Arc::ptr_eq(w, h)));
            st.segments.insert(seq, Arc::new(seg));
        }
        self.wal.truncate_before(flushed_lsn as i64 + 1)?;
        Ok(())
    }

    pub fn remove_file_now(&self, path: &Path) -> io::Result<()> {
        data_files::remove_durably(&self.seg_dir, path)
    }

    pub fn remove_segment(&self, seq: u64) -> Option<Arc<Segment>> {
        self.write().segments.remove(&seq)
    }
}

impl Maintained for Inner {
    fn cut_due(&self) -> io::Result<()> {
        self.cut(false)
    }

    fn retention(&self) -> io::Result<()> {
        self.apply_retention().map(drop)
    }
}
