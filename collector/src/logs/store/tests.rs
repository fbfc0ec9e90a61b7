use std::{ops::ControlFlow, path::Path, time::Duration};

use super::{LogAppendError, LogStore, LogStoreOptions, Tuning};
use crate::{ingest::AppendRefusal, store::clock::now_ns};
use crate::{
    logs::model::{Direction, LogEntry, LogSource, StreamEntries, StreamRef},
    model::{Labels, MatchOp, Matcher},
};

const SEC: i64 = 1_000_000_000;

fn tuning() -> Tuning {
    Tuning {
        maintenance_interval: None,
        ..Tuning::default()
    }
}

fn tuning_zstd() -> Tuning {
    Tuning {
        wal_zstd: true,
        ..tuning()
    }
}

fn open(dir: &Path) -> LogStore {
    LogStore::open_tuned(dir, LogStoreOptions::default(), tuning()).unwrap()
}

fn labels(app: &str, n: usize) -> Labels {
    Labels::from_pairs([("app", app.to_string()), ("pod", format!("p{n}"))])
}

fn entry(ts_ns: i64, line: impl Into<String>) -> LogEntry {
    LogEntry {
        ts_ns,
        line: line.into(),
        metadata: Vec::new(),
    }
}

/// A small deterministic PRNG (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn all(store: &LogStore, s: &StreamRef, dir: Direction) -> Vec<LogEntry> {
    let mut out = Vec::new();
    store
        .scan(s, i64::MIN, i64::MAX, dir, &mut |e| {
            out.push(e.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn stream(store: &LogStore, l: &Labels) -> StreamRef {
    let m: Vec<Matcher> = l.iter().map(|(k, v)| Matcher::equal(k, v)).collect();
    let found = store.streams(&m, i64::MIN, i64::MAX).unwrap();
    assert_eq!(found.len(), 1, "stream {l}");
    found[0].clone()
}

/// Appends shuffled entries for `n_streams` streams in several pushes and
/// returns, per stream, what a forward scan must return (stable sort of the
/// append order by time: equal timestamps keep append order).
fn load(
    store: &LogStore,
    n_streams: usize,
    per: usize,
    base: i64,
    rng: &mut Rng,
) -> Vec<(Labels, Vec<LogEntry>)> {
    let mut expect: Vec<(Labels, Vec<LogEntry>)> = (0..n_streams)
        .map(|i| (labels("web", i), Vec::new()))
        .collect();
    let mut pending: Vec<(usize, LogEntry)> = Vec::new();
    for (si, (_, _)) in expect.iter().enumerate() {
        for j in 0..per {
            // Coarse timestamps so ties happen; the line keeps entries distinct.
            let ts = base + (rng.next() % (per as u64 / 2 + 1)) as i64 * SEC;
            let mut e = entry(
                ts,
                format!(
                    "stream {si} line {j} {}",
                    "x".repeat((rng.next() % 80) as usize)
                ),
            );
            if j % 7 == 0 {
                e.metadata = vec![("trace_id".into(), format!("{:x}", rng.next()))];
            }
            pending.push((si, e));
        }
    }
    // Shuffle across streams, then push in batches of mixed streams.
    for i in (1..pending.len()).rev() {
        pending.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    for batch in pending.chunks(97) {
        let mut push: Vec<StreamEntries> = Vec::new();
        for (si, e) in batch {
            expect[*si].1.push(e.clone());
            push.push(StreamEntries {
                labels: expect[*si].0.clone(),
                entries: vec![e.clone()],
            });
        }
        let st = store.append(push).unwrap();
        assert_eq!(st.entries, batch.len() as u64);
        assert_eq!(st.duplicates, 0);
    }
    for (_, v) in &mut expect {
        v.sort_by_key(|e| e.ts_ns);
    }
    expect
}

fn check(store: &LogStore, expect: &[(Labels, Vec<LogEntry>)]) {
    for (l, want) in expect {
        let s = stream(store, l);
        assert_eq!(&all(store, &s, Direction::Forward), want, "forward {l}");
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(all(store, &s, Direction::Backward), rev, "backward {l}");
    }
}

fn merged(
    a: &[(Labels, Vec<LogEntry>)],
    b: &[(Labels, Vec<LogEntry>)],
) -> Vec<(Labels, Vec<LogEntry>)> {
    a.iter()
        .zip(b)
        .map(|((l, x), (_, y))| {
            let mut v = x.clone();
            v.extend(y.iter().cloned());
            v.sort_by_key(|e| e.ts_ns);
            (l.clone(), v)
        })
        .collect()
}

#[test]
fn round_trip_out_of_order_across_head_chunks_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let base = now_ns() - 3600 * SEC;
    let mut rng = Rng(0x9e3779b97f4a7c15);
    // Compressed WAL records here; the reopens below use the default (raw)
    // and must replay them all the same.
    let store =
        LogStore::open_tuned(dir.path(), LogStoreOptions::default(), tuning_zstd()).unwrap();
    let first = load(&store, 20, 150, base, &mut rng);
    check(&store, &first);
    store.flush().unwrap();
    check(&store, &first);
    // More entries overlapping the flushed chunks' time range: reads merge
    // chunk and head, equal timestamps in append order.
    let second = load(&store, 20, 150, base, &mut rng);
    let want = merged(&first, &second);
    check(&store, &want);
    let st = store.stats();
    assert_eq!(st.streams, 20);
    assert_eq!(st.entries, 20 * 300);
    assert!(st.disk_bytes > 0);
    drop(store);
    // Reopen: chunks from the file, the rest replayed from the WAL, nothing twice.
    let store = open(dir.path());
    check(&store, &want);
    assert_eq!(store.stats().entries, 20 * 300);
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    check(&store, &want);
    assert_eq!(store.stats().entries, 20 * 300);
    // Everything is in chunk files, so the WAL holds only the new segment's header.
    let wal_segments = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(wal_segments <= 2, "{wal_segments} WAL segments left");
}

#[test]
fn scan_ranges_and_early_break_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let base = now_ns() - 600 * SEC;
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions::default(),
        Tuning {
            // Tiny chunks: the range spans several chunks and files.
            chunk_target_bytes: 200,
            ..tuning()
        },
    )
    .unwrap();
    let l = labels("api", 0);
    for half in 0..2 {
        let entries = (0..50)
            .map(|i| {
                entry(
                    base + (i * 2 + half) * SEC,
                    format!("line {}", i * 2 + half),
                )
            })
            .collect();
        store
            .append(vec![StreamEntries {
                labels: l.clone(),
                entries,
            }])
            .unwrap();
        store.flush().unwrap();
    }
    store
        .append(vec![StreamEntries {
            labels: l.clone(),
            entries: vec![entry(base + 100 * SEC, "line 100")],
        }])
        .unwrap();
    let s = stream(&store, &l);
    let collect = |start: i64, end: i64, dir: Direction, max: usize| {
        let mut out = Vec::new();
        store
            .scan(&s, start, end, dir, &mut |e| {
                out.push(e.line.clone());
                if out.len() == max {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        out
    };
    let names = |r: std::ops::Range<i64>| r.map(|i| format!("line {i}")).collect::<Vec<_>>();
    assert_eq!(
        collect(base, base + 1000 * SEC, Direction::Forward, 5),
        names(0..5)
    );
    assert_eq!(
        collect(base, base + 1000 * SEC, Direction::Backward, 3),
        vec!["line 100", "line 99", "line 98"]
    );
    // [start, end): end excluded.
    assert_eq!(
        collect(base + 10 * SEC, base + 20 * SEC, Direction::Forward, 100),
        names(10..20)
    );
    let mut back = names(10..20);
    back.reverse();
    assert_eq!(
        collect(base + 10 * SEC, base + 20 * SEC, Direction::Backward, 100),
        back
    );
    assert_eq!(
        collect(base + 50 * SEC, base + 50 * SEC, Direction::Forward, 100),
        Vec::<String>::new()
    );
    // Stream selection honours the time range.
    assert!(
        store
            .streams(
                &[Matcher::equal("app", "api")],
                base + 200 * SEC,
                base + 300 * SEC
            )
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .streams(
                &[Matcher::equal("app", "api")],
                base + 100 * SEC,
                base + 101 * SEC
            )
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn matchers_select_streams_and_label_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = now_ns() - 60 * SEC;
    let mk = |pairs: &[(&str, &str)]| StreamEntries {
        labels: Labels::from_pairs(pairs.iter().copied()),
        entries: vec![entry(t, "x")],
    };
    store
        .append(vec![
            mk(&[("app", "web"), ("env", "prod")]),
            mk(&[("app", "web"), ("env", "dev")]),
            mk(&[("app", "db"), ("env", "prod")]),
            mk(&[("app", "cache")]),
        ])
        .unwrap();
    store.flush().unwrap();
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let sel = |ms: &[Matcher]| {
        let mut v: Vec<String> = store
            .streams(ms, i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| s.labels.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(sel(&[m(MatchOp::Equal, "app", "web")]).len(), 2);
    assert_eq!(
        sel(&[
            m(MatchOp::Equal, "app", "web"),
            m(MatchOp::NotEqual, "env", "prod")
        ]),
        vec![r#"{app="web", env="dev"}"#]
    );
    assert_eq!(sel(&[m(MatchOp::Regex, "app", "we.|db")]).len(), 3);
    assert_eq!(
        sel(&[m(MatchOp::NotRegex, "app", "web|db")]),
        vec![r#"{app="cache"}"#]
    );
    // != on a label some streams lack matches those streams too (absent = "").
    assert_eq!(sel(&[m(MatchOp::NotEqual, "env", "prod")]).len(), 2);
    assert!(sel(&[m(MatchOp::Equal, "app", "nope")]).is_empty());
    assert_eq!(
        store.label_names(i64::MIN, i64::MAX).unwrap(),
        vec!["app", "env"]
    );
    assert_eq!(
        store
            .label_values(
                "env",
                &[m(MatchOp::Equal, "app", "web")],
                i64::MIN,
                i64::MAX
            )
            .unwrap(),
        vec!["dev", "prod"]
    );
    assert_eq!(
        store.label_values("app", &[], i64::MIN, i64::MAX).unwrap(),
        vec!["cache", "db", "web"]
    );
    // Out of range: nothing.
    assert!(store.label_names(t + SEC, t + 2 * SEC).unwrap().is_empty());
}

#[test]
fn duplicates_in_unflushed_data_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rx = store.subscribe();
    let t = now_ns() - 10 * SEC;
    let l = labels("web", 1);
    let mut with_md = entry(t, "a");
    with_md.metadata = vec![("k".into(), "v".into())];
    let batch = vec![StreamEntries {
        labels: l.clone(),
        entries: vec![entry(t, "a"), entry(t, "b"), with_md.clone(), entry(t, "a")],
    }];
    let st = store.append(batch.clone()).unwrap();
    assert_eq!((st.entries, st.duplicates, st.bytes), (3, 1, 5));
    let st = store.append(batch).unwrap();
    assert_eq!((st.entries, st.duplicates), (0, 4));
    let got = rx.try_recv().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entries, vec![entry(t, "a"), entry(t, "b"), with_md]);
    // The all-duplicate push sent nothing.
    assert!(rx.try_recv().is_err());
    let s = stream(&store, &l);
    assert_eq!(all(&store, &s, Direction::Forward).len(), 3);
    // Replay applies the same rule: still three after reopening.
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        all(&store, &stream(&store, &l), Direction::Forward).len(),
        3
    );
}

#[test]
fn invalid_pushes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions {
            max_streams: 2,
            retention_time: Duration::from_secs(3600),
            ..LogStoreOptions::default()
        },
        tuning(),
    )
    .unwrap();
    let now = now_ns();
    let good = StreamEntries {
        labels: labels("web", 0),
        entries: vec![entry(now, "ok")],
    };
    let bad = |l: Labels, ts: i64| {
        vec![
            good.clone(),
            StreamEntries {
                labels: l,
                entries: vec![entry(ts, "x")],
            },
        ]
    };
    let err = store.append(bad(Labels::default(), now)).unwrap_err();
    assert!(matches!(err, LogAppendError::EmptyLabels));
    assert_eq!(err.http_status(), 400);
    let err = store
        .append(bad(Labels::from_pairs([("1bad", "v")]), now))
        .unwrap_err();
    assert!(
        matches!(&err, LogAppendError::InvalidLabelName(n) if n == "1bad"),
        "{err}"
    );
    assert!(
        store
            .append(bad(Labels::from_pairs([("a-b", "v")]), now))
            .is_err()
    );
    let err = store
        .append(bad(labels("db", 0), now - 7200 * SEC))
        .unwrap_err();
    assert!(
        matches!(&err, LogAppendError::TooOld { labels, .. } if labels.contains("db")),
        "{err}"
    );
    assert_eq!(err.reason(), "too_old");
    let err = store
        .append(bad(labels("db", 0), now + 3600 * SEC))
        .unwrap_err();
    assert!(matches!(err, LogAppendError::TooNew { .. }));
    let three = vec![
        good.clone(),
        StreamEntries {
            labels: labels("db", 1),
            entries: vec![entry(now, "x")],
        },
        StreamEntries {
            labels: labels("db", 2),
            entries: vec![entry(now, "x")],
        },
    ];
    let err = store.append(three).unwrap_err();
    assert_eq!(err.http_status(), 429);
    assert_eq!(store.stats().entries, 0);
    assert_eq!(store.stats().streams, 0);
    assert!(store.streams(&[], i64::MIN, i64::MAX).unwrap().is_empty());
    // Nothing reached the WAL either.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.stats().entries, 0);
    // Within the limit it works, and existing streams don't count twice.
    drop(store);
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions {
            max_streams: 2,
            ..LogStoreOptions::default()
        },
        tuning(),
    )
    .unwrap();
    store.append(vec![good.clone(), good.clone()]).unwrap();
    store
        .append(vec![
            good,
            StreamEntries {
                labels: labels("db", 1),
                entries: vec![entry(now, "y")],
            },
        ])
        .unwrap();
}

#[test]
fn torn_wal_tail_is_cut_and_earlier_entries_survive() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ns() - 10 * SEC;
    let l = labels("web", 0);
    {
        let store = open(dir.path());
        for i in 0..10 {
            store
                .append(vec![StreamEntries {
                    labels: l.clone(),
                    entries: vec![entry(t + i, format!("line {i}"))],
                }])
                .unwrap();
        }
    }
    let wal = dir.path().join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let last = segs.last().unwrap().clone();
    // Cut 5 bytes off the last record, then append garbage.
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    let mut data = std::fs::read(&last).unwrap();
    data.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&last, data).unwrap();
    let store = open(dir.path());
    let got: Vec<String> = all(&store, &stream(&store, &l), Direction::Forward)
        .into_iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(got, (0..9).map(|i| format!("line {i}")).collect::<Vec<_>>());
    // The store keeps working and a second reopen sees the same plus new data.
    store
        .append(vec![StreamEntries {
            labels: l.clone(),
            entries: vec![entry(t + 20, "after")],
        }])
        .unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        all(&store, &stream(&store, &l), Direction::Forward).len(),
        10
    );
}

