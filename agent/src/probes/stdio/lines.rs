//! Turning tapped writes into log lines. A process's writes to one fd are not
//! lines: a line can span writes and a write can hold many lines. Bytes are kept
//! per (process, fd) until a newline, a truncated write (the rest of it never
//! reached us, so nothing may be joined across it), the size cap, or an idle
//! timeout (a prompt without a newline, a process that exited).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// A line longer than this is emitted in pieces of this size (as CRI splits long lines).
pub const MAX_LINE: usize = 1 << 20;

/// One complete line and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub cgroup_id: u64,
    pub tgid: u32,
    /// 1 stdout, 2 stderr.
    pub fd: u32,
    /// When its first byte was written, in ns since the Unix epoch.
    pub unix_ns: i64,
    pub text: String,
}

/// One write as the kernel program saw it.
#[derive(Debug)]
pub struct Write<'a> {
    pub cgroup_id: u64,
    pub tgid: u32,
    pub fd: u32,
    pub unix_ns: i64,
    pub data: &'a [u8],
    /// Bytes past `data` were cut by the kernel program.
    pub truncated: bool,
}

#[derive(Debug)]
struct Pending {
    cgroup_id: u64,
    unix_ns: i64,
    bytes: Vec<u8>,
    last_write: Instant,
}

#[derive(Debug, Default)]
pub struct Joiner {
    pending: HashMap<(u32, u32), Pending>,
}

impl Joiner {
    /// Adds one write; every line it completes goes to `emit`.
    pub fn push(&mut self, w: Write<'_>, now: Instant, emit: &mut impl FnMut(Line)) {
        let key = (w.tgid, w.fd);
        let mut rest = w.data;
        while !rest.is_empty() {
            let p = self.pending.entry(key).or_insert_with(|| Pending {
                cgroup_id: w.cgroup_id,
                unix_ns: w.unix_ns,
                bytes: Vec::new(),
                last_write: now,
            });
            p.last_write = now;
            let room = MAX_LINE - p.bytes.len();
            match memchr::memchr(b'\n', &rest[..rest.len().min(room)]) {
                Some(i) => {
                    p.bytes.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    self.emit(key, emit);
                }
                None if rest.len() >= room => {
                    p.bytes.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                    self.emit(key, emit);
                }
                None => {
                    p.bytes.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        if w.truncated {
            self.emit(key, emit);
        }
    }

    /// Emits what has waited longer than `idle` for its newline.
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, emit: &mut impl FnMut(Line)) {
        let stale: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_write) >= idle)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            self.emit(key, emit);
        }
    }

    fn emit(&mut self, key: (u32, u32), emit: &mut impl FnMut(Line)) {
        if let Some(p) = self.pending.remove(&key) {
            let text = match String::from_utf8(p.bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            emit(Line {
                cgroup_id: p.cgroup_id,
                tgid: key.0,
                fd: key.1,
                unix_ns: p.unix_ns,
                text,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(tgid: u32, data: &[u8], truncated: bool) -> Write<'_> {
        Write {
            cgroup_id: 7,
            tgid,
            fd: 1,
            unix_ns: 100,
            data,
            truncated,
        }
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn joins_and_splits_writes_into_lines() {
        let (mut j, now, mut out) = (Joiner::default(), Instant::now(), Vec::new());
        j.push(write(1, b"hel", false), now, &mut |l| out.push(l));
        j.push(write(2, b"other\n", false), now, &mut |l| out.push(l));
        j.push(write(1, b"lo\nworld\n\npart", false), now, &mut |l| {
            out.push(l)
        });
        assert_eq!(texts(&out), ["other", "hello", "world", ""]);
        assert_eq!(out[1].tgid, 1);
        out.clear();
        j.flush_idle(now, Duration::from_secs(1), &mut |l| out.push(l));
        assert!(out.is_empty(), "not idle yet");
        j.flush_idle(
            now + Duration::from_secs(2),
            Duration::from_secs(1),
            &mut |l| out.push(l),
        );
        assert_eq!(texts(&out), ["part"]);
    }

    #[test]
    fn truncated_write_ends_the_line_and_invalid_utf8_is_kept_lossy() {
        let (mut j, now, mut out) = (Joiner::default(), Instant::now(), Vec::new());
        j.push(write(1, b"a\xffb", true), now, &mut |l| out.push(l));
        j.push(write(1, b"next\n", false), now, &mut |l| out.push(l));
        assert_eq!(texts(&out), ["a\u{fffd}b", "next"]);
    }

    #[test]
    fn overlong_lines_come_out_in_max_line_pieces() {
        let (mut j, now, mut out) = (Joiner::default(), Instant::now(), Vec::new());
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        for chunk in big.chunks(4096) {
            j.push(write(1, chunk, false), now, &mut |l| out.push(l));
        }
        j.push(write(1, b"\n", false), now, &mut |l| out.push(l));
        let lens: Vec<usize> = out.iter().map(|l| l.text.len()).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10]);
    }
}
