//! The store's core: open (chunk indexes, then WAL replay), append
//! (validate, log, apply, shared fsync), and the cut cycle that moves heads
//! into chunk files and lets the WAL shrink.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Instant,
};

use tokio::sync::broadcast;

use super::{
    LogAppendError, LogAppendStats, LogStoreOptions, Tuning,
    chunk_file::{self, ChunkFile, Writer},
    head::{Sealed, entry_bytes},
    index::{ChunkRef, FileEntry, Index},
    validate::validate,
    wal_record::{self, Record},
};
use crate::{
    logs::model::{LogEntry, StreamEntries},
    store::{
        clock::{dur_ns, now_ns},
        data_files,
        maintenance::Maintained,
        record_wal,
        tsdb::wal::{Wal, list_segments, segment_path},
    },
};

pub struct Inner {
    pub chunks_dir: PathBuf,
    pub wal_dir: PathBuf,
    pub opts: LogStoreOptions,
    pub tuning: Tuning,
    pub index: RwLock<Index>,
    pub wal: Wal,
    /// One cut or retention pass at a time.
    maintain_lock: Mutex<()>,
    next_file_seq: AtomicU64,
    pub tail: broadcast::Sender<Arc<Vec<StreamEntries>>>,
    /// Wakes the background thread when a head reaches the chunk size.
    pub wake: mpsc::SyncSender<()>,
    /// Chunk files skipped at open because they could not be read.
    pub corrupt_files: u64,
    /// Holds an exclusive `flock` on `<dir>/lock` while the store is open.
    _lock: fs::File,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What recovery found, for the startup log line.
#[derive(Default)]
struct Recovery {
    files: usize,
    corrupt_files: u64,
    segments: usize,
    records: u64,
    entries: u64,
    skipped_flushed: u64,
    skipped_expired: u64,
    torn: usize,
}

impl Inner {
    pub fn open(
        dir: &Path,
        opts: LogStoreOptions,
        tuning: Tuning,
        wake: mpsc::SyncSender<()>,
    ) -> io::Result<Inner> {
        let started = Instant::now();
        let data_files::StoreDirs {
            data: chunks_dir,
            wal: wal_dir,
            lock: dir_lock,
        } = data_files::open_dirs(dir, "chunks", "log directory")?;
        let mut ix = Index::default();
        let mut rec = Recovery::default();

        // Chunk files: only their indexes are read.
        let names = data_files::list(&chunks_dir, chunk_file::parse_name)?;
        let next_file_seq = names.last().map_or(1, |(s, _)| s + 1);
        for (seq, path) in names {
            match ChunkFile::open(&path, seq) {
                Ok((file, streams)) => {
                    rec.files += 1;
                    register_file(&mut ix, Arc::new(file), &streams, None);
                }
                Err(e) => {
                    rec.corrupt_files += 1;
                    data_files::set_aside(&path, chunk_file::EXT, "log chunk file", &e)?;
                }
            }
        }

        // WAL replay.
        let horizon = now_ns().saturating_sub(dur_ns(opts.retention_time));
        let mut existing = std::collections::BTreeMap::new();
        let mut next_lsn = 1u64;
        for st in ix.streams.values() {
            next_lsn = next_lsn.max(st.flushed_lsn + 1);
        }
        let now = Instant::now();
        for seg in list_segments(&wal_dir)? {
            let path = segment_path(&wal_dir, seg);
            let mut seg_max = i64::MIN;
            let mut seg_min: Option<u64> = None;
            let torn = record_wal::replay_segment(&path, "log", wal_record::decode_record, |r| {
                let Record::Batch { lsn, streams } = r else {
                    return;
                };
                rec.records += 1;
                next_lsn = next_lsn.max(lsn + 1);
                seg_max = seg_max.max(lsn as i64);
                seg_min = Some(seg_min.map_or(lsn, |m: u64| m.min(lsn)));
                replay_batch(&mut ix, &mut rec, lsn, streams, horizon, now);
            })?;
            rec.segments += 1;
            rec.torn += usize::from(torn);
            existing.insert(seg, seg_max);
            ix.seg_first_lsn.push_back(seg_min.unwrap_or(next_lsn));
        }
        ix.next_lsn = next_lsn;
        ix.seg_first_lsn.push_back(next_lsn);
        let wal = Wal::create(
            &wal_dir,
            tuning.wal_segment_bytes,
            existing,
            &wal_record::encode_header(),
        )?;
        tracing::info!(
            dir = %dir.display(),
            duration_ms = started.elapsed().as_millis() as u64,
            streams = ix.streams.len(),
            chunk_files = rec.files,
            corrupt_chunk_files = rec.corrupt_files,
            wal_segments = rec.segments,
            wal_records = rec.records,
            replayed_entries = rec.entries,
            skipped_already_flushed = rec.skipped_flushed,
            skipped_expired = rec.skipped_expired,
            torn_segments = rec.torn,
            "log store recovered"
        );
        let (tail, _) = broadcast::channel(1024);
        Ok(Inner {
            chunks_dir,
            wal_dir,
            opts,
            tuning,
            index: RwLock::new(ix),
            wal,
            maintain_lock: Mutex::new(()),
            next_file_seq: AtomicU64::new(next_file_seq),
            tail,
            wake,
            corrupt_files: rec.corrupt_files,
            _lock: dir_lock,
        })
    }

