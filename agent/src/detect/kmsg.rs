//! Reading the kernel log from `/dev/kmsg`, one record per `read(2)`.
//!
//! A record is `pri,seq,ts_usec,flags[,more];message\n` followed by optional
//! continuation lines that start with a space (`" SUBSYSTEM=pci"`: the record's
//! dictionary). We keep the message and drop the dictionary: no NPD rule looks
//! at it. The kernel escapes non-printable bytes (and `\`) as `\xNN`; we undo
//! that so patterns see the bytes the driver printed.
//!
//! Losses: when the kernel's ring buffer overwrites records this reader had not
//! read yet, `read` fails with `EPIPE` and the next read returns the oldest
//! record still there. The gap in sequence numbers is what was lost; it is
//! counted in [`KmsgStats::lost`] and reading goes on.
//!
//! Time: `ts_usec` is the kernel's `local_clock()` at printk time, which like
//! `CLOCK_MONOTONIC` stands still while the machine is suspended. We turn it into
//! wall time with `boot = now(CLOCK_REALTIME) - now(CLOCK_MONOTONIC)`, taken
//! again for every record so NTP steps are followed. NPD uses `sysinfo` uptime
//! (`CLOCK_BOOTTIME`, whole seconds) instead; on servers that never suspend the
//! two agree to within a second, and ours does not drift after a suspend.
//!
//! Besides the character device, a regular file holding records one per line
//! (as `cat /dev/kmsg > file` leaves them) can be read and followed; tests use it.

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::FileTypeExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

/// One kernel log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Syslog facility (`pri >> 3`; 0 = kernel).
    pub facility: u32,
    /// Syslog level (`pri & 7`; 0 = emerg .. 7 = debug).
    pub level: u8,
    pub seq: u64,
    /// Microseconds since boot, as the kernel wrote it.
    pub ts_usec: u64,
    /// Wall-clock time of the record (see the module docs for how).
    pub time: SystemTime,
    /// The message, unescaped, without the trailing newline.
    pub message: String,
}

/// What the readers have seen, for `/metrics` (shared by every reader).
#[derive(Debug, Default)]
pub struct KmsgStats {
    /// Records read and parsed.
    pub records: AtomicU64,
    /// Records the kernel overwrote before we read them (sequence gaps).
    pub lost: AtomicU64,
    /// Records that could not be parsed (dropped).
    pub malformed: AtomicU64,
}

/// Why a record could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Wall-clock time of boot, by `CLOCK_REALTIME - CLOCK_MONOTONIC` (module docs say why).
pub fn boot_time() -> SystemTime {
    let now = SystemTime::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return now;
    }
    let up = Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    now.checked_sub(up).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Parses one record (a `read` of `/dev/kmsg`, or one line of a file of them).
/// `boot` turns `ts_usec` into wall time. Never panics on any input.
pub fn parse_record(buf: &[u8], boot: SystemTime) -> Result<Record, ParseError> {
    let semi = memchr::memchr(b';', buf).ok_or(ParseError("no ';' after the header"))?;
    let header = std::str::from_utf8(&buf[..semi]).map_err(|_| ParseError("header is not text"))?;
    let mut fields = header.split(',');
    let mut number = |what: &'static str| -> Result<u64, ParseError> {
        fields
            .next()
            .and_then(|f| f.trim().parse::<u64>().ok())
            .ok_or(ParseError(what))
    };
    let pri = number("bad priority")?;
    let seq = number("bad sequence number")?;
    let ts_usec = number("bad timestamp")?;
    // Flags and any later fields (e.g. `caller=T123`) are not needed.
    let body = &buf[semi + 1..];
    // The message ends at the first newline; the rest is the dictionary.
    let end = memchr::memchr(b'\n', body).unwrap_or(body.len());
    let message = unescape(&body[..end]);
    let time = boot
        .checked_add(Duration::from_micros(ts_usec))
        .unwrap_or(boot);
    Ok(Record {
        facility: u32::try_from(pri >> 3).unwrap_or(u32::MAX),
        level: (pri & 7) as u8,
        seq,
        ts_usec,
        time,
        message,
    })
}

