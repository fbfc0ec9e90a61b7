//! A container runtime stand-in for the log tests: a thread that writes numbered lines
//! (`seq=<n> <padding>`) at a fixed rate into the kubelet layout
//! `<root>/<namespace>_<pod>_<uid>/<container>/0.log`, in the CRI format
//! (`<RFC3339Nano> stdout F <body>`) or Docker's json-file format, and rotates the file
//! the way a node does: by rename (kubelet: rename to `0.log.<YYYYMMDD-hhmmss.nnn>`, the
//! runtime writes a last batch to the old fd before it reopens, the oldest rotated files
//! are gzipped and deleted) or by copytruncate (logrotate: copy, then truncate the live
//! file while the writer keeps its O_APPEND fd).
//!
//! Every line carries its sequence number, so a test can say which lines arrived, which
//! twice and which never.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

/// One container's log location in the kubelet layout.
#[derive(Clone, Debug)]
pub struct ContainerLog {
    pub root: PathBuf,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
}

impl ContainerLog {
    pub fn new(root: &Path, namespace: &str, pod: &str, container: &str) -> ContainerLog {
        ContainerLog {
            root: root.to_path_buf(),
            namespace: namespace.into(),
            pod: pod.into(),
            // Any fixed uid will do; the agent must not put it in a label.
            uid: format!("0000-{pod}-{container}"),
            container: container.into(),
        }
    }

    /// `<root>/<namespace>_<pod>_<uid>/<container>`.
    pub fn dir(&self) -> PathBuf {
        self.root
            .join(format!("{}_{}_{}", self.namespace, self.pod, self.uid))
            .join(&self.container)
    }

    /// The live file, `.../0.log`.
    pub fn live(&self) -> PathBuf {
        self.dir().join("0.log")
    }

    /// The LogQL stream selector for this container.
    pub fn selector(&self) -> String {
        format!(
            "{{namespace=\"{}\", pod=\"{}\", container=\"{}\"}}",
            self.namespace, self.pod, self.container
        )
    }

    /// Creates the directory and an empty `0.log` (so a tailer can find it before the first line).
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(self.dir())?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.live())
            .map(drop)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    None,
    /// kubelet: rename, one more batch to the old fd, reopen `0.log`.
    Rename,
    /// logrotate's copytruncate: copy to `0.log.<ts>`, truncate the live file.
    CopyTruncate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `<ts> <stream> <P|F> <body>`.
    Cri,
    /// `{"log":"<body>\n","stream":"stdout","time":"<ts>"}`.
    Docker,
}

#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub lines_per_sec: u64,
    pub rotation: Rotation,
    pub rotate_every: Duration,
    /// Rotated files kept (plain and gzipped together); older ones are deleted.
    pub keep_rotated: usize,
    /// Gzip the first rotated file once a newer one exists (as kubelet compresses all but
    /// the newest); the tailer must ignore `.gz`.
    pub gzip_one: bool,
    pub format: Format,
    /// Body length in bytes (`seq=<n> ` then padding), at least the `seq=<n>` part.
    pub body_len: usize,
    /// Every k-th line is written as partial chunks of `partial_chunk` bytes
    /// (CRI `P` tags, Docker `log` without `\n`) ending with a final one.
    pub partial_every: Option<u64>,
    pub partial_chunk: usize,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            lines_per_sec: 1000,
            rotation: Rotation::None,
            rotate_every: Duration::from_secs(1),
            keep_rotated: 4,
            gzip_one: true,
            format: Format::Cri,
            body_len: 100,
            partial_every: None,
            partial_chunk: 40,
            stream: "stdout",
        }
    }
}

/// What a writer did.
#[derive(Clone, Debug, Default)]
pub struct WriterReport {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub gzipped: u64,
    pub deleted: u64,
}

/// The line body for sequence number `seq`: `seq=<n> ` padded with a repeating pattern
/// to `len` bytes, so the test can compare the whole line, not only the number.
pub fn body(seq: u64, len: usize) -> String {
    let mut s = format!("seq={seq} ");
    const PAD: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = 0;
    while s.len() < len {
        s.push(PAD[i % PAD.len()] as char);
        i += 1;
    }
    s
}

