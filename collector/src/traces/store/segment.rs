//! Segment files (FORMAT.md, "Segment files"): the spans of one cut, grouped
//! by trace and sorted by trace id into zstd-compressed blocks, with an index
//! of traces, (service, operation, kind) postings and service dependency
//! counts. Written to a `.tmp` name, fsynced, renamed, directory fsynced;
//! opening reads the footer and index only.

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::codec::{decode_spans, encode_spans};
use crate::{
    store::tsdb::{
        encoding::{Reader, put_str, put_uvarint, put_varint},
        wal::fsync_dir,
    },
    traces::model::{Span, TraceId},
};

pub const EXT: &str = "seg";
const MAGIC: &[u8; 8] = b"SONDTRCS";
const FOOTER_MAGIC: &[u8; 4] = b"STRX";
const VERSION: u8 = 1;
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: u64 = 24;
/// Largest index accepted at open (guards against a garbage footer).
const MAX_INDEX: u64 = 1 << 31;

pub fn file_name(seq: u64) -> String {
    format!("{seq:012}.{EXT}")
}

pub fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(&format!(".{EXT}"))?;
    (stem.len() == 12).then(|| stem.parse().ok()).flatten()
}

#[derive(Clone, Copy, Debug)]
struct BlockRef {
    offset: u64,
    len: u64,
    raw_len: usize,
    crc: u32,
}

/// One trace's entry in a segment's index.
#[derive(Clone, Copy, Debug)]
pub struct TraceRef {
    pub id: TraceId,
    pub block: u32,
    pub spans: u32,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// A distinct (service, operation, span kind) in a segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpKey {
    pub service: String,
    pub operation: String,
    pub kind: u8,
}

/// An open segment file: its index in memory, blocks read on demand.
pub struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    pub size: u64,
    file: File,
    /// Newest WAL batch whose spans are all in this or an older segment.
    pub flushed_lsn: u64,
    pub min_ns: i64,
    pub max_ns: i64,
    pub span_count: u64,
    blocks: Vec<BlockRef>,
    /// Sorted by id.
    pub traces: Vec<TraceRef>,
    pub ops: Vec<OpKey>,
    /// Per op: indexes into `traces`, ascending.
    pub postings: Vec<Vec<u32>>,
    /// (parent service, child service) -> calls.
    pub links: Vec<(String, String, u64)>,
}

impl Segment {
    pub fn find(&self, id: &TraceId) -> Option<&TraceRef> {
        self.traces
            .binary_search_by(|t| t.id.cmp(id))
            .ok()
            .map(|i| &self.traces[i])
    }

    /// Decodes one block (every span in it).
    pub fn read_block(&self, block: u32) -> io::Result<Vec<Span>> {
        let b = self
            .blocks
            .get(block as usize)
            .ok_or_else(|| bad(&self.path, format!("no block {block}")))?;
        let mut buf = vec![0u8; b.len as usize];
        self.file.read_exact_at(&mut buf, b.offset)?;
        if crc32fast::hash(&buf) != b.crc {
            return Err(bad(&self.path, format!("block {block} fails its checksum")));
        }
        let raw = zstd::bulk::decompress(&buf, b.raw_len)
            .map_err(|e| bad(&self.path, format!("block {block}: zstd: {e}")))?;
        decode_spans(&mut Reader::new(&raw))
            .map_err(|e| bad(&self.path, format!("block {block}: {e}")))
    }

    /// The spans of one trace in this segment.
    #[cfg(test)]
    pub fn trace_spans(&self, id: &TraceId) -> io::Result<Vec<Span>> {
        let Some(t) = self.find(id) else {
            return Ok(Vec::new());
        };
        let mut spans = self.read_block(t.block)?;
        spans.retain(|s| s.trace_id == *id);
        Ok(spans)
    }

