//! Write-ahead log: numbered segment files of CRC-framed records, with group
//! commit (concurrent appenders share one fsync).
//!
//! Every segment starts with a record defining all series live in the head
//! at the time it was created, so any segment can be deleted once all of its
//! samples are in blocks without breaking references from later segments.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::encoding::{DResult, Reader, put_str, put_uvarint, put_varint};
use crate::model::{Labels, MetricMetadata, Sample};

pub const REC_BATCH: u8 = 1;
pub const REC_METADATA: u8 = 2;
pub const REC_CUT: u8 = 3;
/// Frame header: u32 payload length + u32 CRC32 of the payload.
const FRAME: usize = 8;
/// Largest record payload accepted on replay (guards against a garbage length).
const MAX_RECORD: usize = 1 << 30;

/// A decoded WAL record.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// New series (id, labels) then samples per series id.
    Batch {
        series: Vec<(u64, Labels)>,
        samples: Vec<(u64, Vec<Sample>)>,
    },
    Metadata(Vec<(String, MetricMetadata)>),
    /// Samples older than this were moved into blocks (possibly since
    /// deleted by retention): replay must not bring them back.
    Cut(i64),
}

pub fn encode_cut(t: i64) -> Vec<u8> {
    let mut b = vec![REC_CUT];
    put_varint(&mut b, t);
    b
}