/// Now as RFC3339 with nanoseconds in UTC, as CRI runtimes write it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// One CRI log line, newline included.
pub fn cri_line(ts: &str, stream: &str, tag: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + ts.len() + 16);
    v.extend_from_slice(ts.as_bytes());
    v.push(b' ');
    v.extend_from_slice(stream.as_bytes());
    v.push(b' ');
    v.extend_from_slice(tag.as_bytes());
    v.push(b' ');
    v.extend_from_slice(body);
    v.push(b'\n');
    v
}

/// One Docker json-file line, newline included; `complete` adds the `\n` to `log`.
pub fn docker_line(ts: &str, stream: &str, body: &str, complete: bool) -> Vec<u8> {
    let log = if complete {
        format!("{body}\n")
    } else {
        body.to_string()
    };
    let mut v = serde_json::to_vec(&serde_json::json!({"log": log, "stream": stream, "time": ts}))
        .expect("a JSON object always serializes");
    v.push(b'\n');
    v
}

/// The bytes of line `seq` in `opts`' format, partial chunks included.
fn encode(seq: u64, opts: &WriterOptions, out: &mut Vec<u8>) {
    let ts = now_rfc3339();
    let text = body(seq, opts.body_len);
    let split = opts
        .partial_every
        .is_some_and(|k| k > 0 && seq.is_multiple_of(k) && opts.partial_chunk > 0);
    let chunks: Vec<&str> = if split {
        // The body is ASCII, so byte chunks are char boundaries.
        text.as_bytes()
            .chunks(opts.partial_chunk)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect()
    } else {
        vec![&text]
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        match opts.format {
            Format::Cri => out.extend(cri_line(
                &ts,
                opts.stream,
                if i == last { "F" } else { "P" },
                chunk.as_bytes(),
            )),
            Format::Docker => out.extend(docker_line(&ts, opts.stream, chunk, i == last)),
        }
    }
}

/// A running writer thread; [`LogWriter::stop`] ends it and returns what it did.
pub struct LogWriter {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<io::Result<WriterReport>>>,
    name: String,
}

