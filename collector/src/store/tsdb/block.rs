//! Immutable blocks: one file per block holding compressed per-series
//! chunks, the series' label sets (as symbol references), postings and the
//! block's metadata. Written to a temporary file, fsynced, then renamed into
//! place, so a crash leaves either the whole block or none of it.
//! The byte layout is in FORMAT.md.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::{
    column,
    encoding::{DResult, Reader, put_str, put_uvarint, put_varint},
    postings::{self, Postings},
    wal::fsync_dir,
};
use crate::model::{Labels, Matcher, Sample, matches_all};

pub const MAGIC: &[u8; 8] = b"SONDEBK1";
pub const FOOTER_MAGIC: &[u8; 8] = b"SONDEBKE";
const FOOTER: u64 = 8 + 4 + 8;
/// Samples per chunk: large enough that pcodec's headers are noise, small
/// enough that a short query on a merged block decodes little.
pub const MAX_CHUNK_SAMPLES: usize = 2048;
pub const EXT: &str = "block";

#[derive(Clone, Debug, PartialEq)]
pub struct BlockMeta {
    pub mint: i64,
    pub maxt: i64,
    pub num_samples: u64,
    /// 0 for blocks cut from the head, +1 per merge.
    pub level: u32,
    /// Names of the blocks this one replaced (merges); they are deleted on
    /// open if a crash left them behind.
    pub sources: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct ChunkRef {
    pub mint: i64,
    pub maxt: i64,
    pub offset: u64,
    pub len: u32,
}

pub struct BlockSeries {
    pub labels: Labels,
    pub chunks: Vec<ChunkRef>,
}

pub struct Block {
    pub path: PathBuf,
    pub name: String,
    pub meta: BlockMeta,
    pub size: u64,
    file: File,
    series: Vec<BlockSeries>,
    postings: Postings<u32>,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("block file {}: {what}", path.display()),
    )
}

/// Streams a block into `dir/<name>.tmp`; `finish` fsyncs it and renames
/// it into place. Series must be added in label order.
pub struct BlockWriter {
    dir: PathBuf,
    name: String,
    file: io::BufWriter<File>,
    offset: u64,
    buf: Vec<u8>,
    meta: BlockMeta,
    series: Vec<(Labels, Vec<ChunkRef>)>,
}