#[test]
fn garbage_chunk_files_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ns() - 10 * SEC;
    let l = labels("web", 0);
    {
        let store = open(dir.path());
        store
            .append(vec![StreamEntries {
                labels: l.clone(),
                entries: vec![entry(t, "kept")],
            }])
            .unwrap();
        store.flush().unwrap();
    }
    let chunks = dir.path().join("chunks");
    std::fs::write(
        chunks.join("000000000777.chunks"),
        b"not a chunk file at all, just text....",
    )
    .unwrap();
    // A real file cut short (lost its footer).
    let real = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.ends_with("000000000777.chunks"))
        .unwrap();
    let data = std::fs::read(&real).unwrap();
    std::fs::write(chunks.join("000000000778.chunks"), &data[..data.len() - 10]).unwrap();
    std::fs::write(chunks.join("000000000779.chunks"), b"").unwrap();
    let store = open(dir.path());
    assert_eq!(store.corrupt_files(), 3);
    assert_eq!(
        all(&store, &stream(&store, &l), Direction::Forward),
        vec![entry(t, "kept")]
    );
    drop(store);
    // Set aside, so the next open does not see them again.
    assert_eq!(open(dir.path()).corrupt_files(), 0);
}

#[test]
fn corrupt_chunk_data_is_a_read_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ns() - 10 * SEC;
    let l = labels("web", 0);
    {
        let store = open(dir.path());
        let entries = (0..100)
            .map(|i| entry(t + i, format!("line {i}")))
            .collect();
        store
            .append(vec![StreamEntries {
                labels: l.clone(),
                entries,
            }])
            .unwrap();
        store.flush().unwrap();
    }
    let chunks = dir.path().join("chunks");
    let path = std::fs::read_dir(&chunks)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&path).unwrap();
    data[20] ^= 0xff; // inside the first chunk's bytes
    std::fs::write(&path, data).unwrap();
    let store = open(dir.path());
    let s = stream(&store, &l);
    let err = store
        .scan(&s, i64::MIN, i64::MAX, Direction::Forward, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(err.0.contains("checksum"), "{err}");
}

