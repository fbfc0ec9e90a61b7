//! One open log file: reads complete lines from its offset with `pread` into a
//! shared 1 MiB buffer, finds newlines with `memchr`, detects the format per
//! line (Docker JSON when it starts with `{`, else CRI), joins partial lines per
//! stream up to [`MAX_LINE`], repairs what it can and hands each line to a [`Sink`].

use std::{fs::File, io, os::unix::fs::FileExt, path::PathBuf, sync::Arc, time::Instant};

use crate::export::otlp::stats::DropReason;

use super::{
    Stream,
    batch::Source,
    cri,
    discover::Identity,
    docker,
    positions::{Position, fingerprint},
    stats::{LogStats, Malformed},
};

/// Longest line shipped in one piece; longer joined or raw lines are split.
pub const MAX_LINE: usize = 1 << 20;
/// Bytes of a file's head that identify it (see `positions`).
pub const FINGERPRINT_LEN: u64 = 256;

/// Where finished lines go (the batch in production, a `Vec` in tests).
pub trait Sink {
    fn line(&mut self, src: &Arc<Source>, ts: u64, observed: u64, stream: Stream, body: &str);
}

/// A partial line being joined.
#[derive(Debug)]
struct Partial {
    buf: Vec<u8>,
    ts: Option<u64>,
    /// File offset of its first part: positions never pass it.
    start: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Live,
    /// Renamed away or deleted: read to EOF, then closed once the writer had
    /// time to reopen (it may still append a little after the rename).
    Draining {
        since: Instant,
    },
    /// A copy (copytruncate sibling, or a rotated file found at startup): nobody
    /// writes to it; closed at EOF.
    Copy,
}

#[derive(Debug)]
pub struct Follower {
    /// The name it was found under (a renamed file keeps its live name).
    pub path: PathBuf,
    file: File,
    pub id: Identity,
    /// Just after the last line handed on.
    pub offset: u64,
    pub fp: String,
    pub fp_len: u64,
    partial: [Option<Partial>; 2],
    pub src: Arc<Source>,
    pub state: State,
    /// When we started following it: rotated files written after this are ours.
    pub opened_at: std::time::SystemTime,
    /// Set by [`Follower::read`] when the file turned out truncated (copytruncate).
    pub truncated: bool,
}

pub struct Ctx<'a> {
    pub sink: &'a mut dyn Sink,
    pub stats: &'a LogStats,
}

fn now_ns() -> u64 {
    crate::export::otlp::unix_nanos(std::time::SystemTime::now())
}

impl Follower {
    /// Follows `file` from `offset`, fingerprinting its head now.
    pub fn open(
        path: PathBuf,
        file: File,
        id: Identity,
        offset: u64,
        src: Arc<Source>,
        state: State,
    ) -> io::Result<Follower> {
        let (fp, fp_len) = head_fingerprint(&file, FINGERPRINT_LEN)?;
        Ok(Follower {
            path,
            file,
            id,
            offset,
            fp,
            fp_len,
            partial: [None, None],
            src,
            state,
            opened_at: std::time::SystemTime::now(),
            truncated: false,
        })
    }

    /// Moves this follower's read state onto `file` (the copy a copytruncate left,
    /// holding the same bytes), leaving `self` to restart at 0 in the live file.
    pub fn split_off_copy(&mut self, path: PathBuf, file: File, id: Identity) -> Follower {
        let copy = Follower {
            path,
            file,
            id,
            offset: self.offset,
            fp: self.fp.clone(),
            fp_len: self.fp_len,
            partial: std::mem::take(&mut self.partial),
            src: self.src.clone(),
            state: State::Copy,
            opened_at: self.opened_at,
            truncated: false,
        };
        self.restart();
        copy
    }

    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Starts over at the head of the (truncated) file, forgetting joined parts.
    pub fn restart(&mut self) {
        self.truncated = false;
        // Copies made from now on hold lines of this new start.
        self.opened_at = std::time::SystemTime::now();
        self.offset = 0;
        self.partial = [None, None];
        self.fp = fingerprint(&[]);
        self.fp_len = 0;
    }

