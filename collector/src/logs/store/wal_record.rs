//! The log WAL's record payloads. Framing, group commit and segments are the
//! metric TSDB's [`Wal`](crate::store::tsdb::wal::Wal); segments are read
//! back with [`record_wal`](crate::store::record_wal).

use std::io;

use crate::{
    logs::model::{LogEntry, StreamEntries},
    model::Labels,
    store::{
        record_wal,
        tsdb::encoding::{DResult, Reader, put_str, put_uvarint, put_varint},
    },
};

/// First record of every segment: format version only.
pub const REC_HEADER: u8 = 0x10;
/// A batch whose body is stored as is.
pub const REC_BATCH_RAW: u8 = 0x11;
/// A batch whose body is zstd-compressed.
pub const REC_BATCH_ZSTD: u8 = 0x12;
pub const VERSION: u8 = 1;
/// Bodies smaller than this are not worth compressing.
const COMPRESS_MIN: usize = 512;
/// Largest decompressed body accepted on replay (guards against garbage).
const MAX_BODY: usize = 1 << 31;

thread_local! {
    /// One zstd context per appending thread: creating one per record costs
    /// more than compressing a small batch.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub fn encode_header() -> Vec<u8> {
    vec![REC_HEADER, VERSION]
}

/// Encodes a batch with a zero LSN placeholder; [`set_lsn`] fills it in once
/// the batch's place in the log is known (encoding and compression happen
/// outside the store's lock, the LSN is assigned inside).
pub fn encode_batch(streams: &[StreamEntries], compress: bool) -> Vec<u8> {
    let lines: usize = streams
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.line.len() + 16)
        .sum();
    let mut body = Vec::with_capacity(lines + streams.len() * 128 + 16);
    put_uvarint(&mut body, streams.len() as u64);
    for s in streams {
        put_uvarint(&mut body, s.labels.len() as u64);
        for (k, v) in s.labels.iter() {
            put_str(&mut body, k);
            put_str(&mut body, v);
        }
        put_uvarint(&mut body, s.entries.len() as u64);
        let mut prev = 0i64;
        for e in &s.entries {
            put_varint(&mut body, e.ts_ns.wrapping_sub(prev));
            prev = e.ts_ns;
            put_str(&mut body, &e.line);
            put_uvarint(&mut body, e.metadata.len() as u64);
            for (k, v) in &e.metadata {
                put_str(&mut body, k);
                put_str(&mut body, v);
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() / 3 + 16);
    if compress && body.len() >= COMPRESS_MIN {
        out.push(REC_BATCH_ZSTD);
        out.extend_from_slice(&0u64.to_le_bytes());
        put_uvarint(&mut out, body.len() as u64);
        // Level 1: this runs on the acknowledgement path (see Tuning::wal_zstd).
        let compressed = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(zstd::bulk::Compressor::new(1)?);
            }
            match c.as_mut() {
                Some(c) => c.compress(&body),
                None => Err(io::Error::other("no zstd context")),
            }
        });
        match compressed {
            Ok(c) => {
                out.extend_from_slice(&c);
                return out;
            }
            Err(e) => {
                tracing::warn!(error = %e, "zstd failed on a WAL record; storing it uncompressed");
                out.clear();
            }
        }
    }
    out.push(REC_BATCH_RAW);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn set_lsn(payload: &mut [u8], lsn: u64) {
    payload[1..9].copy_from_slice(&lsn.to_le_bytes());
}

/// A decoded WAL record.
#[derive(Debug, PartialEq)]
pub enum Record {
    Header,
    Batch {
        lsn: u64,
        streams: Vec<StreamEntries>,
    },
}

pub fn decode_record(payload: &[u8]) -> DResult<Record> {
    let mut r = Reader::new(payload);
    match r.u8()? {
        REC_HEADER => {
            record_wal::check_version(&mut r, VERSION, "log")?;
            Ok(Record::Header)
        }
        REC_BATCH_RAW => {
            let lsn = r.u64_le()?;
            let streams = decode_body(r.bytes(r.remaining())?)?;
            Ok(Record::Batch { lsn, streams })
        }
        REC_BATCH_ZSTD => {
            let lsn = r.u64_le()?;
            let len = r.len(MAX_BODY)?;
            let body = match zstd::bulk::decompress(r.bytes(r.remaining())?, len) {
                Ok(b) if b.len() == len => b,
                Ok(b) => return r.err(format!("body is {} bytes, header says {len}", b.len())),
                Err(e) => return r.err(format!("zstd: {e}")),
            };
            let streams = decode_body(&body)?;
            Ok(Record::Batch { lsn, streams })
        }
        t => r.err(format!("unknown log WAL record type {t:#x}")),
    }
}

fn decode_body(body: &[u8]) -> DResult<Vec<StreamEntries>> {
    let mut r = Reader::new(body);
    // Every count is bounded by the bytes left, so garbage cannot make us
    // reserve huge vectors.
    let n = r.len(r.remaining())?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = r.len(r.remaining())?;
        let mut pairs = Vec::with_capacity(nl);
        for _ in 0..nl {
            pairs.push((r.str()?.to_string(), r.str()?.to_string()));
        }
        let ne = r.len(r.remaining())?;
        let mut entries = Vec::with_capacity(ne);
        let mut ts = 0i64;
        for _ in 0..ne {
            ts = ts.wrapping_add(r.varint()?);
            let line = r.str()?.to_string();
            let nm = r.len(r.remaining())?;
            let mut metadata = Vec::with_capacity(nm);
            for _ in 0..nm {
                metadata.push((r.str()?.to_string(), r.str()?.to_string()));
            }
            entries.push(LogEntry {
                ts_ns: ts,
                line,
                metadata,
            });
        }
        streams.push(StreamEntries {
            labels: Labels::new(pairs),
            entries,
        });
    }
    if !r.is_empty() {
        return r.err("trailing bytes in log WAL record");
    }
    Ok(streams)
}