    pub fn append(
        &self,
        mut streams: Vec<StreamEntries>,
    ) -> Result<LogAppendStats, LogAppendError> {
        let now = now_ns();
        validate(
            &streams,
            now.saturating_sub(dur_ns(self.opts.retention_time)),
            now.saturating_add(dur_ns(self.opts.max_future)),
        )?;
        streams.retain(|s| !s.entries.is_empty());
        if streams.is_empty() {
            return Ok(LogAppendStats::default());
        }
        // Encoded and compressed before taking the lock, so concurrent
        // appenders do this work in parallel; only the LSN is set inside.
        let mut payload = wal_record::encode_batch(&streams, self.tuning.wal_zstd);
        let tailing = self.tail.receiver_count() > 0;
        let mut stats = LogAppendStats::default();
        let mut appended: Vec<StreamEntries> = Vec::new();
        let mut wake = false;
        let seq = {
            let mut ix = self.write();
            let mut new: std::collections::HashSet<&crate::model::Labels> =
                std::collections::HashSet::new();
            for s in &streams {
                let active = ix
                    .lookup(&s.labels)
                    .and_then(|id| ix.streams.get(&id))
                    .is_some_and(|st| st.active);
                if !active {
                    new.insert(&s.labels);
                }
            }
            if ix.active + new.len() > self.opts.max_streams {
                return Err(LogAppendError::TooManyStreams {
                    limit: self.opts.max_streams,
                });
            }
            let lsn = ix.next_lsn;
            wal_record::set_lsn(&mut payload, lsn);
            // A failed write leaves the index untouched (the WAL cuts off a
            // partial record itself).
            let seq = self.wal.write(&payload, lsn as i64)?;
            ix.next_lsn += 1;
            drop(payload);
            let now_i = Instant::now();
            for s in streams {
                let id = ix.get_or_create(&s.labels);
                ix.set_active(id, now_i);
                let Some(st) = ix.streams.get_mut(&id) else {
                    continue;
                };
                let mut kept = Vec::new();
                let (mut n, mut bytes) = (0u64, 0u64);
                for e in s.entries {
                    let (ts, b) = (e.ts_ns, entry_bytes(&e));
                    let copy = tailing.then(|| e.clone());
                    if st.head.push(e, lsn) {
                        st.widen(ts, ts);
                        n += 1;
                        bytes += b;
                        kept.extend(copy);
                    } else {
                        stats.duplicates += 1;
                    }
                }
                wake |= st.head.raw_bytes >= self.tuning.chunk_target_bytes as u64;
                stats.entries += n;
                stats.bytes += bytes;
                ix.entries += n;
                ix.raw_bytes += bytes;
                ix.head_bytes += bytes;
                if tailing && !kept.is_empty() {
                    appended.push(StreamEntries {
                        labels: s.labels,
                        entries: kept,
                    });
                }
            }
            wake |= ix.head_bytes > self.tuning.max_head_bytes;
            if self.wal.wants_rotation() {
                match self.wal.rotate(&wal_record::encode_header()) {
                    Ok(()) => {
                        let first = ix.next_lsn;
                        ix.seg_first_lsn.push_back(first);
                    }
                    // The record is written; its fsync below reports a real
                    // problem. Rotation is retried on the next append.
                    Err(e) => tracing::warn!(error = %e, "log WAL segment rotation failed"),
                }
            }
            seq
        };
        self.wal.sync(seq)?;
        if wake {
            let _ = self.wake.try_send(());
        }
        if !appended.is_empty() {
            // No receivers left is fine: tailing is best effort.
            let _ = self.tail.send(Arc::new(appended));
        }
        Ok(stats)
    }

