//! Chunk files: every chunk cut in one cycle, of many streams, in one
//! immutable file with an index at the end (so opening reads only indexes and
//! tiny streams do not make tiny files). Written to a `.tmp` name, fsynced,
//! renamed, and the directory fsynced.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::chunk;
use crate::{
    logs::model::LogEntry,
    model::Labels,
    store::tsdb::{
        encoding::{DResult, Reader, put_str, put_uvarint, put_varint},
        wal::fsync_dir,
    },
};

const MAGIC: &[u8; 8] = b"SONDLOGC";
const VERSION: u8 = 1;
const HEADER: u64 = 16;
const FOOTER_MAGIC: &[u8; 4] = b"SLGX";
const FOOTER: u64 = 24;
/// Largest index accepted (guards against a garbage footer).
const MAX_INDEX: u64 = 1 << 30;
pub const EXT: &str = "chunks";

/// Where a chunk is in its file and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_ts: i64,
    pub max_ts: i64,
    pub offset: u64,
    pub len: u64,
    /// Uncompressed length of the encoded chunk.
    pub raw_len: u64,
    pub count: u64,
    /// Bytes of lines plus metadata text.
    pub raw_bytes: u64,
    /// CRC32 of the `len` stored bytes.
    pub crc: u32,
}

/// One stream's part of a chunk file's index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexStream {
    pub labels: Labels,
    /// WAL sequence number of the newest batch whose entries for this
    /// stream are in this file (or earlier files): replay skips those.
    pub flushed_lsn: u64,
    pub chunks: Vec<ChunkMeta>,
}

pub fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:012}.{EXT}"))
}

/// The sequence number in a chunk file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(&format!(".{EXT}"))?;
    if stem.len() != 12 {
        return None;
    }
    stem.parse().ok()
}

/// Writes one chunk file.
pub struct Writer {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    index: Vec<IndexStream>,
}

impl Writer {
    pub fn create(dir: &Path, seq: u64) -> io::Result<Writer> {
        let path = file_path(dir, seq);
        let tmp = path.with_extension(format!("{EXT}.tmp"));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        out.write_all(&header)?;
        Ok(Writer {
            tmp,
            path,
            dir: dir.to_path_buf(),
            out,
            pos: HEADER,
            index: Vec::new(),
        })
    }

    /// Starts a stream's section of the index; its chunks follow via [`Writer::add_chunk`].
    pub fn begin_stream(&mut self, labels: Labels, flushed_lsn: u64) {
        self.index.push(IndexStream {
            labels,
            flushed_lsn,
            chunks: Vec::new(),
        });
    }

    /// Encodes `entries` (sorted by time, non-empty) as a chunk of the current stream.
    pub fn add_chunk(&mut self, entries: &[LogEntry], level: i32) -> io::Result<ChunkMeta> {
        let (data, raw_len) = chunk::encode(entries, level)?;
        self.out.write_all(&data)?;
        let meta = ChunkMeta {
            min_ts: entries.first().map_or(0, |e| e.ts_ns),
            max_ts: entries.last().map_or(0, |e| e.ts_ns),
            offset: self.pos,
            len: data.len() as u64,
            raw_len: raw_len as u64,
            count: entries.len() as u64,
            raw_bytes: entries.iter().map(super::head::entry_bytes).sum(),
            crc: crc32fast::hash(&data),
        };
        self.pos += data.len() as u64;
        match self.index.last_mut() {
            Some(s) => s.chunks.push(meta),
            None => return Err(io::Error::other("chunk added before its stream")),
        }
        Ok(meta)
    }