    /// Where a restart may resume: before any line not yet handed on in full.
    pub fn safe_offset(&self) -> u64 {
        self.partial
            .iter()
            .flatten()
            .map(|p| p.start)
            .fold(self.offset, u64::min)
    }

    pub fn position(&self) -> Position {
        Position {
            path: self.path.clone(),
            dev: self.id.dev,
            inode: self.id.inode,
            fingerprint: self.fp.clone(),
            fingerprint_len: self.fp_len,
            offset: self.safe_offset(),
            checkpoint_ns: now_ns(),
        }
    }

    /// Checks the head against the fingerprint and extends it while the file is
    /// shorter than [`FINGERPRINT_LEN`]. False when the head changed (truncated
    /// and rewritten) or the file shrank below our offset.
    pub fn head_unchanged(&mut self, size: u64) -> io::Result<bool> {
        if size < self.offset || size < self.fp_len {
            return Ok(false);
        }
        if self.fp_len == FINGERPRINT_LEN || size == self.fp_len {
            if self.fp_len == 0 {
                return Ok(true);
            }
            // Only the full-length fingerprint needs re-reading: cheap, one pread.
            let (fp, _) = head_fingerprint(&self.file, self.fp_len)?;
            return Ok(fp == self.fp);
        }
        let (old, _) = head_fingerprint(&self.file, self.fp_len)?;
        if old != self.fp {
            return Ok(false);
        }
        let (fp, len) = head_fingerprint(&self.file, FINGERPRINT_LEN)?;
        self.fp = fp;
        self.fp_len = len;
        Ok(true)
    }