impl BlockWriter {
    pub fn new(dir: &Path, name: &str) -> io::Result<BlockWriter> {
        let mut file =
            io::BufWriter::with_capacity(1 << 20, File::create(dir.join(format!("{name}.tmp")))?);
        file.write_all(MAGIC)?;
        Ok(BlockWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            file,
            offset: MAGIC.len() as u64,
            buf: Vec::new(),
            meta: BlockMeta {
                mint: i64::MAX,
                maxt: i64::MIN,
                num_samples: 0,
                level: 0,
                sources: Vec::new(),
            },
            series: Vec::new(),
        })
    }

    /// Adds one series; `samples` ascending by time. Empty series are skipped.
    pub fn add(&mut self, labels: &Labels, samples: &[Sample]) -> io::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        debug_assert!(
            self.series.last().is_none_or(|(l, _)| l < labels),
            "series out of order"
        );
        let mut chunks = Vec::new();
        for c in samples.chunks(MAX_CHUNK_SAMPLES) {
            self.buf.clear();
            column::encode_chunk(c, &mut self.buf);
            let crc = crc32fast::hash(&self.buf);
            self.buf.extend_from_slice(&crc.to_le_bytes());
            self.file.write_all(&self.buf)?;
            chunks.push(ChunkRef {
                mint: c[0].t,
                maxt: c[c.len() - 1].t,
                offset: self.offset,
                len: (self.buf.len() - 4) as u32,
            });
            self.offset += self.buf.len() as u64;
            self.meta.mint = self.meta.mint.min(c[0].t);
            self.meta.maxt = self.meta.maxt.max(c[c.len() - 1].t);
            self.meta.num_samples += c.len() as u64;
        }
        self.series.push((labels.clone(), chunks));
        Ok(())
    }

    pub fn num_samples(&self) -> u64 {
        self.meta.num_samples
    }

    /// Abandons the block (nothing was added): removes the temporary file.
    pub fn abandon(self) -> io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", self.name));
        drop(self.file);
        fs::remove_file(tmp)
    }

    /// Writes index and footer, fsyncs, renames into place; returns the size.
    pub fn finish(mut self, level: u32, sources: Vec<String>) -> io::Result<u64> {
        self.meta.level = level;
        self.meta.sources = sources;
        let meta = &self.meta;
        let series = &self.series;
        let mut symbols: Vec<&str> = series
            .iter()
            .flat_map(|(l, _)| l.iter().flat_map(|(k, v)| [k, v]))
            .collect();
        symbols.sort_unstable();
        symbols.dedup();
        let sym: HashMap<&str, u64> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u64))
            .collect();
        let mut postings: Postings<u32> = Postings::new();
        for (i, (labels, _)) in series.iter().enumerate() {
            postings::add(&mut postings, labels, i as u32);
        }
        let mut ix = Vec::new();
        put_uvarint(&mut ix, symbols.len() as u64);
        for s in &symbols {
            put_str(&mut ix, s);
        }
        put_varint(&mut ix, meta.mint);
        put_varint(&mut ix, meta.maxt);
        put_uvarint(&mut ix, meta.num_samples);
        put_uvarint(&mut ix, u64::from(meta.level));
        put_uvarint(&mut ix, meta.sources.len() as u64);
        for s in &meta.sources {
            put_str(&mut ix, s);
        }
        put_uvarint(&mut ix, series.len() as u64);
        for (labels, chunks) in series {
            put_uvarint(&mut ix, labels.len() as u64);
            for (k, v) in labels.iter() {
                put_uvarint(&mut ix, sym[k]);
                put_uvarint(&mut ix, sym[v]);
            }
            put_uvarint(&mut ix, chunks.len() as u64);
            for c in chunks {
                put_varint(&mut ix, c.mint);
                put_uvarint(&mut ix, c.maxt.wrapping_sub(c.mint) as u64);
                put_uvarint(&mut ix, c.offset);
                put_uvarint(&mut ix, u64::from(c.len));
            }
        }
        let npairs: usize = postings.values().map(|v| v.len()).sum();
        put_uvarint(&mut ix, npairs as u64);
        for (k, values) in &postings {
            for (v, list) in values {
                put_uvarint(&mut ix, sym[k.as_str()]);
                put_uvarint(&mut ix, sym[v.as_str()]);
                put_uvarint(&mut ix, list.len() as u64);
                let mut prev = 0u32;
                for &r in list {
                    put_uvarint(&mut ix, u64::from(r - prev));
                    prev = r;
                }
            }
        }
        self.file.write_all(&ix)?;
        self.file.write_all(&self.offset.to_le_bytes())?;
        self.file.write_all(&crc32fast::hash(&ix).to_le_bytes())?;
        self.file.write_all(FOOTER_MAGIC)?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let tmp = self.dir.join(format!("{}.tmp", self.name));
        fs::rename(&tmp, self.dir.join(&self.name))?;
        fsync_dir(&self.dir)?;
        Ok(self.offset + ix.len() as u64 + FOOTER)
    }
}

