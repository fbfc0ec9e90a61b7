//! The tailer driven directly (no collector): rotation by rename and by
//! copytruncate under a concurrent writer, restart from positions, malformed
//! input, and backpressure through the real queue.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest, common::v1::any_value::Value,
};
use prost::Message;

use super::{
    Stream,
    batch::Source,
    follower::{MAX_LINE, Sink},
    pipeline,
    positions::Position,
    redact::Rules,
    stats::{LogStats, Malformed},
    tailer::Tailer,
};
use crate::export::otlp::{
    buffer::{Buffer, Kind, Overflow},
    stats::{DropReason, ExportStats},
};

#[derive(Default)]
struct Collect {
    lines: Vec<(String, u64, Stream, String)>,
}

impl Sink for Collect {
    fn line(&mut self, src: &Arc<Source>, ts: u64, _observed: u64, stream: Stream, body: &str) {
        self.lines
            .push((src.labels.container.clone(), ts, stream, body.to_string()));
    }
}

fn container_dir(root: &Path) -> PathBuf {
    let d = root.join("ns_pod_0000-uid").join("app");
    fs::create_dir_all(&d).unwrap();
    d
}

fn cri(seq: usize) -> String {
    // Every 7th line is written in two partial parts, joined back by the tailer.
    let body = format!("seq={seq:07} {}", "x".repeat(seq % 50));
    if seq % 7 == 3 {
        let (a, b) = body.split_at(6);
        format!(
            "2024-01-01T00:00:00.{seq:09}Z stdout P {a}\n2024-01-01T00:00:00.{seq:09}Z stdout F {b}\n"
        )
    } else {
        format!("2024-01-01T00:00:00.{seq:09}Z stderr F {body}\n")
    }
}

/// Each sequence number's count in what was collected.
fn seqs(c: &Collect) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for (_, _, _, body) in &c.lines {
        let n: usize = body
            .strip_prefix("seq=")
            .and_then(|s| s.get(..7))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a sequence line: {body:?}"));
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

fn assert_exactly_once(c: &Collect, range: std::ops::Range<usize>) {
    let m = seqs(c);
    let dup: Vec<_> = m.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    let missing: Vec<_> = range
        .clone()
        .filter(|i| !m.contains_key(i))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "missing (first few): {missing:?} of {}",
        range.len()
    );
    assert_eq!(m.len(), range.len(), "unexpected sequence numbers");
}

fn tailer(root: &Path, positions: Vec<Position>) -> (Tailer, LogStats) {
    let stats = LogStats::new(ExportStats::default());
    (
        Tailer::new(root.to_path_buf(), "node".into(), positions, stats.clone()),
        stats,
    )
}

