//! One chunk: a stream's entries sorted by time, stored column by column
//! (timestamps, line lengths, metadata, then the line bytes) and
//! zstd-compressed. Columns compress better than interleaved entries: the
//! timestamp deltas and lengths are small repetitive integers, and the lines
//! sit next to each other where zstd finds their shared text.

use crate::{
    logs::model::LogEntry,
    store::tsdb::encoding::{DResult, Reader, put_str, put_uvarint, put_varint},
};

/// Largest decompressed chunk accepted (guards against garbage in an index).
pub const MAX_RAW: usize = 1 << 30;

/// Encodes and compresses `entries` (sorted by time). Returns the
/// compressed bytes and the uncompressed length.
pub fn encode(entries: &[LogEntry], level: i32) -> std::io::Result<(Vec<u8>, usize)> {
    let lines: usize = entries.iter().map(|e| e.line.len()).sum();
    let mut raw = Vec::with_capacity(lines + entries.len() * 6 + 16);
    put_uvarint(&mut raw, entries.len() as u64);
    let mut prev = 0i64;
    for (i, e) in entries.iter().enumerate() {
        if i == 0 {
            put_varint(&mut raw, e.ts_ns);
        } else {
            put_varint(&mut raw, e.ts_ns.wrapping_sub(prev));
        }
        prev = e.ts_ns;
    }
    for e in entries {
        put_uvarint(&mut raw, e.line.len() as u64);
    }
    for e in entries {
        put_uvarint(&mut raw, e.metadata.len() as u64);
        for (k, v) in &e.metadata {
            put_str(&mut raw, k);
            put_str(&mut raw, v);
        }
    }
    for e in entries {
        raw.extend_from_slice(e.line.as_bytes());
    }
    let c = zstd::bulk::compress(&raw, level)?;
    Ok((c, raw.len()))
}

/// Decompresses and decodes a chunk whose uncompressed length is `raw_len`.
pub fn decode(data: &[u8], raw_len: usize) -> Result<Vec<LogEntry>, String> {
    if raw_len > MAX_RAW {
        return Err(format!("chunk claims {raw_len} uncompressed bytes"));
    }
    let raw = zstd::bulk::decompress(data, raw_len).map_err(|e| format!("zstd: {e}"))?;
    if raw.len() != raw_len {
        return Err(format!(
            "chunk decompressed to {} bytes, index says {raw_len}",
            raw.len()
        ));
    }
    decode_raw(&raw).map_err(|e| e.to_string())
}

fn decode_raw(raw: &[u8]) -> DResult<Vec<LogEntry>> {
    let mut r = Reader::new(raw);
    let n = r.len(r.remaining())?;
    let mut ts = Vec::with_capacity(n);
    let mut t = 0i64;
    for i in 0..n {
        let d = r.varint()?;
        t = if i == 0 { d } else { t.wrapping_add(d) };
        ts.push(t);
    }
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(r.len(r.remaining())?);
    }
    let mut mds = Vec::with_capacity(n);
    for _ in 0..n {
        let nm = r.len(r.remaining())?;
        let mut md = Vec::with_capacity(nm);
        for _ in 0..nm {
            md.push((r.str()?.to_string(), r.str()?.to_string()));
        }
        mds.push(md);
    }
    let mut out = Vec::with_capacity(n);
    for ((ts_ns, len), metadata) in ts.into_iter().zip(lens).zip(mds) {
        let b = r.bytes(len)?;
        let Ok(line) = std::str::from_utf8(b) else {
            return r.err("log line is not valid UTF-8");
        };
        out.push(LogEntry {
            ts_ns,
            line: line.to_string(),
            metadata,
        });
    }
    if !r.is_empty() {
        return r.err("trailing bytes in chunk");
    }
    Ok(out)
}