impl Block {
    pub fn open(path: &Path) -> io::Result<Block> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < MAGIC.len() as u64 + FOOTER {
            return Err(invalid(
                path,
                format!("{size} bytes is too short to be a block (truncated?)"),
            ));
        }
        let mut head = [0u8; 8];
        file.read_exact_at(&mut head, 0)?;
        if &head != MAGIC {
            return Err(invalid(path, "bad magic: not a block file"));
        }
        let mut foot = [0u8; FOOTER as usize];
        file.read_exact_at(&mut foot, size - FOOTER)?;
        if &foot[12..20] != FOOTER_MAGIC {
            return Err(invalid(path, "bad footer magic (truncated or overwritten)"));
        }
        let mut r = Reader::new(&foot);
        let (index_offset, crc) = match (r.u64_le(), r.u32_le()) {
            (Ok(o), Ok(c)) => (o, c),
            _ => return Err(invalid(path, "unreadable footer")),
        };
        if index_offset < MAGIC.len() as u64 || index_offset > size - FOOTER {
            return Err(invalid(
                path,
                format!("index offset {index_offset} outside the file"),
            ));
        }
        let mut ix = vec![0u8; (size - FOOTER - index_offset) as usize];
        file.read_exact_at(&mut ix, index_offset)?;
        if crc32fast::hash(&ix) != crc {
            return Err(invalid(path, "index checksum mismatch"));
        }
        let (meta, series, postings) =
            decode_index(&ix, index_offset).map_err(|e| invalid(path, format!("index: {e}")))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        Ok(Block {
            path: path.to_path_buf(),
            name,
            meta,
            size,
            file,
            series,
            postings,
        })
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    fn matching(&self, matchers: &[Matcher]) -> Vec<&BlockSeries> {
        match postings::candidates(&self.postings, matchers) {
            Some(refs) => refs
                .iter()
                .filter_map(|&i| self.series.get(i as usize))
                .filter(|s| matches_all(matchers, &s.labels))
                .collect(),
            None => self
                .series
                .iter()
                .filter(|s| matches_all(matchers, &s.labels))
                .collect(),
        }
    }

    fn read_chunk(&self, c: &ChunkRef, out: &mut Vec<Sample>) -> io::Result<()> {
        let mut buf = vec![0u8; c.len as usize + 4];
        self.file
            .read_exact_at(&mut buf, c.offset)
            .map_err(|e| invalid(&self.path, format!("chunk at {}: {e}", c.offset)))?;
        let (payload, crc) = buf.split_at(c.len as usize);
        if crc32fast::hash(payload).to_le_bytes() != crc {
            return Err(invalid(
                &self.path,
                format!("chunk at byte {} fails its checksum", c.offset),
            ));
        }
        column::decode_chunk(payload, out)
            .map_err(|e| invalid(&self.path, format!("chunk at byte {}: {e}", c.offset)))
    }

    /// Matching series with their samples in `[mint, maxt]`; only chunks
    /// overlapping the range are read.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<(Labels, Vec<Sample>)>> {
        if self.meta.maxt < mint || self.meta.mint > maxt {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for s in self.matching(matchers) {
            let mut samples = Vec::new();
            for c in s.chunks.iter().filter(|c| c.maxt >= mint && c.mint <= maxt) {
                let start = samples.len();
                self.read_chunk(c, &mut samples)?;
                if c.mint < mint || c.maxt > maxt {
                    let mut kept = start;
                    for i in start..samples.len() {
                        if samples[i].t >= mint && samples[i].t <= maxt {
                            samples[kept] = samples[i];
                            kept += 1;
                        }
                    }
                    samples.truncate(kept);
                }
            }
            if !samples.is_empty() {
                out.push((s.labels.clone(), samples));
            }
        }
        Ok(out)
    }

    /// Label sets of matching series with a chunk overlapping `[mint, maxt]`
    /// (chunk bounds are exact sample times, so no decoding is needed).
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        if self.meta.maxt < mint || self.meta.mint > maxt {
            return Vec::new();
        }
        self.matching(matchers)
            .into_iter()
            .filter(|s| s.chunks.iter().any(|c| c.maxt >= mint && c.mint <= maxt))
            .map(|s| s.labels.clone())
            .collect()
    }

    /// See [`postings::label_index`]: names or values of `name` carried by a
    /// series with a chunk overlapping `[mint, maxt]`.
    pub fn label_index(
        &self,
        name: Option<&str>,
        mint: i64,
        maxt: i64,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        if self.meta.maxt < mint || self.meta.mint > maxt {
            return;
        }
        let live = |i: &u32| {
            self.series
                .get(*i as usize)
                .is_some_and(|s| s.chunks.iter().any(|c| c.maxt >= mint && c.mint <= maxt))
        };
        postings::label_index(&self.postings, name, out, live);
    }

    /// Label set of the i-th series (series are sorted by labels).
    pub fn series_labels(&self, i: usize) -> Option<&Labels> {
        self.series.get(i).map(|s| &s.labels)
    }

    /// All samples of the i-th series (for merging blocks).
    pub fn read_series(&self, i: usize) -> io::Result<Vec<Sample>> {
        let mut out = Vec::new();
        if let Some(s) = self.series.get(i) {
            for c in &s.chunks {
                self.read_chunk(c, &mut out)?;
            }
        }
        Ok(out)
    }
}