#[test]
fn retention_deletes_old_chunk_files_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogStoreOptions {
        retention_time: Duration::from_secs(10),
        ..LogStoreOptions::default()
    };
    let store = LogStore::open_tuned(dir.path(), opts, tuning()).unwrap();
    let old = labels("old", 0);
    let new = labels("new", 0);
    store
        .append(vec![StreamEntries {
            labels: old.clone(),
            entries: vec![entry(now_ns() - 7 * SEC, "old")],
        }])
        .unwrap();
    store.flush().unwrap();
    store
        .append(vec![StreamEntries {
            labels: new.clone(),
            entries: vec![entry(now_ns() + 60 * SEC, "new")],
        }])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.run_retention().unwrap(), 0);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(store.run_retention().unwrap(), 1);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(store.stats().entries, 1);
    // The old stream's data is gone; it is still known while active (recent append).
    let olds = store
        .streams(&[Matcher::equal("app", "old")], i64::MIN, i64::MAX)
        .unwrap();
    assert!(olds.is_empty());
    assert_eq!(
        store
            .streams(&[Matcher::equal("app", "new")], i64::MIN, i64::MAX)
            .unwrap()
            .len(),
        1
    );
    drop(store);

    // Size: two files over a tiny budget; the older goes first.
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions {
            retention_bytes: Some(1),
            ..LogStoreOptions::default()
        },
        tuning(),
    )
    .unwrap();
    let t = now_ns() - 100 * SEC;
    store
        .append(vec![StreamEntries {
            labels: old.clone(),
            entries: vec![entry(t, "a")],
        }])
        .unwrap();
    store.flush().unwrap();
    store
        .append(vec![StreamEntries {
            labels: new.clone(),
            entries: vec![entry(t + SEC, "b")],
        }])
        .unwrap();
    store.flush().unwrap();
    let before = store.stats().disk_bytes;
    let deleted = store.run_retention().unwrap();
    assert_eq!(deleted, 2);
    assert!(store.stats().disk_bytes < before);
    assert_eq!(store.stats().entries, 0);
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = open(dir.path());
    let err = LogStore::open_tuned(dir.path(), LogStoreOptions::default(), tuning())
        .err()
        .unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn background_thread_cuts_full_heads_and_shrinks_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions::default(),
        Tuning {
            chunk_target_bytes: 64 * 1024,
            wal_segment_bytes: 32 * 1024,
            maintenance_interval: Some(Duration::from_millis(50)),
            ..Tuning::default()
        },
    )
    .unwrap();
    let t = now_ns() - 100 * SEC;
    let l = labels("busy", 0);
    let mut rng = Rng(7);
    let mut n = 0;
    for b in 0..40 {
        let entries = (0..100)
            .map(|i| {
                entry(
                    t + b * 100 + i,
                    format!("{b}-{i} {:x}{:x}", rng.next(), rng.next()),
                )
            })
            .collect();
        n += store
            .append(vec![StreamEntries {
                labels: l.clone(),
                entries,
            }])
            .unwrap()
            .entries;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(dir.path().join("chunks"))
        .unwrap()
        .count()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no chunk file written by the background thread"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    store.flush().unwrap();
    assert!(std::fs::read_dir(dir.path().join("wal")).unwrap().count() <= 2);
    assert_eq!(
        all(&store, &stream(&store, &l), Direction::Forward).len() as u64,
        n
    );
}