    pub fn open(path: &Path, seq: u64) -> io::Result<Segment> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < HEADER_LEN + FOOTER_LEN {
            return Err(bad(path, "shorter than header and footer"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        if &header[..8] != MAGIC || header[8] != VERSION {
            return Err(bad(path, "bad magic or version"));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, size - FOOTER_LEN)?;
        let ix_off = u64::from_le_bytes(footer[0..8].try_into().unwrap_or_default());
        let ix_len = u64::from_le_bytes(footer[8..16].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(footer[16..20].try_into().unwrap_or_default());
        if &footer[20..24] != FOOTER_MAGIC
            || ix_len > MAX_INDEX
            || ix_off < HEADER_LEN
            || ix_off.saturating_add(ix_len) != size - FOOTER_LEN
        {
            return Err(bad(path, "bad footer"));
        }
        let mut ix = vec![0u8; ix_len as usize];
        file.read_exact_at(&mut ix, ix_off)?;
        if crc32fast::hash(&ix) != crc {
            return Err(bad(path, "index fails its checksum"));
        }
        let mut d = decode_index(&ix, ix_off).map_err(|e| bad(path, e))?;
        d.seq = seq;
        d.path = path.to_path_buf();
        d.size = size;
        Ok(Segment::from_decoded(d, file))
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("trace segment {}: {what}", path.display()),
    )
}

/// A segment without its file handle, as decoded from an index.
struct Decoded {
    seq: u64,
    path: PathBuf,
    size: u64,
    flushed_lsn: u64,
    min_ns: i64,
    max_ns: i64,
    span_count: u64,
    blocks: Vec<BlockRef>,
    traces: Vec<TraceRef>,
    ops: Vec<OpKey>,
    postings: Vec<Vec<u32>>,
    links: Vec<(String, String, u64)>,
}

impl Segment {
    fn from_decoded(d: Decoded, file: File) -> Segment {
        Segment {
            seq: d.seq,
            path: d.path,
            size: d.size,
            file,
            flushed_lsn: d.flushed_lsn,
            min_ns: d.min_ns,
            max_ns: d.max_ns,
            span_count: d.span_count,
            blocks: d.blocks,
            traces: d.traces,
            ops: d.ops,
            postings: d.postings,
            links: d.links,
        }
    }
}

fn decode_index(ix: &[u8], blocks_end: u64) -> Result<Decoded, String> {
    let mut r = Reader::new(ix);
    let e = |e: crate::store::tsdb::encoding::DecodeError| e.to_string();
    let flushed_lsn = r.uvarint().map_err(e)?;
    let min_ns = r.varint().map_err(e)?;
    let max_ns = r.varint().map_err(e)?;
    let nb = r.len(r.remaining()).map_err(e)?;
    let mut blocks = Vec::with_capacity(nb);
    for _ in 0..nb {
        let offset = r.uvarint().map_err(e)?;
        let len = r.uvarint().map_err(e)?;
        let raw_len = r.uvarint().map_err(e)? as usize;
        let crc = r.u32_le().map_err(e)?;
        if offset < HEADER_LEN || offset.saturating_add(len) > blocks_end || raw_len > 1 << 30 {
            return Err(format!(
                "block at {offset}+{len} lies outside the block area"
            ));
        }
        blocks.push(BlockRef {
            offset,
            len,
            raw_len,
            crc,
        });
    }
    let nn = r.len(r.remaining()).map_err(e)?;
    let mut names = Vec::with_capacity(nn);
    for _ in 0..nn {
        names.push(r.str().map_err(e)?.to_string());
    }
    let name = |i: u64| -> Result<String, String> {
        names
            .get(i as usize)
            .cloned()
            .ok_or_else(|| format!("name {i} is not in the table"))
    };
    let no = r.len(r.remaining()).map_err(e)?;
    let mut ops = Vec::with_capacity(no);
    for _ in 0..no {
        let service = name(r.uvarint().map_err(e)?)?;
        let operation = name(r.uvarint().map_err(e)?)?;
        let kind = r.u8().map_err(e)?;
        ops.push(OpKey {
            service,
            operation,
            kind,
        });
    }
    let mut postings = vec![Vec::new(); ops.len()];
    let nt = r.len(r.remaining()).map_err(e)?;
    let mut traces = Vec::with_capacity(nt);
    let mut span_count = 0u64;
    for i in 0..nt {
        let id: TraceId = r.bytes(16).map_err(e)?.try_into().unwrap_or_default();
        let block = r.uvarint().map_err(e)?;
        let spans = r.uvarint().map_err(e)?;
        let start_ns = r.varint().map_err(e)?;
        let dur = r.uvarint().map_err(e)?;
        if block >= blocks.len() as u64 {
            return Err(format!(
                "trace in block {block}, beyond {} blocks",
                blocks.len()
            ));
        }
        if traces.last().is_some_and(|t: &TraceRef| t.id >= id) {
            return Err("trace ids out of order".into());
        }
        let nops = r.len(r.remaining()).map_err(e)?;
        for _ in 0..nops {
            let op = r.uvarint().map_err(e)? as usize;
            postings
                .get_mut(op)
                .ok_or_else(|| format!("op {op} is not in the table"))?
                .push(i as u32);
        }
        span_count += spans;
        traces.push(TraceRef {
            id,
            block: block as u32,
            spans: u32::try_from(spans).unwrap_or(u32::MAX),
            start_ns,
            end_ns: start_ns.saturating_add(i64::try_from(dur).unwrap_or(i64::MAX)),
        });
    }
    let nl = r.len(r.remaining()).map_err(e)?;
    let mut links = Vec::with_capacity(nl);
    for _ in 0..nl {
        let p = name(r.uvarint().map_err(e)?)?;
        let c = name(r.uvarint().map_err(e)?)?;
        let n = r.uvarint().map_err(e)?;
        links.push((p, c, n));
    }
    if !r.is_empty() {
        return Err("trailing bytes in index".into());
    }
    Ok(Decoded {
        seq: 0,
        path: PathBuf::new(),
        size: 0,
        flushed_lsn,
        min_ns,
        max_ns,
        span_count,
        blocks,
        traces,
        ops,
        postings,
        links,
    })
}

/// The cross-service calls in one trace's spans: (parent service, child
/// service) for each span whose parent is present and in another service,
/// as Jaeger counts dependencies.
pub fn trace_links<'a>(
    spans: impl IntoIterator<Item = &'a Span> + Clone,
) -> Vec<(&'a str, &'a str)> {
    let by_id: HashMap<_, &str> = spans
        .clone()
        .into_iter()
        .map(|s| (s.span_id, s.resource.service.as_str()))
        .collect();
    spans
        .into_iter()
        .filter_map(|s| {
            let parent = by_id.get(&s.parent_span_id?)?;
            (*parent != s.resource.service).then_some((*parent, s.resource.service.as_str()))
        })
        .collect()
}

/// Writes a segment of `traces` (sorted by id) and returns its path.
/// Blocks close at about `block_bytes` of encoded spans; a trace is never split.
pub fn write(
    dir: &Path,
    seq: u64,
    traces: &BTreeMap<TraceId, Vec<Span>>,
    flushed_lsn: u64,
    block_bytes: usize,
    zstd_level: i32,
) -> io::Result<PathBuf> {
    let path = dir.join(file_name(seq));
    let tmp = dir.join(format!("{}.tmp", file_name(seq)));
    let res = (|| {
        let mut f = io::BufWriter::new(File::create(&tmp)?);
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        f.write_all(&header)?;
        let mut pos = HEADER_LEN;
        let mut blocks: Vec<BlockRef> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut name_ix: HashMap<String, u64> = HashMap::new();
        let mut intern = |s: &str, names: &mut Vec<String>| -> u64 {
            if let Some(i) = name_ix.get(s) {
                return *i;
            }
            names.push(s.to_string());
            name_ix.insert(s.to_string(), names.len() as u64 - 1);
            names.len() as u64 - 1
        };
        let mut ops: Vec<(u64, u64, u8)> = Vec::new();
        let mut op_ix: HashMap<(u64, u64, u8), u64> = HashMap::new();
        let mut links: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut trace_rows = Vec::with_capacity(traces.len());
        let (mut min_ns, mut max_ns) = (i64::MAX, i64::MIN);
        let mut raw: Vec<u8> = Vec::new();
        let mut pending: Vec<&Span> = Vec::new();
        let flush_block = |pending: &mut Vec<&Span>,
                           raw: &mut Vec<u8>,
                           f: &mut io::BufWriter<File>,
                           pos: &mut u64,
                           blocks: &mut Vec<BlockRef>|
         -> io::Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            raw.clear();
            encode_spans(pending.iter().copied(), raw);
            let z = zstd::bulk::compress(raw, zstd_level)?;
            f.write_all(&z)?;
            blocks.push(BlockRef {
                offset: *pos,
                len: z.len() as u64,
                raw_len: raw.len(),
                crc: crc32fast::hash(&z),
            });
            *pos += z.len() as u64;
            pending.clear();
            Ok(())
        };
        let mut pending_bytes = 0u64;
        for (id, spans) in traces {
            let block = blocks.len() as u64;
            let (mut start, mut end) = (i64::MAX, i64::MIN);
            let mut trace_ops: Vec<u64> = Vec::new();
            for s in spans {
                start = start.min(s.start_ns);
                end = end.max(s.end_ns());
                let key = (
                    intern(&s.resource.service, &mut names),
                    intern(&s.name, &mut names),
                    s.kind as u8,
                );
                let op = *op_ix.entry(key).or_insert_with(|| {
                    ops.push(key);
                    ops.len() as u64 - 1
                });
                if !trace_ops.contains(&op) {
                    trace_ops.push(op);
                }
                pending.push(s);
                pending_bytes += s.approx_bytes();
            }
            for (p, c) in trace_links(spans) {
                let k = (intern(p, &mut names), intern(c, &mut names));
                *links.entry(k).or_default() += 1;
            }
            min_ns = min_ns.min(start);
            max_ns = max_ns.max(end);
            trace_rows.push((*id, block, spans.len() as u64, start, end, trace_ops));
            if pending_bytes >= block_bytes as u64 {
                flush_block(&mut pending, &mut raw, &mut f, &mut pos, &mut blocks)?;
                pending_bytes = 0;
            }
        }
        flush_block(&mut pending, &mut raw, &mut f, &mut pos, &mut blocks)?;
        let mut ix = Vec::new();
        put_uvarint(&mut ix, flushed_lsn);
        put_varint(&mut ix, if traces.is_empty() { 0 } else { min_ns });
        put_varint(&mut ix, if traces.is_empty() { 0 } else { max_ns });
        put_uvarint(&mut ix, blocks.len() as u64);
        for b in &blocks {
            put_uvarint(&mut ix, b.offset);
            put_uvarint(&mut ix, b.len);
            put_uvarint(&mut ix, b.raw_len as u64);
            ix.extend_from_slice(&b.crc.to_le_bytes());
        }
        put_uvarint(&mut ix, names.len() as u64);
        for n in &names {
            put_str(&mut ix, n);
        }
        put_uvarint(&mut ix, ops.len() as u64);
        for (svc, op, kind) in &ops {
            put_uvarint(&mut ix, *svc);
            put_uvarint(&mut ix, *op);
            ix.push(*kind);
        }
        put_uvarint(&mut ix, trace_rows.len() as u64);
        for (id, block, n, start, end, trace_ops) in &trace_rows {
            ix.extend_from_slice(id);
            put_uvarint(&mut ix, *block);
            put_uvarint(&mut ix, *n);
            put_varint(&mut ix, *start);
            put_uvarint(&mut ix, end.saturating_sub(*start).max(0) as u64);
            put_uvarint(&mut ix, trace_ops.len() as u64);
            for op in trace_ops {
                put_uvarint(&mut ix, *op);
            }
        }
        put_uvarint(&mut ix, links.len() as u64);
        for ((p, c), n) in &links {
            put_uvarint(&mut ix, *p);
            put_uvarint(&mut ix, *c);
            put_uvarint(&mut ix, *n);
        }
        f.write_all(&ix)?;
        f.write_all(&pos.to_le_bytes())?;
        f.write_all(&(ix.len() as u64).to_le_bytes())?;
        f.write_all(&crc32fast::hash(&ix).to_le_bytes())?;
        f.write_all(FOOTER_MAGIC)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok::<(), io::Error>(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path)?;
    fsync_dir(dir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::store::codec::tests::sample_span;

    fn traces() -> BTreeMap<TraceId, Vec<Span>> {
        let mut m = BTreeMap::new();
        for t in 1..=20u8 {
            let root = sample_span(t, 1, None, "web");
            let child = sample_span(t, 2, Some(1), "db");
            m.insert([t; 16], vec![root, child]);
        }
        m
    }

    #[test]
    fn writes_and_reads_back_with_index() {
        let dir = tempfile::tempdir().unwrap();
        let t = traces();
        // Small blocks: several traces per block, several blocks.
        let path = write(dir.path(), 7, &t, 99, 2000, 1).unwrap();
        assert_eq!(path.file_name().unwrap(), "000000000007.seg");
        let seg = Segment::open(&path, 7).unwrap();
        assert_eq!(seg.flushed_lsn, 99);
        assert_eq!(seg.traces.len(), 20);
        assert_eq!(seg.span_count, 40);
        assert!(seg.blocks.len() > 2, "{} blocks", seg.blocks.len());
        for (id, spans) in &t {
            assert_eq!(&seg.trace_spans(id).unwrap(), spans);
            assert_eq!(seg.find(id).unwrap().spans, 2);
        }
        assert!(seg.find(&[0xaa; 16]).is_none());
        assert_eq!(seg.links, vec![("web".into(), "db".into(), 20)]);
        let web = seg.ops.iter().position(|o| o.service == "web").unwrap();
        assert_eq!(seg.postings[web].len(), 20);
    }

    #[test]
    fn damaged_files_are_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &traces(), 1, 1 << 20, 1).unwrap();
        let good = fs::read(&path).unwrap();
        for at in [0, good.len() - 30, good.len() - 2] {
            let mut b = good.clone();
            b[at] ^= 0xff;
            fs::write(&path, &b).unwrap();
            assert!(Segment::open(&path, 1).is_err(), "flip at {at}");
        }
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(Segment::open(&path, 1).is_err());
    }
}