/// Polls until `want` lines were collected and a few idle rounds passed.
fn poll_until(t: &mut Tailer, c: &mut Collect, want: usize, writer_done: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle = 0;
    while Instant::now() < deadline {
        let n = t.poll(c, 1 << 20, &mut || true);
        if n == 0 {
            if writer_done.load(Ordering::SeqCst) && c.lines.len() >= want {
                idle += 1;
                if idle > 8 {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(30));
        }
    }
    panic!(
        "timed out with {} of {want} lines; positions {:?}",
        c.lines.len(),
        t.positions()
    );
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

#[test]
fn rename_rotation_under_a_concurrent_writer_loses_and_repeats_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let live = dir.join("0.log");
    const N: usize = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let writer = {
        let (live, dir, done, started) = (live.clone(), dir.clone(), done.clone(), started.clone());
        thread::spawn(move || {
            let mut f = append(&live);
            while !started.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
            for i in 0..N {
                f.write_all(cri(i).as_bytes()).unwrap();
                if i % 1500 == 1499 {
                    // kubelet: rename, then the runtime reopens a new file.
                    fs::rename(&live, dir.join(format!("0.log.2024010100{:04}", i / 1500)))
                        .unwrap();
                    f = append(&live);
                }
                if i % 200 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            // A compressed rotation is never read.
            fs::write(dir.join("0.log.20230101-000000.gz"), cri(N + 1)).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut t, stats) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    // The writer starts once the tailer follows the file (a fresh tailer does
    // not read files that were rotated away before it started).
    while t.positions().is_empty() {
        t.poll(&mut c, 1 << 20, &mut || true);
        thread::sleep(Duration::from_millis(5));
    }
    started.store(true, Ordering::SeqCst);
    poll_until(&mut t, &mut c, N, &done);
    writer.join().unwrap();
    assert_exactly_once(&c, 0..N);
    assert!(
        stats.rotations_count("rename") >= 1,
        "{}",
        stats.rotations_count("rename")
    );
    let (container, ts, stream, body) = &c.lines[0];
    assert_eq!(
        (container.as_str(), *ts, *stream),
        ("app", 1_704_067_200_000_000_000, Stream::Stderr)
    );
    assert!(body.starts_with("seq=0000000"));
    let joined = c
        .lines
        .iter()
        .find(|l| l.3.starts_with("seq=0000003"))
        .unwrap();
    assert_eq!(
        (joined.1, joined.2),
        (1_704_067_200_000_000_003, Stream::Stdout),
        "a joined line keeps its first part's time"
    );
}

#[test]
fn copytruncate_rotation_under_a_concurrent_writer_loses_and_repeats_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let live = dir.join("0.log");
    const N: usize = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let writer = {
        let (live, dir, done, started) = (live.clone(), dir.clone(), done.clone(), started.clone());
        thread::spawn(move || {
            let mut f = append(&live);
            while !started.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
            for i in 0..N {
                f.write_all(cri(i).as_bytes()).unwrap();
                if i % 1500 == 1499 {
                    // logrotate copytruncate: copy, then truncate the file the writer keeps.
                    fs::copy(&live, dir.join(format!("0.log.{}", i / 1500))).unwrap();
                    f.set_len(0).unwrap();
                }
                if i % 20 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut t, stats) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    // The writer starts once the tailer follows the file (a fresh tailer does
    // not read files that were rotated away before it started).
    while t.positions().is_empty() {
        t.poll(&mut c, 1 << 20, &mut || true);
        thread::sleep(Duration::from_millis(5));
    }
    started.store(true, Ordering::SeqCst);
    poll_until(&mut t, &mut c, N, &done);
    writer.join().unwrap();
    assert_exactly_once(&c, 0..N);
    assert!(stats.rotations_count("truncate") >= 1);
    assert_eq!(stats.rotations_count("rename"), 0);
}

#[test]
fn restart_from_positions_resumes_across_rotations_while_down() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let live = dir.join("0.log");
    let done = AtomicBool::new(true);
    let mut f = append(&live);
    for i in 0..1000 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    // An unfinished partial line at the checkpoint: its parts must be read again.
    f.write_all(b"2024-01-01T00:00:01Z stdout P seq=0001000 fir")
        .unwrap();
    f.write_all(b"\n").unwrap();
    let (mut t, _) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    poll_until(&mut t, &mut c, 1000, &done);
    assert_exactly_once(&c, 0..1000);
    let saved = t.positions();
    drop(t);
    assert_eq!(saved.len(), 1);
    assert!(
        saved[0].offset < fs::metadata(&live).unwrap().len(),
        "the checkpoint stops before the partial line"
    );

    // Down: the partial line completes, more lines, a rename rotation, a new file.
    f.write_all(b"2024-01-01T00:00:01Z stdout F st\n").unwrap();
    for i in 1001..1200 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    fs::rename(&live, dir.join("0.log.20240101-000000")).unwrap();
    let mut f = append(&live);
    for i in 1200..1500 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let saved_json = serde_json::to_string(&saved).unwrap();
    let (mut t, _) = tailer(root.path(), serde_json::from_str(&saved_json).unwrap());
    let mut c = Collect::default();
    poll_until(&mut t, &mut c, 500, &done);
    assert_exactly_once(&c, 1000..1500);
    assert!(
        c.lines.iter().any(|l| l.3 == "seq=0001000 first"),
        "the partial line joined after the restart"
    );

    // Down again: copytruncate.
    let saved = t.positions();
    drop(t);
    for i in 1500..1600 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    fs::copy(&live, dir.join("0.log.1")).unwrap();
    f.set_len(0).unwrap();
    for i in 1600..1650 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let (mut t, _) = tailer(root.path(), saved);
    let mut c = Collect::default();
    poll_until(&mut t, &mut c, 150, &done);
    assert_exactly_once(&c, 1500..1650);
}

/// The e2e kill -9 case: while the agent is down the writer rotates twice by
/// rename, so one file is created and rotated away unseen. After the restart
/// the checkpointed file is finished, the unseen rotation read whole, then the
/// live file, in order; a rotation finished before the checkpoint is not read
/// again. A second crash while those copies are being read loses nothing.
#[test]
fn restart_reads_rotations_made_entirely_while_down_in_order() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let live = dir.join("0.log");
    let done = AtomicBool::new(true);
    let mut f = append(&live);
    for i in 0..500 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let (mut t, _) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    poll_until(&mut t, &mut c, 500, &done);
    // A rotation the agent sees and finishes before the checkpoint.
    fs::rename(&live, dir.join("0.log.20240101-000000")).unwrap();
    let mut f = append(&live);
    for i in 500..1000 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    poll_until(&mut t, &mut c, 1000, &done);
    while t.positions().len() > 1 {
        t.poll(&mut c, 1 << 20, &mut || true);
        thread::sleep(Duration::from_millis(50));
    }
    assert_exactly_once(&c, 0..1000);
    let saved = t.positions();
    drop(t);
    assert_eq!(saved.len(), 1, "{saved:?}");

    // Down: more lines, rotation, a whole new file, rotation again, a new live file.
    for i in 1000..1200 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    fs::rename(&live, dir.join("0.log.20240101-000001")).unwrap();
    let mut f = append(&live);
    for i in 1200..1500 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    fs::rename(&live, dir.join("0.log.20240101-000002")).unwrap();
    let mut f = append(&live);
    for i in 1500..1700 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    // Compressed rotations are never read.
    fs::write(dir.join("0.log.20231231-000000.gz"), cri(99_999)).unwrap();
    let saved = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();

    // Up, but killed after the first file: only one file is read.
    let (mut t, _) = tailer(root.path(), saved);
    let mut c = Collect::default();
    let mut first = true;
    t.poll(&mut c, 1 << 20, &mut || {
        std::mem::replace(&mut first, false)
    });
    assert_exactly_once(&c, 1000..1200);
    let saved = t.positions();
    drop(t);
    assert!(
        saved
            .iter()
            .any(|p| p.path.ends_with("0.log.20240101-000002")),
        "the unseen rotation is checkpointed under its own name: {saved:?}"
    );

    // Up again: the rest, each line once, in order.
    for i in 1700..1750 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let (mut t, _) = tailer(root.path(), saved);
    poll_until(&mut t, &mut c, 750, &done);
    assert_exactly_once(&c, 1000..1750);
    let order: Vec<usize> = c
        .lines
        .iter()
        .map(|l| l.3[4..11].parse().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "lines out of order across the rotated files"
    );
}

#[test]
fn a_deleted_file_is_drained_through_its_descriptor_then_forgotten() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let live = dir.join("0.log");
    let mut f = append(&live);
    for i in 0..10 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let (mut t, stats) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    t.poll(&mut c, 1 << 20, &mut || true);
    assert_eq!(c.lines.len(), 10);
    fs::remove_file(&live).unwrap();
    for i in 10..20 {
        f.write_all(cri(i).as_bytes()).unwrap();
    }
    let done = AtomicBool::new(true);
    thread::sleep(Duration::from_millis(300));
    poll_until(&mut t, &mut c, 20, &done);
    assert_exactly_once(&c, 0..20);
    thread::sleep(Duration::from_millis(1100));
    thread::sleep(Duration::from_millis(300));
    t.poll(&mut c, 1 << 20, &mut || true);
    assert!(t.positions().is_empty(), "{:?}", t.positions());
    assert_eq!(stats.files_watched.get(), 0);
}

#[test]
fn malformed_lines_are_kept_repaired_and_counted() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let mut body = Vec::new();
    body.extend_from_slice(b"2024-01-01T00:00:00Z stdout F good\n");
    body.extend_from_slice(b"not a log line at all\n");
    body.extend_from_slice(b"\n");
    body.extend_from_slice(b"yesterday stderr F bad time\n");
    body.extend_from_slice(b"2024-01-01T00:00:00Z stdout F caf\xc3\xa9 \xff\xfe\n");
    body.extend_from_slice(
        br#"{"log":"docker line\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#,
    );
    body.push(b'\n');
    body.extend_from_slice(br#"{"log":"joined ","stream":"stdout","time":"2024-01-01T00:00:01Z"}"#);
    body.push(b'\n');
    body.extend_from_slice(
        br#"{"log":"docker\n","stream":"stdout","time":"2024-01-01T00:00:02Z"}"#,
    );
    body.push(b'\n');
    body.extend_from_slice(br#"{"log":"truncated js"#);
    body.push(b'\n');
    // A raw line longer than the cap, then partial parts joining past it.
    body.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
    body.push(b'\n');
    let part = "b".repeat(MAX_LINE / 2 + 1);
    for tag in ["P", "P", "F"] {
        body.extend_from_slice(format!("2024-01-01T00:00:03Z stdout {tag} {part}\n").as_bytes());
    }
    fs::write(dir.join("0.log"), &body).unwrap();
    let (mut t, stats) = tailer(root.path(), vec![]);
    let mut c = Collect::default();
    while t.poll(&mut c, 1 << 20, &mut || true) > 0 {}
    let bodies: Vec<&str> = c.lines.iter().map(|l| l.3.as_str()).collect();
    assert_eq!(
        &bodies[..8],
        &[
            "good",
            "not a log line at all",
            "bad time",
            "café \u{fffd}\u{fffd}",
            "docker line",
            "joined docker",
            "{\"log\":\"truncated js",
            &"a".repeat(MAX_LINE)[..]
        ]
    );
    assert_eq!(bodies[8], "a".repeat(10));
    // 3 parts of just over half the cap: no two fit together, so each is its own piece.
    assert_eq!(bodies.len(), 12);
    for b in &bodies[9..] {
        assert_eq!(b.len(), part.len());
    }
    assert_eq!(c.lines[1].2, Stream::Unknown);
    assert_eq!(c.lines[2].2, Stream::Stderr);
    assert_eq!(stats.malformed_count(Malformed::Unparsed), 4);
    assert_eq!(stats.malformed_count(Malformed::BadTimestamp), 1);
    assert_eq!(stats.malformed_count(Malformed::InvalidUtf8), 1);
    assert_eq!(stats.malformed_count(Malformed::Overlong), 3);
    assert_eq!(stats.export.dropped_points(DropReason::Empty), 1);
    assert_eq!(stats.lines_read.get(), 12);
    assert_eq!(stats.bytes_read.get(), body.len() as u64);
}

fn decode_all(b: &mut Buffer) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(p) = b.next() {
        let req = ExportLogsServiceRequest::decode(p.payload.as_slice()).unwrap();
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                for r in sl.log_records {
                    if let Some(Value::StringValue(s)) = r.body.and_then(|b| b.value) {
                        out.push(s);
                    }
                }
            }
        }
        b.ack(p.seq);
    }
    out
}

#[test]
fn a_full_queue_stops_reading_instead_of_dropping_and_redaction_applies() {
    let root = tempfile::tempdir().unwrap();
    let dir = container_dir(root.path());
    let mut f = append(&dir.join("0.log"));
    const N: usize = 60_000; // ~6 MiB: several batches
    let mut text = String::new();
    for i in 0..N {
        text.push_str(&format!(
            "2024-01-01T00:00:00Z stdout F seq={i:07} user bob@example.com {}\n",
            "y".repeat(60)
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
    let qdir = tempfile::tempdir().unwrap();
    let export = ExportStats::default();
    // A bound smaller than one batch: at most one batch beyond it is ever queued.
    let buffer = Buffer::open(qdir.path(), 1, Kind::Logs, Overflow::Block, export.clone()).unwrap();
    let buffer = Arc::new(Mutex::new(buffer));
    let stats = LogStats::new(export);
    let rules = Rules::parse(
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/redaction.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    let redactor = stats.redactor(rules);
    let t = Tailer::new(
        root.path().to_path_buf(),
        "node".into(),
        vec![],
        stats.clone(),
    );
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let positions = qdir.path().join("pos/positions.json");
    fs::create_dir_all(positions.parent().unwrap()).unwrap();
    let reader = {
        let (b, stop, stats) = (buffer.clone(), stop.clone(), stats.clone());
        thread::spawn(move || {
            pipeline::reader_loop(
                t,
                None,
                redactor,
                Duration::from_millis(100),
                b,
                tx,
                stop,
                stats,
            )
        })
    };
    let writer = {
        let (b, p) = (buffer.clone(), positions.clone());
        thread::spawn(move || pipeline::writer_loop(rx, b, Arc::new(tokio::sync::Notify::new()), p))
    };
    thread::sleep(Duration::from_millis(1500));
    let read_while_blocked = stats.lines_read.get();
    let queued = buffer.lock().unwrap().len();
    assert!(
        read_while_blocked < N as u64,
        "read {read_while_blocked} of {N} with nobody sending"
    );
    assert!(queued <= 2, "{queued} batches queued past the bound");
    assert!(
        stats.backpressure_seconds() > 0.5,
        "{}",
        stats.backpressure_seconds()
    );
    // A sender drains the queue: reading resumes, and every line arrives once.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < N && Instant::now() < deadline {
        got.extend(decode_all(&mut buffer.lock().unwrap()));
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), N);
    for (i, line) in got.iter().enumerate() {
        assert!(
            line.starts_with(&format!("seq={i:07} user <redacted-email> ")),
            "{line}"
        );
    }
    assert_eq!(stats.export.dropped_points(DropReason::BufferFull), 0);
    // The checkpoint covers everything that reached the queue.
    let saved = super::positions::load(&positions).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].offset, text.len() as u64);
}