    /// Cuts heads (all of them with `force`) into a chunk file, then drops
    /// WAL segments no longer needed.
    pub fn cut(&self, force: bool) -> io::Result<()> {
        let _m = lock(&self.maintain_lock);
        let now = Instant::now();
        let target = self.tuning.chunk_target_bytes as u64;
        let batch: Vec<(u64, Arc<Sealed>)> = {
            let mut ix = self.write();
            // When the WAL is long, cut every stream still holding data from
            // its older half so those segments can go.
            let segs = ix.seg_first_lsn.len();
            let pin_cutoff = if segs > self.tuning.max_wal_segments {
                ix.seg_first_lsn
                    .get(segs - self.tuning.max_wal_segments / 2 - 1)
                    .copied()
                    .unwrap_or(0)
            } else {
                0
            };
            // Over the memory budget: the biggest heads go until half of it is left.
            let mut big = std::collections::HashSet::new();
            if ix.head_bytes > self.tuning.max_head_bytes {
                let mut sizes: Vec<(u64, u64)> = ix
                    .streams
                    .iter()
                    .filter(|(_, s)| !s.head.is_empty())
                    .map(|(id, s)| (s.head.raw_bytes, *id))
                    .collect();
                sizes.sort_unstable_by(|a, b| b.cmp(a));
                let mut left = ix.head_bytes;
                for (bytes, id) in sizes {
                    if left <= self.tuning.max_head_bytes / 2 {
                        break;
                    }
                    left -= bytes.min(left);
                    big.insert(id);
                }
            }
            let mut batch = std::mem::take(&mut ix.unwritten);
            let mut ids: Vec<u64> = ix.streams.keys().copied().collect();
            ids.sort_unstable();
            let mut cut_bytes = 0;
            for id in ids {
                let Some(st) = ix.streams.get_mut(&id) else {
                    continue;
                };
                let h = &st.head;
                if h.is_empty() {
                    continue;
                }
                let old = h
                    .started
                    .is_some_and(|t| now.duration_since(t) >= self.tuning.max_chunk_age);
                if force
                    || h.raw_bytes >= target
                    || old
                    || h.min_lsn < pin_cutoff
                    || big.contains(&id)
                {
                    cut_bytes += h.raw_bytes;
                    let sealed = Arc::new(st.head.seal());
                    st.sealed.push(sealed.clone());
                    batch.push((id, sealed));
                }
            }
            ix.head_bytes = ix.head_bytes.saturating_sub(cut_bytes);
            batch
        };
        if !batch.is_empty()
            && let Err(e) = self.write_file(&batch)
        {
            tracing::error!(error = %e, chunks = batch.len(),
                "writing a log chunk file failed; its entries stay in memory and the WAL, retrying later");
            self.write().unwritten.extend(batch);
            return Err(e);
        }
        self.truncate_wal()
    }

