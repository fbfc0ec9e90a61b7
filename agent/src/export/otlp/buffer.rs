//! The disk queue of unsent batches: every snapshot is written here first, sent
//! from here oldest first, and deleted once the collector acknowledges it. It
//! survives the collector being away and the agent restarting.
//!
//! Several queues use it, each in its own directory with its own [`Kind`]: metric
//! snapshots in `--buffer-dir`, log batches in `--buffer-dir/logs` (problem
//! records in `problems`, of kind logs) and spans in `--buffer-dir/traces`. They differ
//! in what happens at the bound ([`Overflow`]): metrics are bounded by
//! `--buffer-max-bytes` and past it the oldest batch not being sent is deleted and
//! counted (`sonde_export_dropped_*{reason="buffer_full"}`); logs never drop: the
//! log tailer asks [`Buffer::over_bound`] and stops reading instead (the log files
//! are the buffer).
//!
//! A plain directory of files rather than an embedded queue crate: one file per
//! batch makes deletion on ack, dropping the oldest and recovering from a torn
//! write each a single file operation, and the format stays a few lines long.
//!
//! # On-disk format (version 2)
//!
//! One file per batch in the buffer directory, named `<seq>.batch` with `seq` a
//! 20-digit zero-padded decimal `u64` that grows by one per batch and continues
//! after a restart (max found + 1), so name order is queue order. A file is
//! written as `<seq>.batch.tmp`, fsynced, then renamed (and the directory
//! fsynced), so a `.batch` file is complete unless the disk lied; a `.tmp` left
//! by a crash is a torn write.
//!
//! ```text
//! offset size  field
//! 0      4     magic "SNDQ"
//! 4      1     version = 2 (version 1 files, with byte 5 zero, are still read)
//! 5      1     payload kind: 0 = metrics, 1 = logs, 2 = traces
//! 6      2     reserved, zero
//! 8      8     data points (metrics) or log records (logs) in the batch, u64 LE
//! 16     4     payload length in bytes, u32 little endian
//! 20     4     CRC-32 (IEEE) of bytes 0..20 followed by the payload, u32 LE
//! 24     len   payload: an OTLP ExportMetricsServiceRequest (kind 0),
//!              ExportLogsServiceRequest (kind 1) or ExportTraceServiceRequest
//!              (kind 2), protobuf encoded
//! ```
//!
//! At startup every file is checked (size, magic, version, kind, length, CRC). A file
//! that fails, and every `.tmp`, is deleted, counted as
//! `sonde_export_dropped_batches_total{reason="corrupt"}` (for logs
//! `sonde_logs_export_dropped_batches_total`) and logged with its path. Other files
//! and directories in the directory are left alone.

use std::{
    collections::{BTreeSet, VecDeque},
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use tracing::{error, info, warn};

use super::stats::{DropReason, ExportStats};

const MAGIC: &[u8; 4] = b"SNDQ";
const VERSION: u8 = 2;
const HEADER_LEN: usize = 24;
const SUFFIX: &str = ".batch";
const TMP_SUFFIX: &str = ".batch.tmp";

/// What a queue's payloads are: byte 5 of the header, and the gRPC service they go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Metrics = 0,
    Logs = 1,
    Traces = 2,
}

/// What [`Buffer::push`] does past the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Delete the oldest batches not in flight, counted as `buffer_full`.
    DropOldest,
    /// Keep everything; the producer checks [`Buffer::over_bound`] and waits.
    Block,
}

/// A batch handed to the sender; it stays on disk until [`Buffer::ack`] or [`Buffer::reject`].
#[derive(Debug)]
pub struct Pending {
    pub seq: u64,
    pub points: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    /// File size, header included: what the bound counts.
    size: u64,
    points: u64,
}

#[derive(Debug)]
pub struct Buffer {
    dir: PathBuf,
    max_bytes: u64,
    kind: Kind,
    overflow: Overflow,
    queue: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
    /// The batches the sender holds (several when it pipelines requests): never
    /// evicted, so an ack never refers to a deleted file.
    in_flight: BTreeSet<u64>,
    stats: ExportStats,
}