pub fn encode_batch(series: &[(u64, Labels)], samples: &[(u64, &[Sample])]) -> Vec<u8> {
    // Sized up front (a sample is at most 10 + 8 bytes, usually 9 or 10): growing
    // a multi-kilobyte record by doubling copied it several times per write.
    let n: usize = samples.iter().map(|(_, s)| s.len()).sum();
    let mut b = Vec::with_capacity(16 + series.len() * 64 + samples.len() * 8 + n * 10);
    b.push(REC_BATCH);
    put_uvarint(&mut b, series.len() as u64);
    for (id, labels) in series {
        put_uvarint(&mut b, *id);
        put_uvarint(&mut b, labels.len() as u64);
        for (k, v) in labels.iter() {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
    }
    put_uvarint(&mut b, samples.len() as u64);
    for (id, ss) in samples {
        put_uvarint(&mut b, *id);
        put_uvarint(&mut b, ss.len() as u64);
        let mut prev = 0i64;
        for s in *ss {
            put_varint(&mut b, s.t.wrapping_sub(prev));
            prev = s.t;
            b.extend_from_slice(&s.v.to_bits().to_le_bytes());
        }
    }
    b
}

pub fn encode_metadata(md: &[(String, MetricMetadata)]) -> Vec<u8> {
    let mut b = vec![REC_METADATA];
    put_uvarint(&mut b, md.len() as u64);
    for (name, m) in md {
        put_str(&mut b, name);
        put_str(&mut b, &m.kind);
        put_str(&mut b, &m.help);
        put_str(&mut b, &m.unit);
    }
    b
}

pub fn decode_record(payload: &[u8]) -> DResult<Record> {
    let mut r = Reader::new(payload);
    let rec = match r.u8()? {
        REC_BATCH => {
            let n = r.len(r.remaining())?;
            let mut series = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()?;
                let nl = r.len(r.remaining())?;
                let mut pairs = Vec::with_capacity(nl);
                for _ in 0..nl {
                    pairs.push((r.str()?.to_string(), r.str()?.to_string()));
                }
                series.push((id, Labels::new(pairs)));
            }
            let n = r.len(r.remaining())?;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.uvarint()?;
                let ns = r.len(r.remaining() / 9)?;
                let mut ss = Vec::with_capacity(ns);
                let mut t = 0i64;
                for _ in 0..ns {
                    t = t.wrapping_add(r.varint()?);
                    ss.push(Sample {
                        t,
                        v: f64::from_bits(r.u64_le()?),
                    });
                }
                samples.push((id, ss));
            }
            Record::Batch { series, samples }
        }
        REC_METADATA => {
            let n = r.len(r.remaining())?;
            let mut md = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str()?.to_string();
                let kind = r.str()?.to_string();
                let help = r.str()?.to_string();
                let unit = r.str()?.to_string();
                md.push((name, MetricMetadata { kind, help, unit }));
            }
            Record::Metadata(md)
        }
        REC_CUT => Record::Cut(r.varint()?),
        t => return r.err(format!("unknown record type {t}")),
    };
    if !r.is_empty() {
        return r.err("trailing bytes in record");
    }
    Ok(rec)
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Segment numbers present in `dir`, ascending. Other files are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segs = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        if let Some(n) = name
            .to_str()
            .filter(|s| s.len() == 8)
            .and_then(|s| s.parse::<u64>().ok())
        {
            segs.push(n);
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

/// What reading one segment found.
pub struct SegmentRead {
    pub records: Vec<Record>,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
    /// Why reading stopped early (torn or corrupt tail), if it did.
    pub torn: Option<String>,
}

/// Reads all complete, checksum-valid records; stops at the first bad one.
pub fn read_segment(path: &Path) -> io::Result<SegmentRead> {
    let data = fs::read(path)?;
    let mut pos = 0usize;
    let mut records = Vec::new();
    let mut torn = None;
    while pos < data.len() {
        if data.len() - pos < FRAME {
            torn = Some(format!(
                "{} trailing bytes shorter than a record header",
                data.len() - pos
            ));
            break;
        }
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        if len == 0 || len > MAX_RECORD || data.len() - pos - FRAME < len {
            torn = Some(format!(
                "record at byte {pos} has length {len}, {} bytes remain",
                data.len() - pos - FRAME
            ));
            break;
        }
        let payload = &data[pos + FRAME..pos + FRAME + len];
        if crc32fast::hash(payload) != crc {
            torn = Some(format!("record at byte {pos} fails its checksum"));
            break;
        }
        match decode_record(payload) {
            Ok(r) => records.push(r),
            Err(e) => {
                torn = Some(format!("record at byte {pos} does not decode: {e}"));
                break;
            }
        }
        pos += FRAME + len;
    }
    Ok(SegmentRead {
        records,
        valid_len: pos as u64,
        torn,
    })
}

struct WalState {
    file: Arc<File>,
    seg: u64,
    size: u64,
    /// Records written (not necessarily synced); the group-commit sequence.
    written: u64,
    /// Newest sample time per segment (i64::MIN when it holds none).
    seg_max_t: BTreeMap<u64, i64>,
    /// Set after a failed write or fsync: what was written is in doubt.
    broken: Option<String>,
}

struct SyncState {
    synced: u64,
    /// fsyncs issued by `sync` (shared by all records they covered).
    fsyncs: u64,
}

pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<WalState>,
    sync: Mutex<SyncState>,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(FRAME + payload.len());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wal {
    /// Opens a new segment after `existing` (the replayed ones, with their
    /// newest sample times); `first_record` (the live series table) starts it.
    pub fn create(
        dir: &Path,
        segment_bytes: u64,
        existing: BTreeMap<u64, i64>,
        first_record: &[u8],
    ) -> io::Result<Wal> {
        let seg = existing.keys().next_back().map_or(1, |n| n + 1);
        let (file, size) = new_segment(dir, seg, first_record)?;
        let mut seg_max_t = existing;
        seg_max_t.insert(seg, i64::MIN);
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            state: Mutex::new(WalState {
                file: Arc::new(file),
                seg,
                size,
                written: 0,
                seg_max_t,
                broken: None,
            }),
            sync: Mutex::new(SyncState {
                synced: 0,
                fsyncs: 0,
            }),
        })
    }

    /// Writes one record (to the page cache) and returns its sequence
    /// number for [`Wal::sync`]. `max_t` is its newest sample time.
    pub fn write(&self, payload: &[u8], max_t: i64) -> io::Result<u64> {
        let mut st = lock(&self.state);
        if let Some(why) = &st.broken {
            return Err(io::Error::other(format!(
                "WAL unusable after an earlier failure ({why}); restart the collector"
            )));
        }
        let framed = frame(payload);
        if let Err(e) = (&*st.file).write_all(&framed) {
            // A partial record (e.g. disk full) is cut off so the log stays
            // well-formed; only if that fails too is the log unusable.
            if let Err(e2) = st.file.set_len(st.size) {
                st.broken = Some(format!(
                    "write to segment {}: {e}; truncating the partial record: {e2}",
                    st.seg
                ));
            }
            return Err(e);
        }
        st.size += framed.len() as u64;
        st.written += 1;
        let seg = st.seg;
        let e = st.seg_max_t.entry(seg).or_insert(i64::MIN);
        *e = (*e).max(max_t);
        Ok(st.written)
    }

    /// Returns once record `seq` is on stable storage. Callers that arrive
    /// while an fsync is running wait for it, then one of them syncs for all.
    pub fn sync(&self, seq: u64) -> io::Result<()> {
        let mut sy = lock(&self.sync);
        if sy.synced >= seq {
            return Ok(());
        }
        let (target, file) = {
            let st = lock(&self.state);
            if let Some(why) = &st.broken {
                return Err(io::Error::other(format!(
                    "WAL unusable after an earlier failure ({why})"
                )));
            }
            (st.written, st.file.clone())
        };
        if let Err(e) = file.sync_data() {
            lock(&self.state).broken = Some(format!("fsync: {e}"));
            return Err(e);
        }
        sy.synced = target;
        sy.fsyncs += 1;
        Ok(())
    }

    /// (records written, fsyncs issued by group commit) since open.
    pub fn counters(&self) -> (u64, u64) {
        let fsyncs = lock(&self.sync).fsyncs;
        (lock(&self.state).written, fsyncs)
    }

    /// Whether the current segment is over its size budget.
    pub fn wants_rotation(&self) -> bool {
        lock(&self.state).size >= self.segment_bytes
    }

    /// Closes the current segment (fsynced) and starts a new one with `first_record`.
    pub fn rotate(&self, first_record: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        if let Some(why) = &st.broken {
            return Err(io::Error::other(format!(
                "WAL unusable after an earlier failure ({why})"
            )));
        }
        // Everything written so far becomes durable here, so sync() callers
        // holding older sequence numbers are covered by the next sync.
        st.file.sync_data()?;
        let seg = st.seg + 1;
        let (file, size) = new_segment(&self.dir, seg, first_record)?;
        st.file = Arc::new(file);
        st.seg = seg;
        st.size = size;
        st.seg_max_t.insert(seg, i64::MIN);
        Ok(())
    }

    /// Deletes closed segments whose samples are all older than `t` (in blocks).
    pub fn truncate_before(&self, t: i64) -> io::Result<usize> {
        let victims: Vec<u64> = {
            let st = lock(&self.state);
            st.seg_max_t
                .iter()
                .filter(|(n, m)| **n != st.seg && **m < t)
                .map(|(n, _)| *n)
                .collect()
        };
        for n in &victims {
            match fs::remove_file(segment_path(&self.dir, *n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            lock(&self.state).seg_max_t.remove(n);
        }
        if !victims.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(victims.len())
    }

    /// Total bytes in WAL segments.
    pub fn size_bytes(&self) -> u64 {
        let segs: Vec<u64> = lock(&self.state).seg_max_t.keys().copied().collect();
        segs.iter()
            .filter_map(|n| fs::metadata(segment_path(&self.dir, *n)).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn new_segment(dir: &Path, seg: u64, first_record: &[u8]) -> io::Result<(File, u64)> {
    let path = segment_path(dir, seg);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    let framed = frame(first_record);
    file.write_all(&framed)?;
    file.sync_data()?;
    fsync_dir(dir)?;
    Ok((file, framed.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tail_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        let s = [
            Sample { t: 5, v: 1.0 },
            Sample {
                t: 20,
                v: f64::from_bits(crate::model::STALE_NAN_BITS),
            },
        ];
        let first = encode_batch(&[(1, l.clone())], &[]);
        let wal = Wal::create(dir.path(), 1 << 20, BTreeMap::new(), &first).unwrap();
        let seq = wal.write(&encode_batch(&[], &[(1, &s)]), 20).unwrap();
        wal.sync(seq).unwrap();
        let md = vec![(
            "up".to_string(),
            MetricMetadata {
                kind: "gauge".into(),
                help: "h".into(),
                unit: String::new(),
            },
        )];
        let seq = wal.write(&encode_metadata(&md), i64::MIN).unwrap();
        wal.sync(seq).unwrap();
        let path = segment_path(dir.path(), 1);
        let read = read_segment(&path).unwrap();
        assert!(read.torn.is_none());
        assert_eq!(read.records.len(), 3);
        match &read.records[1] {
            Record::Batch { samples, .. } => {
                assert_eq!(samples[0].1[1].v.to_bits(), crate::model::STALE_NAN_BITS);
            }
            r => panic!("unexpected {r:?}"),
        }
        assert_eq!(read.records[2], Record::Metadata(md));
        // Cut into the last record: the first two remain, the tail is reported.
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let read = read_segment(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        assert!(read.torn.is_some());
    }
}