#[test]
fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path()));
    let t = now_ns() - 100 * SEC;
    let handles: Vec<_> = (0..4)
        .map(|th| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let entries = vec![entry(t + i, format!("t{th} {i}"))];
                    store
                        .append(vec![StreamEntries {
                            labels: labels("c", i as usize % 3),
                            entries,
                        }])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.stats().entries, 200);
    let store = std::sync::Arc::into_inner(store).unwrap();
    drop(store);
    assert_eq!(open(dir.path()).stats().entries, 200);
}

#[test]
fn long_wal_and_memory_budget_cut_heads_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions::default(),
        Tuning {
            wal_segment_bytes: 2048,
            max_wal_segments: 4,
            max_head_bytes: 1 << 30,
            ..tuning()
        },
    )
    .unwrap();
    let t = now_ns() - 100 * SEC;
    let slow = labels("slow", 0);
    let busy = labels("busy", 0);
    store
        .append(vec![StreamEntries {
            labels: slow.clone(),
            entries: vec![entry(t, "first")],
        }])
        .unwrap();
    let mut rng = Rng(3);
    for i in 0..200 {
        let line = format!("{:x}{:x}{:x}", rng.next(), rng.next(), rng.next());
        store
            .append(vec![StreamEntries {
                labels: busy.clone(),
                entries: vec![entry(t + i, line)],
            }])
            .unwrap();
    }
    let segs = || std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(segs() > 4, "{} segments", segs());
    // No head is full or old, but the WAL is too long: heads pinning its
    // older half are cut and those segments deleted.
    store.inner.cut(false).unwrap();
    assert!(segs() <= 4, "{} segments left", segs());
    assert_eq!(
        store
            .inner
            .read()
            .streams
            .values()
            .filter(|s| !s.chunks.is_empty())
            .count(),
        2
    );

    // Memory budget: the biggest heads are cut when the total is over it.
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions::default(),
        Tuning {
            max_head_bytes: 1000,
            ..tuning()
        },
    )
    .unwrap();
    let big = labels("big", 0);
    store
        .append(vec![
            StreamEntries {
                labels: big.clone(),
                entries: vec![entry(t, "x".repeat(900))],
            },
            StreamEntries {
                labels: slow.clone(),
                entries: vec![entry(t, "y".repeat(200))],
            },
        ])
        .unwrap();
    store.inner.cut(false).unwrap();
    let ix = store.inner.read();
    let cut: Vec<bool> = [&big, &slow]
        .iter()
        .map(|l| !ix.streams[&ix.lookup(l).unwrap()].chunks.is_empty())
        .collect();
    assert_eq!(cut, vec![true, false]);
    assert_eq!(ix.head_bytes, 200);
}