impl Buffer {
    /// Opens (creating it if needed) the buffer in `dir`, keeping the valid batches an
    /// earlier run left. Errors name the directory.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        kind: Kind,
        overflow: Overflow,
        stats: ExportStats,
    ) -> io::Result<Buffer> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
        fs::create_dir_all(dir).map_err(named)?;
        // Fail at startup, naming the directory, rather than drop every snapshot later.
        let probe = dir.join(".write-test");
        fs::write(&probe, b"")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(named)?;
        let mut queue = Vec::new();
        for entry in fs::read_dir(dir).map_err(named)? {
            let entry = entry.map_err(named)?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(TMP_SUFFIX) {
                discard_corrupt(&stats, &path, "torn write (unfinished .tmp file)");
                continue;
            }
            let Some(seq) = name.strip_suffix(SUFFIX).and_then(parse_seq) else {
                continue;
            };
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode(&b, kind).map(|(points, _)| (points, b.len())))
            {
                Ok((points, size)) => queue.push(Entry {
                    seq,
                    size: size as u64,
                    points,
                }),
                Err(why) => discard_corrupt(&stats, &path, &why),
            }
        }
        queue.sort_by_key(|e| e.seq);
        let next_seq = queue.last().map_or(1, |e| e.seq + 1);
        let mut buffer = Buffer {
            dir: dir.to_path_buf(),
            max_bytes,
            kind,
            overflow,
            bytes: queue.iter().map(|e| e.size).sum(),
            queue: queue.into(),
            next_seq,
            in_flight: BTreeSet::new(),
            stats,
        };
        if !buffer.queue.is_empty() {
            info!(dir = %dir.display(), batches = buffer.queue.len(), bytes = buffer.bytes, "unsent batches from an earlier run will be sent first");
        }
        buffer.evict();
        buffer.publish();
        Ok(buffer)
    }

    /// Appends a batch of `points` data points. Then, past the bound, drops the oldest.
    pub fn push(&mut self, payload: &[u8], points: u64) -> io::Result<()> {
        let seq = self.next_seq;
        let file = encode(payload, points, self.kind)?;
        let path = self.path(seq);
        let tmp = self.dir.join(format!("{seq:020}{TMP_SUFFIX}"));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&file)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename itself must survive a crash too.
            fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
        }
        self.next_seq += 1;
        self.bytes += file.len() as u64;
        self.queue.push_back(Entry {
            seq,
            size: file.len() as u64,
            points,
        });
        self.evict();
        self.publish();
        Ok(())
    }

    /// The oldest batch not already handed out, read back from disk; a file that
    /// went bad since is dropped (counted and logged) and the next one tried. The
    /// batch counts as in flight until [`Buffer::ack`], [`Buffer::reject`] or
    /// [`Buffer::release`].
    pub fn next(&mut self) -> Option<Pending> {
        while let Some(front) = self.queue.iter().find(|e| !self.in_flight.contains(&e.seq)) {
            let (seq, path) = (front.seq, self.path(front.seq));
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|mut b| {
                    let points = decode(&b, self.kind)?.0;
                    // The payload is the file minus its header: no second copy.
                    b.drain(..HEADER_LEN);
                    Ok((points, b))
                }) {
                Ok((points, payload)) => {
                    self.in_flight.insert(seq);
                    return Some(Pending {
                        seq,
                        points,
                        payload,
                    });
                }
                Err(why) => {
                    discard_corrupt(&self.stats, &path, &why);
                    self.forget(seq);
                }
            }
        }
        None
    }

    /// The collector has `seq`: delete it.
    pub fn ack(&mut self, seq: u64) {
        if let Some(entry) = self.forget(seq) {
            self.stats.sent(entry.points);
            self.delete(seq);
        }
        self.publish();
    }

    /// `seq` can never be sent: delete it and count it under `reason`.
    pub fn reject(&mut self, seq: u64, reason: DropReason) {
        if let Some(entry) = self.forget(seq) {
            self.stats.dropped(reason, 1, entry.points);
            self.delete(seq);
        }
        self.publish();
    }

    /// Batches handed out and not yet acked or rejected.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when the queue holds more than its bound: a [`Overflow::Block`]
    /// producer waits until the sender has made room.
    pub fn over_bound(&self) -> bool {
        self.bytes > self.max_bytes
    }

    /// Drops the oldest batches not in flight until the buffer fits its bound.
    fn evict(&mut self) {
        if self.overflow == Overflow::Block {
            return;
        }
        while self.bytes > self.max_bytes {
            let Some(i) = self
                .queue
                .iter()
                .position(|e| !self.in_flight.contains(&e.seq))
            else {
                break;
            };
            let Some(entry) = self.queue.remove(i) else {
                break;
            };
            self.bytes -= entry.size;
            self.stats.dropped(DropReason::BufferFull, 1, entry.points);
            warn!(
                file = %self.path(entry.seq).display(),
                points = entry.points,
                max_bytes = self.max_bytes,
                "export buffer full: dropped the oldest unsent batch"
            );
            self.delete(entry.seq);
        }
    }

    fn forget(&mut self, seq: u64) -> Option<Entry> {
        self.in_flight.remove(&seq);
        let i = self.queue.iter().position(|e| e.seq == seq)?;
        let entry = self.queue.remove(i)?;
        self.bytes -= entry.size;
        Some(entry)
    }

    fn delete(&self, seq: u64) {
        let path = self.path(seq);
        if let Err(e) = fs::remove_file(&path) {
            // It would come back after a restart and be sent twice; say so.
            error!(file = %path.display(), "cannot delete a finished batch: {e}");
        }
    }

    fn publish(&self) {
        self.stats.buffered(self.queue.len(), self.bytes);
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }
}