/// Undoes the kernel's `\xNN` escaping; anything else (including a malformed
/// escape) is kept as it is. Invalid UTF-8 becomes U+FFFD.
pub fn unescape(raw: &[u8]) -> String {
    if memchr::memchr(b'\\', raw).is_none() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && raw.get(i + 1) == Some(&b'x')
            && let (Some(h), Some(l)) = (
                raw.get(i + 2).and_then(|c| hex(*c)),
                raw.get(i + 3).and_then(|c| hex(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 4;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Largest record the kernel hands out (`CONSOLE_EXT_LOG_MAX`); a smaller buffer
/// gets `EINVAL`, so we grow to this and beyond if ever needed.
const RECORD_MAX: usize = 8192;
const RECORD_LIMIT: usize = 1 << 20;

/// Reads records from `/dev/kmsg` (or a file of records), counting what is
/// lost or malformed in the shared [`KmsgStats`].
pub struct KmsgReader {
    path: PathBuf,
    file: File,
    device: bool,
    buf: Vec<u8>,
    /// File mode: bytes read but not yet split into lines.
    pending: Vec<u8>,
    /// The sequence number we expect next (None before the first record).
    next_seq: Option<u64>,
}

impl KmsgReader {
    /// Opens `path` for reading from the oldest record the kernel still holds
    /// (what `open` of `/dev/kmsg` does), so callers can apply a lookback.
    pub fn open(path: &Path) -> io::Result<KmsgReader> {
        let file = File::open(path)?;
        let device = file.metadata()?.file_type().is_char_device();
        Ok(KmsgReader {
            path: path.to_path_buf(),
            file,
            device,
            buf: vec![0; RECORD_MAX],
            pending: Vec::new(),
            next_seq: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the same path after an error, skipping records already read.
    pub fn reopen(&mut self) -> io::Result<()> {
        let next_seq = self.next_seq;
        *self = KmsgReader::open(&self.path)?;
        self.next_seq = next_seq;
        Ok(())
    }

    /// The next record. Blocks on the device; on a regular file, returns
    /// `Ok(None)` at its end (call again later to follow it). Malformed records
    /// and overwritten ones are counted in `stats` and skipped.
    pub fn next_record(&mut self, stats: &KmsgStats) -> io::Result<Option<Record>> {
        loop {
            let raw = if self.device {
                match self.read_device()? {
                    Some(n) => self.buf[..n].to_vec(),
                    None => continue,
                }
            } else {
                match self.read_file_line()? {
                    Some(line) => line,
                    None => return Ok(None),
                }
            };
            match parse_record(&raw, boot_time()) {
                Ok(rec) => {
                    if let Some(expected) = self.next_seq {
                        if rec.seq < expected {
                            // Seen before (after a reopen): skip quietly.
                            continue;
                        }
                        if rec.seq > expected {
                            stats.lost.fetch_add(rec.seq - expected, Ordering::Relaxed);
                        }
                    }
                    self.next_seq = Some(rec.seq.saturating_add(1));
                    stats.records.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(rec));
                }
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(path = %self.path.display(), error = %e, "malformed kernel log record dropped");
                }
            }
        }
    }

    /// One `read` of the device: `Some(len)`, or `None` when the read should be
    /// retried (interrupted, records overwritten, buffer grown).
    fn read_device(&mut self) -> io::Result<Option<usize>> {
        match self.file.read(&mut self.buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of /dev/kmsg",
            )),
            Ok(n) => Ok(Some(n)),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => Ok(None),
                // Overwritten before we read them; the sequence gap at the next
                // record tells how many.
                Some(libc::EPIPE) => Ok(None),
                // Our buffer is smaller than the record: grow and read it again.
                Some(libc::EINVAL) if self.buf.len() < RECORD_LIMIT => {
                    let len = self.buf.len() * 2;
                    self.buf.resize(len, 0);
                    Ok(None)
                }
                _ => Err(e),
            },
        }
    }

    /// The next complete record line of a regular file (continuation lines
    /// dropped), or `None` at its current end.
    fn read_file_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.pending) {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                if line.first() == Some(&b' ') || line.len() == 1 {
                    continue;
                }
                return Ok(Some(line));
            }
            let n = match self.file.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None);
            }
            self.pending.extend_from_slice(&self.buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn boot() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn parses_a_record_with_dictionary_and_escapes() {
        let raw = b"6,1074,5054797896,-,caller=T12;loop0: a\\x5cb \\x09tab \\xc3\\xa9\n SUBSYSTEM=block\n DEVICE=b7:0\n";
        let r = parse_record(raw, boot()).unwrap();
        assert_eq!(r.level, 6);
        assert_eq!(r.facility, 0);
        assert_eq!(r.seq, 1074);
        assert_eq!(r.ts_usec, 5_054_797_896);
        assert_eq!(r.message, "loop0: a\\b \ttab é");
        assert_eq!(r.time, boot() + Duration::from_micros(5_054_797_896));
    }

    #[test]
    fn facility_and_level_split_from_priority() {
        let r = parse_record(b"30,1,2,-;x", boot()).unwrap();
        assert_eq!((r.facility, r.level), (3, 6));
        assert_eq!(r.message, "x");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for raw in [
            &b""[..],
            b";",
            b"6,1;msg",
            b"x,1,2,-;m",
            b"6,1,99999999999999999999999,-;m",
            b"\xff\xfe,1,2;m",
            b"6,-1,2,-;m",
            b"\\x",
        ] {
            assert!(parse_record(raw, boot()).is_err(), "{raw:?}");
        }
        // Random bytes: must not panic whatever they are.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..64);
            let mut raw: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if rng.bool() {
                raw.splice(0..0, b"6,1,2,-;".iter().copied());
            }
            let _ = parse_record(&raw, boot());
            let _ = unescape(&raw);
        }
        // Huge timestamps saturate instead of overflowing.
        assert!(parse_record(b"6,1,18446744073709551615,-;m", boot()).is_ok());
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(unescape(b"a\\xZZ\\x4"), "a\\xZZ\\x4");
        assert_eq!(unescape(b"\\x41\\x42"), "AB");
    }

    #[test]
    fn file_reader_counts_gaps_and_malformed_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"6,10,100,-;first\n SUBSYSTEM=x\ngarbage\n6,11,200,-;second\n6,15,300,-;after a gap\n6,16,4")
            .unwrap();
        let stats = KmsgStats::default();
        let mut r = KmsgReader::open(&path).unwrap();
        let got: Vec<String> = std::iter::from_fn(|| r.next_record(&stats).unwrap())
            .map(|r| r.message)
            .collect();
        assert_eq!(got, ["first", "second", "after a gap"]);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 3);
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        // The partial last line completes later: the reader follows the file.
        f.write_all(b"00,-;completed\n").unwrap();
        let rec = r.next_record(&stats).unwrap().unwrap();
        assert_eq!((rec.seq, rec.message.as_str()), (16, "completed"));
        assert_eq!(stats.records.load(Ordering::Relaxed), 4);
    }

    /// The real device: a line we write comes back as a record with a wall time
    /// close to now.
    #[test]
    fn reads_what_is_written_to_dev_kmsg() {
        let tag = format!(
            "sonde-kmsg-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .and_then(|mut f| f.write_all(format!("{tag} \x01ctl\n").as_bytes()))
            .expect("write /dev/kmsg (tests run as root)");
        let stats = KmsgStats::default();
        let mut r = KmsgReader::open(Path::new("/dev/kmsg")).unwrap();
        assert!(r.device);
        loop {
            let rec = r.next_record(&stats).unwrap().unwrap();
            if rec.message.starts_with(&tag) {
                assert_eq!(rec.message, format!("{tag} \x01ctl"));
                let age = SystemTime::now()
                    .duration_since(rec.time)
                    .unwrap_or_default();
                assert!(age < Duration::from_secs(60), "record time off by {age:?}");
                break;
            }
        }
        assert!(stats.records.load(Ordering::Relaxed) >= 1);
    }
}