    /// Writes the index and footer, makes the file durable under its final
    /// name; returns the file's path and size.
    pub fn finish(mut self) -> io::Result<(PathBuf, u64)> {
        let index = encode_index(&self.index);
        self.out.write_all(&index)?;
        let mut footer = Vec::with_capacity(FOOTER as usize);
        footer.extend_from_slice(&self.pos.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        self.out.write_all(&footer)?;
        let size = self.pos + index.len() as u64 + FOOTER;
        let f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        fsync_dir(&self.dir)?;
        Ok((self.path, size))
    }

    /// Removes the partial file after a failure.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

fn encode_index(index: &[IndexStream]) -> Vec<u8> {
    let mut b = Vec::new();
    put_uvarint(&mut b, index.len() as u64);
    for s in index {
        put_uvarint(&mut b, s.labels.len() as u64);
        for (k, v) in s.labels.iter() {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        put_uvarint(&mut b, s.flushed_lsn);
        put_uvarint(&mut b, s.chunks.len() as u64);
        for c in &s.chunks {
            put_varint(&mut b, c.min_ts);
            put_varint(&mut b, c.max_ts);
            put_uvarint(&mut b, c.offset);
            put_uvarint(&mut b, c.len);
            put_uvarint(&mut b, c.raw_len);
            put_uvarint(&mut b, c.count);
            put_uvarint(&mut b, c.raw_bytes);
            b.extend_from_slice(&c.crc.to_le_bytes());
        }
    }
    b
}

fn decode_index(b: &[u8], data_end: u64) -> DResult<Vec<IndexStream>> {
    let mut r = Reader::new(b);
    let n = r.len(r.remaining())?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = r.len(r.remaining())?;
        let mut pairs = Vec::with_capacity(nl);
        for _ in 0..nl {
            pairs.push((r.str()?.to_string(), r.str()?.to_string()));
        }
        let flushed_lsn = r.uvarint()?;
        let nc = r.len(r.remaining())?;
        let mut chunks = Vec::with_capacity(nc);
        for _ in 0..nc {
            let c = ChunkMeta {
                min_ts: r.varint()?,
                max_ts: r.varint()?,
                offset: r.uvarint()?,
                len: r.uvarint()?,
                raw_len: r.uvarint()?,
                count: r.uvarint()?,
                raw_bytes: r.uvarint()?,
                crc: r.u32_le()?,
            };
            if c.offset < HEADER || c.offset.checked_add(c.len).is_none_or(|e| e > data_end) {
                return r.err(format!(
                    "chunk at offset {} length {} lies outside the data section",
                    c.offset, c.len
                ));
            }
            if c.min_ts > c.max_ts || c.raw_len > chunk::MAX_RAW as u64 {
                return r.err("chunk entry has inconsistent bounds");
            }
            chunks.push(c);
        }
        out.push(IndexStream {
            labels: Labels::new(pairs),
            flushed_lsn,
            chunks,
        });
    }
    if !r.is_empty() {
        return r.err("trailing bytes in chunk file index");
    }
    Ok(out)
}

/// An open chunk file (kept open so reads survive a concurrent retention delete).
pub struct ChunkFile {
    pub seq: u64,
    pub path: PathBuf,
    pub size: u64,
    /// Newest entry in the file (retention).
    pub max_ts: i64,
    file: File,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("chunk file {}: {what}", path.display()),
    )
}

impl ChunkFile {
    /// Opens `path` and reads its index (not its chunks).
    pub fn open(path: &Path, seq: u64) -> io::Result<(ChunkFile, Vec<IndexStream>)> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < HEADER + FOOTER {
            return Err(invalid(path, format!("only {size} bytes long")));
        }
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)?;
        if &header[..8] != MAGIC {
            return Err(invalid(path, "bad magic"));
        }
        if header[8] != VERSION {
            return Err(invalid(path, format!("unsupported version {}", header[8])));
        }
        let mut footer = [0u8; FOOTER as usize];
        file.read_exact_at(&mut footer, size - FOOTER)?;
        if &footer[20..24] != FOOTER_MAGIC {
            return Err(invalid(path, "bad footer magic (truncated?)"));
        }
        let mut u = [0u8; 8];
        u.copy_from_slice(&footer[0..8]);
        let index_off = u64::from_le_bytes(u);
        u.copy_from_slice(&footer[8..16]);
        let index_len = u64::from_le_bytes(u);
        let crc = u32::from_le_bytes([footer[16], footer[17], footer[18], footer[19]]);
        if index_len > MAX_INDEX
            || index_off < HEADER
            || index_off.checked_add(index_len) != Some(size - FOOTER)
        {
            return Err(invalid(path, "footer points outside the file"));
        }
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_off)?;
        if crc32fast::hash(&index) != crc {
            return Err(invalid(path, "index fails its checksum"));
        }
        let streams = decode_index(&index, index_off).map_err(|e| invalid(path, e))?;
        let chunks = || streams.iter().flat_map(|s| &s.chunks);
        let max_ts = chunks().map(|c| c.max_ts).max().unwrap_or(i64::MIN);
        Ok((
            ChunkFile {
                seq,
                path: path.to_path_buf(),
                size,
                max_ts,
                file,
            },
            streams,
        ))
    }

    /// Reads, checks and decodes one chunk.
    pub fn read_chunk(&self, c: &ChunkMeta) -> Result<Vec<LogEntry>, String> {
        let len = usize::try_from(c.len).map_err(|_| "chunk too large".to_string())?;
        let mut data = vec![0u8; len];
        self.file
            .read_exact_at(&mut data, c.offset)
            .map_err(|e| format!("chunk file {}: {e}", self.path.display()))?;
        if crc32fast::hash(&data) != c.crc {
            return Err(format!(
                "chunk file {}: chunk at offset {} fails its checksum",
                self.path.display(),
                c.offset
            ));
        }
        chunk::decode(&data, c.raw_len as usize).map_err(|e| {
            format!(
                "chunk file {}: chunk at offset {}: {e}",
                self.path.display(),
                c.offset
            )
        })
    }
}