impl LogWriter {
    /// Creates the container's directory and starts writing at sequence number `first_seq`.
    pub fn start(log: ContainerLog, opts: WriterOptions, first_seq: u64) -> LogWriter {
        log.create()
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.live().display()));
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let name = log.live().display().to_string();
        let handle = {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::Builder::new()
                .name(format!("writer-{}", log.container))
                .spawn(move || run(&log, &opts, first_seq, &stop, &written))
                .expect("spawning the log writer thread")
        };
        LogWriter {
            stop,
            written,
            handle: Some(handle),
            name,
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Stops after the current batch; panics if the writer failed (naming the file).
    pub fn stop(mut self) -> WriterReport {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.handle.take().expect("stopped once");
        match handle.join() {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => panic!("log writer for {} failed: {e}", self.name),
            Err(_) => panic!("log writer for {} panicked", self.name),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn open_live(log: &ContainerLog) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log.live())
}

/// Batches every 10 ms, as many lines as the rate asks for by then.
fn run(
    log: &ContainerLog,
    opts: &WriterOptions,
    first_seq: u64,
    stop: &AtomicBool,
    written: &AtomicU64,
) -> io::Result<WriterReport> {
    let mut report = WriterReport::default();
    let mut file = open_live(log)?;
    let start = Instant::now();
    let mut last_rotation = Instant::now();
    let mut seq = first_seq;
    let mut buf = Vec::new();
    let mut write_batch = |file: &mut File, seq: &mut u64, report: &mut WriterReport| {
        let due = (start.elapsed().as_secs_f64() * opts.lines_per_sec as f64) as u64;
        buf.clear();
        let mut n = 0;
        while report.lines + n < due {
            encode(*seq, opts, &mut buf);
            *seq += 1;
            n += 1;
        }
        file.write_all(&buf)?;
        report.lines += n;
        report.bytes += buf.len() as u64;
        written.fetch_add(n, Ordering::SeqCst);
        io::Result::Ok(())
    };
    while !stop.load(Ordering::SeqCst) {
        write_batch(&mut file, &mut seq, &mut report)?;
        if opts.rotation != Rotation::None && last_rotation.elapsed() >= opts.rotate_every {
            let rotated = log.dir().join(format!("0.log.{}", rotation_suffix()));
            match opts.rotation {
                Rotation::Rename => {
                    fs::rename(log.live(), &rotated)?;
                    // The runtime writes on until the kubelet's reopen request lands.
                    std::thread::sleep(Duration::from_millis(10));
                    write_batch(&mut file, &mut seq, &mut report)?;
                    file = open_live(log)?;
                }
                Rotation::CopyTruncate => {
                    fs::copy(log.live(), &rotated)?;
                    file.set_len(0)?;
                }
                Rotation::None => {}
            }
            report.rotations += 1;
            last_rotation = Instant::now();
            tidy_rotated(log, opts, &mut report)?;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    file.flush()?;
    Ok(report)
}

/// `YYYYMMDD-hhmmss.nnn` (UTC), from the RFC3339 form.
fn rotation_suffix() -> String {
    let ts = now_rfc3339(); // 2024-01-02T03:04:05.123456789Z
    let digits: String = ts.chars().filter(char::is_ascii_digit).collect();
    // 20240102 030405 123...
    format!("{}-{}.{}", &digits[..8], &digits[8..14], &digits[14..17])
}

/// Gzips the oldest plain rotated file once a newer one exists (once per writer if
/// `gzip_one`), and deletes the oldest past `keep_rotated`.
fn tidy_rotated(
    log: &ContainerLog,
    opts: &WriterOptions,
    report: &mut WriterReport,
) -> io::Result<()> {
    let mut rotated: Vec<PathBuf> = fs::read_dir(log.dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("0.log.") && !n.ends_with(".tmp"))
        })
        .collect();
    rotated.sort();
    if opts.gzip_one && report.gzipped == 0 {
        let plain: Vec<&PathBuf> = rotated
            .iter()
            .filter(|p| p.extension().is_none_or(|e| e != "gz"))
            .collect();
        if plain.len() >= 2 {
            let src = plain[0].clone();
            let gz = PathBuf::from(format!("{}.gz", src.display()));
            let tmp = PathBuf::from(format!("{}.gz.tmp", src.display()));
            let mut enc =
                flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::fast());
            io::copy(&mut File::open(&src)?, &mut enc)?;
            enc.finish()?.sync_all()?;
            fs::rename(&tmp, &gz)?;
            fs::remove_file(&src)?;
            report.gzipped += 1;
            for p in rotated.iter_mut() {
                if *p == src {
                    *p = gz.clone();
                }
            }
            rotated.sort();
        }
    }
    while rotated.len() > opts.keep_rotated {
        fs::remove_file(rotated.remove(0))?;
        report.deleted += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rotates_and_gzips() {
        let dir = tempfile::tempdir().unwrap();
        let log = ContainerLog::new(dir.path(), "ns", "pod", "c");
        let opts = WriterOptions {
            lines_per_sec: 2000,
            rotation: Rotation::Rename,
            rotate_every: Duration::from_millis(100),
            keep_rotated: 3,
            partial_every: Some(10),
            ..WriterOptions::default()
        };
        let w = LogWriter::start(log.clone(), opts, 0);
        std::thread::sleep(Duration::from_millis(650));
        let r = w.stop();
        assert!(r.lines > 500 && r.rotations >= 4, "{r:?}");
        assert_eq!(r.gzipped, 1, "{r:?}");
        let names: Vec<String> = fs::read_dir(log.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().filter(|n| n.starts_with("0.log.")).count() <= 3,
            "{names:?}"
        );
        let live = fs::read_to_string(log.live()).unwrap();
        let first = live.lines().next().unwrap();
        assert!(first.contains(" stdout "), "{first}");
        assert_eq!(body(7, 20), "seq=7 abcdefghijklmn");
        assert!(rotation_suffix().len() == "20240102-030405.123".len());
    }

    #[test]
    fn copytruncate_keeps_the_fd_and_docker_lines_parse() {
        let dir = tempfile::tempdir().unwrap();
        let log = ContainerLog::new(dir.path(), "ns", "pod", "d");
        let opts = WriterOptions {
            lines_per_sec: 1000,
            rotation: Rotation::CopyTruncate,
            rotate_every: Duration::from_millis(200),
            format: Format::Docker,
            gzip_one: false,
            ..WriterOptions::default()
        };
        let w = LogWriter::start(log.clone(), opts, 5);
        std::thread::sleep(Duration::from_millis(500));
        let r = w.stop();
        assert!(r.rotations >= 2, "{r:?}");
        // After a truncate the O_APPEND writer starts again at offset 0: no hole of NULs.
        let live = fs::read(log.live()).unwrap();
        assert!(!live.contains(&0), "a hole in the truncated file");
        for line in String::from_utf8(live).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["log"].as_str().unwrap().starts_with("seq="));
        }
    }
}