fn parse_seq(s: &str) -> Option<u64> {
    (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn discard_corrupt(stats: &ExportStats, path: &Path, why: &str) {
    warn!(file = %path.display(), "skipping a corrupt buffered batch ({why}); deleted");
    stats.dropped(DropReason::Corrupt, 1, 0);
    if let Err(e) = fs::remove_file(path) {
        error!(file = %path.display(), "cannot delete a corrupt buffered batch: {e}");
    }
}

fn encode(payload: &[u8], points: u64, kind: Kind) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("batch of {} bytes is too large", payload.len()),
        )
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, kind as u8, 0, 0]);
    out.extend_from_slice(&points.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Checks a whole file of `kind`; returns its point count and payload, or why it is bad.
fn decode(file: &[u8], kind: Kind) -> Result<(u64, &[u8]), String> {
    let Some((header, payload)) = file.split_at_checked(HEADER_LEN) else {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            file.len()
        ));
    };
    if &header[0..4] != MAGIC {
        return Err("bad magic".into());
    }
    if header[4] != VERSION && header[4] != 1 {
        return Err(format!("unknown version {}", header[4]));
    }
    if header[5] != kind as u8 {
        return Err(format!(
            "payload kind {} in a queue of kind {}",
            header[5], kind as u8
        ));
    }
    let field =
        |at: usize| -> [u8; 4] { [header[at], header[at + 1], header[at + 2], header[at + 3]] };
    let points = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    let len = u32::from_le_bytes(field(16)) as usize;
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        ));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..20]);
    crc.update(payload);
    if crc.finalize() != u32::from_le_bytes(field(20)) {
        return Err("checksum mismatch".into());
    }
    Ok((points, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: u64) -> (Buffer, ExportStats) {
        let stats = ExportStats::default();
        let b = Buffer::open(dir, max, Kind::Metrics, Overflow::DropOldest, stats.clone());
        (b.unwrap(), stats)
    }

    fn drain(b: &mut Buffer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = b.next() {
            out.push(p.payload);
            b.ack(p.seq);
        }
        out
    }

    #[test]
    fn keeps_order_across_reopen_and_deletes_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, _) = open(dir.path(), 1 << 20);
        for i in 0..3u8 {
            b.push(&[i; 10], 1).unwrap();
        }
        let first = b.next().unwrap();
        assert_eq!(first.payload, vec![0; 10]);
        b.ack(first.seq);
        drop(b);
        // Restart: the rest comes back oldest first, new batches after them.
        let (mut b, stats) = open(dir.path(), 1 << 20);
        assert_eq!(b.len(), 2);
        b.push(&[9; 10], 1).unwrap();
        assert_eq!(drain(&mut b), vec![vec![1; 10], vec![2; 10], vec![9; 10]]);
        assert_eq!(stats.sent_batches(), 3);
        assert_eq!(b.bytes(), 0);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "acked files are deleted"
        );
    }

    #[test]
    fn bound_drops_oldest_but_not_the_batch_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let file_size = (HEADER_LEN + 100) as u64;
        let (mut b, stats) = open(dir.path(), 3 * file_size);
        for i in 0..3u8 {
            b.push(&[i; 100], 5).unwrap();
        }
        assert_eq!(stats.dropped_batches(DropReason::BufferFull), 0);
        let sending = b.next().unwrap();
        assert_eq!(sending.payload[0], 0);
        b.push(&[3; 100], 5).unwrap();
        b.push(&[4; 100], 5).unwrap();
        assert_eq!(stats.dropped_batches(DropReason::BufferFull), 2);
        assert_eq!(stats.dropped_points(DropReason::BufferFull), 10);
        assert!(b.bytes() <= 3 * file_size);
        b.ack(sending.seq);
        let rest: Vec<u8> = drain(&mut b).iter().map(|p| p[0]).collect();
        assert_eq!(
            rest,
            vec![3, 4],
            "batches 1 and 2 were the oldest not in flight"
        );
    }

    #[test]
    fn several_in_flight_are_handed_out_once_acked_in_any_order_and_never_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let file_size = (HEADER_LEN + 100) as u64;
        let (mut b, stats) = open(dir.path(), 4 * file_size);
        for i in 0..4u8 {
            b.push(&[i; 100], 1).unwrap();
        }
        let sent: Vec<Pending> = (0..3).map(|_| b.next().unwrap()).collect();
        let firsts: Vec<u8> = sent.iter().map(|p| p.payload[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2], "oldest first, each batch once");
        assert_eq!(b.in_flight(), 3);
        // Over the bound: only batch 3, the one not in flight, may go.
        b.push(&[4; 100], 1).unwrap();
        b.push(&[5; 100], 1).unwrap();
        assert_eq!(stats.dropped_batches(DropReason::BufferFull), 2);
        // Acks out of order; a rejected one is counted and gone too.
        b.ack(sent[2].seq);
        b.reject(sent[0].seq, DropReason::Rejected);
        b.ack(sent[1].seq);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(stats.sent_batches(), 2);
        assert_eq!(stats.dropped_batches(DropReason::Rejected), 1);
        // An ack for a batch already gone changes nothing.
        b.ack(sent[1].seq);
        assert_eq!(stats.sent_batches(), 2);
        let rest: Vec<u8> = drain(&mut b).iter().map(|p| p[0]).collect();
        assert_eq!(rest, vec![5]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_batch_larger_than_the_bound_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, stats) = open(dir.path(), 10);
        b.push(&[1; 100], 7).unwrap();
        assert_eq!(b.len(), 0);
        assert_eq!(stats.dropped_points(DropReason::BufferFull), 7);
    }

    #[test]
    fn torn_and_corrupt_files_are_skipped_counted_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, _) = open(dir.path(), 1 << 20);
        for i in 0..4u8 {
            b.push(&[i; 50], 1).unwrap();
        }
        drop(b);
        let path = |seq: u64| dir.path().join(format!("{seq:020}.batch"));
        // Torn: cut short. Corrupt: one payload bit flipped. Garbage: not ours at all.
        let full = fs::read(path(2)).unwrap();
        fs::write(path(2), &full[..full.len() - 7]).unwrap();
        let mut flipped = fs::read(path(3)).unwrap();
        flipped[HEADER_LEN + 3] ^= 1;
        fs::write(path(3), flipped).unwrap();
        fs::write(dir.path().join(format!("{:020}.batch.tmp", 5)), b"half").unwrap();
        fs::write(path(6), b"SN").unwrap();
        fs::write(dir.path().join("README"), b"not a batch").unwrap();

        let (mut b, stats) = open(dir.path(), 1 << 20);
        assert_eq!(stats.dropped_batches(DropReason::Corrupt), 4);
        assert_eq!(drain(&mut b), vec![vec![0; 50], vec![3; 50]]);
        assert!(
            dir.path().join("README").exists(),
            "foreign files are left alone"
        );
    }

    #[test]
    fn decode_survives_garbage() {
        for junk in [&b""[..], b"SNDQ", &[0u8; 24], &[0xff; 100]] {
            assert!(decode(junk, Kind::Metrics).is_err());
        }
        let good = encode(b"abc", 2, Kind::Metrics).unwrap();
        assert_eq!(decode(&good, Kind::Metrics).unwrap(), (2, &b"abc"[..]));
        assert!(decode(&good, Kind::Logs).unwrap_err().contains("kind"));
        // A version 1 file (byte 5 reserved, zero) still reads as metrics.
        let mut v1 = good.clone();
        v1[4] = 1;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&v1[..20]);
        crc.update(&v1[HEADER_LEN..]);
        v1[20..24].copy_from_slice(&crc.finalize().to_le_bytes());
        assert_eq!(decode(&v1, Kind::Metrics).unwrap(), (2, &b"abc"[..]));
    }

    #[test]
    fn block_overflow_keeps_everything_and_reports_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let stats = ExportStats::default();
        let mut b =
            Buffer::open(dir.path(), 100, Kind::Logs, Overflow::Block, stats.clone()).unwrap();
        b.push(&[1; 60], 3).unwrap();
        assert!(!b.over_bound());
        b.push(&[2; 60], 3).unwrap();
        assert!(b.over_bound());
        assert_eq!(b.len(), 2);
        assert_eq!(stats.dropped_batches(DropReason::BufferFull), 0);
        let p = b.next().unwrap();
        b.ack(p.seq);
        assert!(!b.over_bound());
        drop(b);
        // A logs file is not accepted by a metrics queue.
        let (m, stats) = open(dir.path(), 1 << 20);
        assert_eq!(m.len(), 0);
        assert_eq!(stats.dropped_batches(DropReason::Corrupt), 1);
    }
}