#[test]
fn a_huge_push_to_one_stream_is_split_into_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_tuned(
        dir.path(),
        LogStoreOptions::default(),
        Tuning {
            chunk_target_bytes: 10_000,
            ..tuning()
        },
    )
    .unwrap();
    let t = now_ns() - 100 * SEC;
    let l = labels("huge", 0);
    let entries: Vec<LogEntry> = (0..1000)
        .rev()
        .map(|i| entry(t + i, format!("{i:>100}")))
        .collect();
    store
        .append(vec![StreamEntries {
            labels: l.clone(),
            entries,
        }])
        .unwrap();
    store.flush().unwrap();
    let chunks = {
        let ix = store.inner.read();
        ix.streams[&ix.lookup(&l).unwrap()]
            .chunks
            .iter()
            .map(|c| c.meta)
            .collect::<Vec<_>>()
    };
    assert!(chunks.len() >= 10, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.raw_bytes <= 10_000 + 200));
    let got = all(&store, &stream(&store, &l), Direction::Forward);
    assert_eq!(got.len(), 1000);
    assert!(got.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
}

#[test]
fn duplicate_only_batches_are_not_replayed_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ns() - 10 * SEC;
    let l = labels("web", 2);
    let batch = vec![StreamEntries {
        labels: l.clone(),
        entries: vec![entry(t, "a"), entry(t + 1, "b")],
    }];
    {
        let store = open(dir.path());
        store.append(batch.clone()).unwrap();
        assert_eq!(store.append(batch.clone()).unwrap().duplicates, 2);
        // Both batches stay in the current WAL segment; only the first
        // added entries, yet the chunk must cover both.
        store.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        all(&store, &stream(&store, &l), Direction::Forward).len(),
        2
    );
    assert_eq!(store.stats().entries, 2);
}