type Index = (BlockMeta, Vec<BlockSeries>, Postings<u32>);

fn decode_index(ix: &[u8], index_offset: u64) -> DResult<Index> {
    let mut r = Reader::new(ix);
    let nsym = r.len(ix.len())?;
    let mut symbols = Vec::with_capacity(nsym);
    for _ in 0..nsym {
        symbols.push(r.str()?);
    }
    let symbol = |r: &mut Reader<'_>| -> DResult<&str> {
        let i = r.uvarint()? as usize;
        match symbols.get(i) {
            Some(s) => Ok(*s),
            None => r.err(format!(
                "symbol {i} out of range ({} symbols)",
                symbols.len()
            )),
        }
    };
    let mint = r.varint()?;
    let maxt = r.varint()?;
    let num_samples = r.uvarint()?;
    let level = r.uvarint()? as u32;
    let nsrc = r.len(r.remaining())?;
    let mut sources = Vec::with_capacity(nsrc);
    for _ in 0..nsrc {
        sources.push(r.str()?.to_string());
    }
    let nseries = r.len(r.remaining())?;
    let mut series = Vec::with_capacity(nseries);
    for _ in 0..nseries {
        let nl = r.len(r.remaining())?;
        let mut pairs = Vec::with_capacity(nl);
        for _ in 0..nl {
            let k = symbol(&mut r)?;
            let v = symbol(&mut r)?;
            pairs.push((k.to_string(), v.to_string()));
        }
        let nc = r.len(r.remaining())?;
        let mut chunks = Vec::with_capacity(nc);
        for _ in 0..nc {
            let cmin = r.varint()?;
            let cmax = cmin.wrapping_add(r.uvarint()? as i64);
            let offset = r.uvarint()?;
            let len = r.uvarint()?;
            if len > u64::from(u32::MAX)
                || offset.saturating_add(len).saturating_add(4) > index_offset
                || offset < MAGIC.len() as u64
            {
                return r.err(format!(
                    "chunk at {offset} (+{len}) outside the data section"
                ));
            }
            chunks.push(ChunkRef {
                mint: cmin,
                maxt: cmax,
                offset,
                len: len as u32,
            });
        }
        series.push(BlockSeries {
            labels: Labels::new(pairs),
            chunks,
        });
    }
    let npairs = r.len(r.remaining())?;
    let mut postings: Postings<u32> = Postings::new();
    for _ in 0..npairs {
        let k = symbol(&mut r)?;
        let v = symbol(&mut r)?;
        let n = r.len(nseries)?;
        let mut list = Vec::with_capacity(n);
        let mut cur = 0u64;
        for _ in 0..n {
            cur = cur.saturating_add(r.uvarint()?);
            if cur >= nseries as u64 {
                return r.err(format!("postings reference series {cur} of {nseries}"));
            }
            list.push(cur as u32);
        }
        postings
            .entry(k.to_string())
            .or_default()
            .insert(v.to_string(), list);
    }
    if !r.is_empty() {
        return r.err("trailing bytes in index");
    }
    Ok((
        BlockMeta {
            mint,
            maxt,
            num_samples,
            level,
            sources,
        },
        series,
        postings,
    ))
}

/// Block files in `dir` sorted by name; leftover temporary files are removed.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        match p.extension().and_then(|e| e.to_str()) {
            Some(EXT) => out.push(p),
            Some("tmp") => {
                tracing::info!(file = %p.display(), "removing unfinished block from an interrupted compaction");
                fs::remove_file(&p)?;
            }
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}