    fn write_file(&self, batch: &[(u64, Arc<Sealed>)]) -> io::Result<()> {
        let seq = self.next_file_seq.fetch_add(1, Ordering::Relaxed);
        let labels: Vec<Option<crate::model::Labels>> = {
            let ix = self.read();
            batch
                .iter()
                .map(|(id, _)| ix.streams.get(id).map(|s| s.labels.clone()))
                .collect()
        };
        let mut w = Writer::create(&self.chunks_dir, seq)?;
        let target = self.tuning.chunk_target_bytes as u64;
        let res = (|| {
            for ((_, sealed), labels) in batch.iter().zip(&labels) {
                let Some(labels) = labels else { continue };
                w.begin_stream(labels.clone(), sealed.max_lsn);
                for piece in split(&sealed.entries, target) {
                    w.add_chunk(piece, self.tuning.chunk_zstd_level)?;
                }
            }
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = res {
            w.abandon();
            return Err(e);
        }
        let (path, _) = w.finish()?;
        let (file, streams) = match ChunkFile::open(&path, seq) {
            Ok(x) => x,
            Err(e) => {
                // The batch is retried; the file must not also count on reopen.
                let _ = self.remove_file_now(&path);
                return Err(e);
            }
        };
        let mut ix = self.write();
        register_file(&mut ix, Arc::new(file), &streams, Some(batch));
        tracing::debug!(file = %path.display(), streams = streams.len(), "log chunk file written");
        Ok(())
    }

    /// Deletes WAL segments whose batches are all in chunk files.
    pub fn truncate_wal(&self) -> io::Result<()> {
        let needed = self.read().wal_needed_from();
        let removed = self.wal.truncate_before(needed as i64)?;
        if removed > 0 {
            let live = list_segments(&self.wal_dir)?.len();
            let mut ix = self.write();
            while ix.seg_first_lsn.len() > live.max(1) {
                ix.seg_first_lsn.pop_front();
            }
        }
        Ok(())
    }

    pub fn expire_active(&self) {
        self.write()
            .expire_active(self.tuning.max_chunk_age, Instant::now());
    }

    pub fn remove_file_now(&self, path: &Path) -> io::Result<()> {
        data_files::remove_durably(&self.chunks_dir, path)
    }
}

impl Maintained for Inner {
    fn cut_due(&self) -> io::Result<()> {
        self.cut(false)
    }

    fn retention(&self) -> io::Result<()> {
        self.expire_active();
        self.apply_retention().map(drop)
    }
}

/// Applies one replayed WAL batch to the heads.
fn replay_batch(
    ix: &mut Index,
    rec: &mut Recovery,
    lsn: u64,
    streams: Vec<StreamEntries>,
    horizon: i64,
    now: Instant,
) {
    for s in streams {
        let id = ix.get_or_create(&s.labels);
        let Some(st) = ix.streams.get_mut(&id) else {
            continue;
        };
        if lsn <= st.flushed_lsn {
            rec.skipped_flushed += s.entries.len() as u64;
            continue;
        }
        let (mut n, mut bytes) = (0u64, 0u64);
        for e in s.entries {
            if e.ts_ns < horizon {
                rec.skipped_expired += 1;
                continue;
            }
            let (ts, b) = (e.ts_ns, entry_bytes(&e));
            if st.head.push(e, lsn) {
                st.widen(ts, ts);
                n += 1;
                bytes += b;
            }
        }
        rec.entries += n;
        ix.entries += n;
        ix.raw_bytes += bytes;
        ix.head_bytes += bytes;
        if n > 0 {
            ix.set_active(id, now);
        }
    }
}

/// Splits sorted entries into runs of about `target` raw bytes, so one
/// huge push to a stream does not make a chunk too big to read at once.
fn split(entries: &[LogEntry], target: u64) -> Vec<&[LogEntry]> {
    let mut out = Vec::new();
    let (mut start, mut acc) = (0usize, 0u64);
    for (i, e) in entries.iter().enumerate() {
        acc += entry_bytes(e) + 16;
        if acc >= target {
            out.push(&entries[start..=i]);
            start = i + 1;
            acc = 0;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// Adds a chunk file's chunks to the index. With `written` (the batch just
/// written, in index order), the matching sealed chunks are replaced.
fn register_file(
    ix: &mut Index,
    file: Arc<ChunkFile>,
    streams: &[chunk_file::IndexStream],
    written: Option<&[(u64, Arc<Sealed>)]>,
) {
    let mut ids = Vec::with_capacity(streams.len());
    let mut written = written.map(|w| w.iter());
    for s in streams {
        let id = ix.get_or_create(&s.labels);
        ids.push(id);
        let Some(st) = ix.streams.get_mut(&id) else {
            continue;
        };
        for c in &s.chunks {
            st.chunks.push(ChunkRef {
                file: file.clone(),
                meta: *c,
            });
            st.widen(c.min_ts, c.max_ts);
        }
        st.flushed_lsn = st.flushed_lsn.max(s.flushed_lsn);
        match written.as_mut() {
            // Fresh from a cut: entries were counted when appended.
            Some(w) => {
                // Streams were written in batch order, skipping none that
                // still existed; find this one's sealed chunk.
                for (wid, sealed) in w.by_ref() {
                    if *wid == id {
                        st.sealed.retain(|x| !Arc::ptr_eq(x, sealed));
                        break;
                    }
                }
            }
            None => {
                let n: u64 = s.chunks.iter().map(|c| c.count).sum();
                let b: u64 = s.chunks.iter().map(|c| c.raw_bytes).sum();
                ix.entries += n;
                ix.raw_bytes += b;
            }
        }
    }
    ix.file_bytes += file.size;
    ix.files.insert(file.seq, FileEntry { file, streams: ids });
}