    /// Reads and hands on complete lines until EOF or about `budget` bytes.
    /// Returns the bytes consumed and whether EOF was reached.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        ctx: &mut Ctx<'_>,
    ) -> io::Result<(usize, bool)> {
        let mut total = 0;
        while total < budget {
            let n = read_at_retry(&self.file, buf, self.offset)?;
            if n == 0 {
                // Shorter than our offset: truncated (copytruncate), seen without waiting
                // for discovery, so the copy is still there to be found.
                if self.state == State::Live && self.file_len()? < self.offset {
                    self.truncated = true;
                }
                return Ok((total, true));
            }
            // Checked after the read: if the head is still ours, so was what we read
            // (a truncation after it cannot change bytes already read).
            if self.state == State::Live {
                let size = self.file.metadata()?.len();
                if !self.head_unchanged(size)? {
                    self.truncated = true;
                    return Ok((total, true));
                }
            }
            let data = &buf[..n];
            let observed = now_ns();
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', data) {
                self.line(&data[start..nl], self.offset + start as u64, observed, ctx);
                start = nl + 1;
            }
            if start == 0 {
                if n < buf.len() {
                    // An unfinished last line: wait for the rest.
                    return Ok((total, true));
                }
                ctx.stats.malformed(Malformed::Overlong);
                self.line(data, self.offset, observed, ctx);
                start = n;
            }
            self.offset += start as u64;
            total += start;
            ctx.stats.bytes_read.inc_by(start as u64);
            if start < n && n < buf.len() {
                return Ok((total, true));
            }
        }
        Ok((total, false))
    }

    /// The file is finished: hands on an unterminated last line and any parts
    /// still waiting for their `F`, as they are.
    pub fn finish(&mut self, buf: &mut [u8], ctx: &mut Ctx<'_>) {
        loop {
            match self.read(buf, usize::MAX, ctx) {
                Ok((_, true)) => break,
                Ok((_, false)) => continue,
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), "reading a finished log file: {e}");
                    break;
                }
            }
        }
        if let Ok(n) = read_at_retry(&self.file, buf, self.offset)
            && n > 0
        {
            let observed = now_ns();
            let rest = buf[..n].to_vec();
            self.line(&rest, self.offset, observed, ctx);
            self.offset += n as u64;
            ctx.stats.bytes_read.inc_by(n as u64);
        }
        self.flush_partials(ctx);
    }

    /// Parts still waiting for their `F` go out as they are.
    pub fn flush_partials(&mut self, ctx: &mut Ctx<'_>) {
        let observed = now_ns();
        for (slot, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if let Some(p) = self.partial[slot].take() {
                emit(
                    &self.src,
                    p.ts.unwrap_or(observed),
                    observed,
                    stream,
                    &p.buf,
                    ctx,
                );
            }
        }
    }

    fn line(&mut self, raw: &[u8], start: u64, observed: u64, ctx: &mut Ctx<'_>) {
        if raw.is_empty() {
            ctx.stats.dropped(DropReason::Empty, 1);
            return;
        }
        if raw[0] == b'{' {
            if let Some(d) = docker::parse(raw) {
                let msg = d.message;
                self.piece(
                    d.stream,
                    d.partial,
                    d.ts,
                    msg.as_bytes(),
                    start,
                    observed,
                    ctx,
                );
                return;
            }
        } else if let Some(c) = cri::parse(raw) {
            self.piece(c.stream, c.partial, c.ts, c.message, start, observed, ctx);
            return;
        }
        ctx.stats.malformed(Malformed::Unparsed);
        emit(&self.src, observed, observed, Stream::Unknown, raw, ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn piece(
        &mut self,
        stream: Stream,
        partial: bool,
        ts: Option<u64>,
        msg: &[u8],
        start: u64,
        observed: u64,
        ctx: &mut Ctx<'_>,
    ) {
        if ts.is_none() {
            ctx.stats.malformed(Malformed::BadTimestamp);
        }
        let slot = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            // No stream to join within: each record stands alone.
            Stream::Unknown => {
                emit(
                    &self.src,
                    ts.unwrap_or(observed),
                    observed,
                    stream,
                    msg,
                    ctx,
                );
                return;
            }
        };
        let Some(mut p) = self.partial[slot].take() else {
            if partial {
                self.partial[slot] = Some(Partial {
                    buf: msg.to_vec(),
                    ts,
                    start,
                });
            } else {
                emit(
                    &self.src,
                    ts.unwrap_or(observed),
                    observed,
                    stream,
                    msg,
                    ctx,
                );
            }
            return;
        };
        if p.buf.len() + msg.len() > MAX_LINE {
            // Past the cap: ship what is joined so far as one piece, go on with the rest.
            ctx.stats.malformed(Malformed::Overlong);
            emit(
                &self.src,
                p.ts.unwrap_or(observed),
                observed,
                stream,
                &p.buf,
                ctx,
            );
            p.buf.clear();
            p.ts = p.ts.or(ts);
            p.start = start;
        }
        p.buf.extend_from_slice(msg);
        if partial {
            self.partial[slot] = Some(p);
        } else {
            emit(
                &self.src,
                p.ts.unwrap_or(observed),
                observed,
                stream,
                &p.buf,
                ctx,
            );
        }
    }
}

fn emit(src: &Arc<Source>, ts: u64, observed: u64, stream: Stream, body: &[u8], ctx: &mut Ctx<'_>) {
    ctx.stats.lines_read.inc();
    match std::str::from_utf8(body) {
        Ok(s) => ctx.sink.line(src, ts, observed, stream, s),
        Err(_) => {
            ctx.stats.malformed(Malformed::InvalidUtf8);
            let s = String::from_utf8_lossy(body);
            ctx.sink.line(src, ts, observed, stream, &s);
        }
    }
}

fn read_at_retry(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The fingerprint of the first `max` bytes (fewer if the file is shorter).
pub fn head_fingerprint(file: &File, max: u64) -> io::Result<(String, u64)> {
    let mut head = [0u8; FINGERPRINT_LEN as usize];
    let want = max.min(FINGERPRINT_LEN) as usize;
    let mut got = 0;
    while got < want {
        let n = read_at_retry(file, &mut head[got..want], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok((fingerprint(&head[..got]), got as u64))
}
