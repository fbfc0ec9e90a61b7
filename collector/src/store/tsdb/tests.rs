//! Tests of the whole store: round trips, validation, compaction, retention,
//! concurrency, corrupt files, and the bytes-per-sample bar.

use std::{sync::Arc, time::Duration};

use super::{Tsdb, TsdbOptions, Tuning, testgen::node_exporter_batches};
use crate::{
    model::{Labels, MatchOp, Matcher, MetricMetadata, STALE_NAN_BITS, Sample, TimeSeries},
    store::{AppendError, Storage, memory::MemStorage},
};

fn tuning(block_range_ms: i64) -> Tuning {
    Tuning {
        block_range_ms,
        wal_segment_bytes: 1 << 20,
        maintenance_interval: None,
    }
}

fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

fn all(db: &dyn Storage) -> Vec<(Labels, Vec<(i64, u64)>)> {
    db.select(&[], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels,
                s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
            )
        })
        .collect()
}

#[test]
fn a_batch_naming_a_series_twice_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(3_600_000)).unwrap();
    let l = [("__name__", "up"), ("job", "a")];
    let st = db
        .append(&[
            ts(&l, &[(20, 2.0), (30, 3.0)]),
            ts(&[("__name__", "other")], &[(10, 9.0)]),
            ts(&l, &[(10, 1.0), (30, 3.0)]),
        ])
        .unwrap();
    assert_eq!((st.samples, st.new_series, st.duplicates), (4, 2, 1));
    let got = all(&db);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].1,
        vec![
            (10, 1f64.to_bits()),
            (20, 2f64.to_bits()),
            (30, 3f64.to_bits())
        ]
    );
    // The same timestamp with another value in the repeat refuses the write.
    let e = db
        .append(&[ts(&l, &[(40, 4.0)]), ts(&l, &[(40, 5.0)])])
        .unwrap_err();
    assert!(matches!(e, AppendError::Invalid(_)), "{e}");
    assert_eq!(all(&db)[1].1.len(), 3);
}

#[test]
fn bytes_per_sample_beats_victoriametrics_on_node_exporter_like_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(2 * 3600 * 1000)).unwrap();
    let start = 1_700_000_000_000 - 1_700_000_000_000 % (2 * 3600 * 1000);
    let nodes = 10;
    let steps = 2 * 240; // two hours
    let t0 = std::time::Instant::now();
    let batches = node_exporter_batches(nodes, steps, start, 42);
    let nseries = batches[0].len();
    let t1 = std::time::Instant::now();
    for b in &batches {
        db.append(b).unwrap();
    }
    let t2 = std::time::Instant::now();
    db.compact(true).unwrap();
    println!(
        "generate {:?}, append {:?}, compact {:?}",
        t1 - t0,
        t2 - t1,
        t2.elapsed()
    );
    let (samples, bytes) = db
        .blocks()
        .iter()
        .fold((0u64, 0u64), |(s, b), x| (s + x.samples, b + x.bytes));
    assert_eq!(samples as usize, nseries * steps);
    let bps = bytes as f64 / samples as f64;
    println!(
        "{nseries} series, {samples} samples, {bytes} bytes in {} blocks: {bps:.3} bytes/sample",
        db.blocks().len()
    );
    assert!(bps < 1.8, "{bps:.3} bytes/sample is not below 1.8");
    // Spot-check exact contents against the input.
    let m = [
        Matcher::equal("__name__", "node_scrape_collector_duration_seconds"),
        Matcher::equal("collector", "zfs"),
        Matcher::equal("instance", "node-3:9100"),
    ];
    let got = db.select(&m, i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 1);
    let want: Vec<Sample> = batches
        .iter()
        .flat_map(|b| {
            b.iter()
                .filter(|s| s.labels == got[0].labels)
                .flat_map(|s| s.samples.clone())
        })
        .collect();
    assert_eq!(got[0].samples.len(), want.len());
    for (a, b) in got[0].samples.iter().zip(&want) {
        assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
    }
}

#[test]
fn write_reopen_round_trip_with_special_values_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let specials = [
        1.0,
        f64::from_bits(STALE_NAN_BITS),
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        2.5,
    ];
    let samples: Vec<(i64, f64)> = specials
        .iter()
        .enumerate()
        .map(|(i, v)| (1000 * i as i64, *v))
        .collect();
    let md = vec![(
        "up".to_string(),
        MetricMetadata {
            kind: "gauge".into(),
            help: "Target up.".into(),
            unit: String::new(),
        },
    )];
    let before;
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(3_600_000)).unwrap();
        let st = db
            .append(&[
                ts(&[("__name__", "up"), ("job", "a")], &samples),
                ts(&[("__name__", "up"), ("job", "b")], &[(5, 1.0)]),
            ])
            .unwrap();
        assert_eq!((st.samples, st.new_series, st.duplicates), (8, 2, 0));
        db.set_metadata(&md).unwrap();
        before = all(&db);
        assert_eq!(db.active_series(), 2);
    }
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(3_600_000)).unwrap();
    assert_eq!(all(&db), before);
    assert_eq!(db.metadata().unwrap()["up"], vec![md[0].1.clone()]);
    assert_eq!(db.active_series(), 2);
    // Also after everything moved into blocks and the WAL was truncated.
    db.compact(true).unwrap();
    assert_eq!(db.active_series(), 0);
    drop(db);
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(3_600_000)).unwrap();
    assert_eq!(all(&db), before);
    assert_eq!(db.metadata().unwrap()["up"], vec![md[0].1.clone()]);
    let stale = db
        .select(&[Matcher::equal("job", "a")], 1000, 1000)
        .unwrap();
    assert_eq!(stale[0].samples[0].v.to_bits(), STALE_NAN_BITS);
}

#[test]
fn batches_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        max_series: 3,
        ooo_window: Duration::from_secs(60),
        ..Default::default()
    };
    let db = Tsdb::open_tuned(dir.path(), opts, tuning(3_600_000)).unwrap();
    db.append(&[ts(&[("__name__", "a")], &[(100_000, 1.0), (200_000, 2.0)])])
        .unwrap();
    let before = all(&db);
    // Too far out of order (older than newest - 60s), alongside a valid new series.
    let e = db
        .append(&[
            ts(&[("__name__", "b")], &[(1, 1.0)]),
            ts(&[("__name__", "a")], &[(130_000, 5.0), (210_000, 1.0)]),
        ])
        .unwrap_err();
    assert!(
        matches!(
            e,
            AppendError::OutOfOrder {
                count: 1,
                t: 130_000,
                min_t: 140_000,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(all(&db), before);
    // Same timestamp, different value.
    let e = db
        .append(&[
            ts(&[("__name__", "b")], &[(1, 1.0)]),
            ts(&[("__name__", "a")], &[(200_000, 3.0)]),
        ])
        .unwrap_err();
    assert!(
        matches!(&e, AppendError::Invalid(m) if m.contains("duplicate sample for timestamp 200000")),
        "{e}"
    );
    assert_eq!(all(&db), before);
    // Series cap.
    let e = db
        .append(&[
            ts(&[("__name__", "b")], &[(1, 1.0)]),
            ts(&[("__name__", "c")], &[(1, 1.0)]),
            ts(&[("__name__", "d")], &[(1, 1.0)]),
        ])
        .unwrap_err();
    assert!(
        matches!(
            e,
            AppendError::SeriesLimit {
                limit: 3,
                new_series: 3
            }
        ),
        "{e}"
    );
    assert_eq!(all(&db), before);
    assert_eq!(db.active_series(), 1);
    // Exact duplicates are counted; in-window out-of-order samples merge in.
    let st = db
        .append(&[ts(
            &[("__name__", "a")],
            &[(200_000, 2.0), (150_000, 1.5), (250_000, f64::NAN)],
        )])
        .unwrap();
    assert_eq!((st.samples, st.duplicates, st.new_series), (2, 1, 0));
    let got = db
        .select(&[Matcher::equal("__name__", "a")], 0, i64::MAX)
        .unwrap();
    let ts_: Vec<i64> = got[0].samples.iter().map(|s| s.t).collect();
    assert_eq!(ts_, vec![100_000, 150_000, 200_000, 250_000]);
    // NaN duplicates compare by bits.
    let st = db
        .append(&[ts(&[("__name__", "a")], &[(250_000, f64::NAN)])])
        .unwrap();
    assert_eq!(st.duplicates, 1);
    // Samples older than what is in blocks are out of order.
    db.compact(true).unwrap();
    let e = db
        .append(&[ts(&[("__name__", "z")], &[(250_000, 1.0)])])
        .unwrap_err();
    assert!(matches!(e, AppendError::OutOfOrder { .. }), "{e}");
    assert!(
        db.append(&[ts(&[("__name__", "z")], &[(250_001, 1.0)])])
            .is_ok()
    );
}

#[test]
fn select_matches_like_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap();
    let mem = MemStorage::new();
    let batches = node_exporter_batches(2, 30, 0, 7);
    for (i, b) in batches.iter().enumerate() {
        db.append(b).unwrap();
        mem.append(b).unwrap();
        if i == 10 || i == 20 {
            db.compact(false).unwrap();
        }
    }
    assert!(!db.blocks().is_empty(), "some data should be in blocks");
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let cases: Vec<Vec<Matcher>> = vec![
        vec![
            m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
            m(MatchOp::Equal, "mode", "idle"),
        ],
        vec![
            m(MatchOp::Regex, "__name__", "node_network_.*_bytes_total"),
            m(MatchOp::NotEqual, "device", "lo"),
        ],
        vec![
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::NotRegex, "instance", "node-0.*"),
        ],
        vec![
            m(MatchOp::Equal, "__name__", "node_load1"),
            m(MatchOp::Equal, "nonexistent", ""),
        ],
        vec![m(MatchOp::Equal, "__name__", "nope")],
        vec![m(MatchOp::Regex, "mountpoint", "/b.*|/data")],
    ];
    for ms in &cases {
        for (lo, hi) in [
            (i64::MIN, i64::MAX),
            (100_000, 200_000),
            (0, 0),
            (300_000, 310_000),
        ] {
            let a = db.select(ms, lo, hi).unwrap();
            let b = mem.select(ms, lo, hi).unwrap();
            assert_eq!(a.len(), b.len(), "{ms:?} [{lo},{hi}]");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.labels, y.labels);
                let xs: Vec<(i64, u64)> = x.samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
                let ys: Vec<(i64, u64)> = y.samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
                assert_eq!(xs, ys);
            }
            assert_eq!(
                db.series(std::slice::from_ref(ms), lo, hi).unwrap(),
                mem.series(std::slice::from_ref(ms), lo, hi).unwrap()
            );
        }
    }
    assert_eq!(
        db.label_values("mode", &[], i64::MIN, i64::MAX).unwrap(),
        mem.label_values("mode", &[], i64::MIN, i64::MAX).unwrap()
    );
}

#[test]
fn compaction_merges_blocks_truncates_wal_and_keeps_all_data() {
    let dir = tempfile::tempdir().unwrap();
    let r = 60_000; // 1-minute blocks, merged into 6- and 36-minute ones
    let open = || {
        Tsdb::open_tuned(
            dir.path(),
            TsdbOptions::default(),
            Tuning {
                wal_segment_bytes: 64 << 10,
                ..tuning(r)
            },
        )
        .unwrap()
    };
    let db = open();
    let batches = node_exporter_batches(1, 4 * 60 * 2, 0, 9); // 2 hours at 15s
    for (i, b) in batches.iter().enumerate() {
        db.append(b).unwrap();
        if i % 8 == 7 {
            db.compact(false).unwrap();
        }
    }
    let blocks = db.blocks();
    assert!(
        blocks
            .iter()
            .any(|b| b.level == 2 && b.maxt - b.mint > 6 * r),
        "expected merged 36-minute blocks: {blocks:?}"
    );
    assert!(
        blocks.len() < 20,
        "small blocks should have been merged: {} blocks",
        blocks.len()
    );
    let wal_segments = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(wal_segments <= 4, "{wal_segments} WAL segments left");
    let before = all(&db);
    let expected: usize = batches.iter().map(|b| b.len()).sum();
    assert_eq!(before.iter().map(|(_, s)| s.len()).sum::<usize>(), expected);
    drop(db);
    let db = open();
    assert_eq!(all(&db), before);
}

#[test]
fn retention_drops_old_blocks_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let r = 60_000;
    let opts = TsdbOptions {
        retention_time: Duration::from_secs(600),
        ..Default::default()
    };
    let db = Tsdb::open_tuned(dir.path(), opts, tuning(r)).unwrap();
    for step in 0..(4 * 30) {
        let t = step * 15_000;
        db.append(&[ts(&[("__name__", "x")], &[(t, step as f64)])])
            .unwrap();
        if step % 4 == 3 {
            db.compact(false).unwrap();
        }
    }
    let oldest = db.select(&[], i64::MIN, i64::MAX).unwrap()[0].samples[0].t;
    let newest = 119 * 15_000;
    assert!(
        oldest >= newest - 600_000 - 6 * r,
        "oldest kept sample {oldest} is past retention"
    );
    assert!(oldest > 0, "nothing was dropped");
    let files = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .count();
    assert_eq!(files, db.blocks().len());
    drop(db);

    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention_bytes: Some(1),
        ..Default::default()
    };
    let db = Tsdb::open_tuned(dir.path(), opts, tuning(r)).unwrap();
    for step in 0..40 {
        db.append(&[ts(&[("__name__", "x")], &[(step * 15_000, step as f64)])])
            .unwrap();
    }
    db.compact(false).unwrap();
    assert!(db.blocks().is_empty(), "a 1-byte budget keeps no block");
    // The head is untouched by size retention.
    let kept = all(&db);
    assert_eq!(kept[0].1.first().map(|s| s.0), Some(540_000));
    drop(db);
    // Reopening must not bring back what retention deleted from the WAL's older samples.
    let db = Tsdb::open_tuned(
        dir.path(),
        TsdbOptions {
            retention_bytes: Some(1),
            ..Default::default()
        },
        tuning(r),
    )
    .unwrap();
    assert_eq!(all(&db), kept);
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        Arc::new(Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap());
    // Writers move in step: a head compaction moves old time into a block, and a
    // writer left far behind (a loaded machine) would then be refused as out of
    // bounds, which is right for the store but not what this test is about.
    let in_step = Arc::new(std::sync::Barrier::new(4));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            let in_step = in_step.clone();
            std::thread::spawn(move || {
                for step in 0..200i64 {
                    in_step.wait();
                    let batch: Vec<TimeSeries> = (0..5)
                        .map(|s| {
                            ts(
                                &[
                                    ("__name__", "m"),
                                    ("w", &w.to_string()),
                                    ("s", &s.to_string()),
                                ],
                                &[(step * 1000, step as f64)],
                            )
                        })
                        .collect();
                    db.append(&batch).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                for s in db
                    .select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX)
                    .unwrap()
                {
                    // Every series' samples are a gapless prefix 0..n.
                    for (i, x) in s.samples.iter().enumerate() {
                        assert_eq!(x.t, i as i64 * 1000, "gap in {}", s.labels);
                    }
                }
            }
        })
    };
    let compactor = {
        let db = db.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                db.compact(false).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    compactor.join().unwrap();
    let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|s| s.samples.len() == 200));
}

#[test]
fn corrupt_block_files_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap();
        db.append(&[ts(&[("__name__", "x")], &[(1, 1.0), (2, 2.0)])])
            .unwrap();
        db.compact(true).unwrap();
    }
    let blocks: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(blocks.len(), 1);
    let path = &blocks[0];
    let good = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let cases: Vec<Vec<u8>> = vec![
        good[..good.len() / 2].to_vec(),
        b"garbage garbage garbage garbage".to_vec(),
        Vec::new(),
        {
            let mut g = good.clone();
            let n = g.len();
            g[n - 25] ^= 0xff;
            g
        },
    ];
    for bad in cases {
        std::fs::write(path, &bad).unwrap();
        let e = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000))
            .err()
            .expect("open must fail");
        assert!(e.to_string().contains(&name), "{e}");
    }
    // A corrupt chunk (index intact) fails the query, naming the file.
    let mut g = good.clone();
    g[10] ^= 0xff;
    std::fs::write(path, &g).unwrap();
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap();
    let e = db.select(&[], i64::MIN, i64::MAX).unwrap_err();
    assert!(e.to_string().contains(&name), "{e}");
}

#[test]
fn a_store_can_be_opened_by_one_owner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap();
    let e = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000))
        .err()
        .expect("second open must fail");
    assert!(e.to_string().contains("in use by another process"), "{e}");
    drop(db);
    Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(60_000)).unwrap();
}

#[test]
fn out_of_order_samples_survive_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || TsdbOptions {
        ooo_window: Duration::from_secs(60),
        ..Default::default()
    };
    let l = [("__name__", "late")];
    {
        let db = Tsdb::open_tuned(dir.path(), opts(), tuning(600_000)).unwrap();
        db.append(&[ts(&l, &[(100_000, 1.0), (160_000, 4.0)])])
            .unwrap();
        db.append(&[ts(&l, &[(130_000, 2.5), (120_000, 2.0)])])
            .unwrap();
        assert!(db.append(&[ts(&l, &[(99_000, 0.5)])]).is_err());
    }
    let db = Tsdb::open_tuned(dir.path(), opts(), tuning(600_000)).unwrap();
    let want = vec![
        (100_000, 1f64.to_bits()),
        (120_000, 2f64.to_bits()),
        (130_000, 2.5f64.to_bits()),
        (160_000, 4f64.to_bits()),
    ];
    assert_eq!(all(&db)[0].1, want);
    // The window is measured from the newest sample, which survived the restart.
    assert!(matches!(
        db.append(&[ts(&l, &[(99_000, 0.5)])]),
        Err(AppendError::OutOfOrder { .. })
    ));
    db.compact(true).unwrap();
    assert_eq!(all(&db)[0].1, want);
}

#[test]
fn interrupted_merge_leftovers_are_cleaned_up_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let stash = tempfile::tempdir().unwrap();
    let blocks_dir = dir.path().join("blocks");
    let r = 60_000;
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(r)).unwrap();
    for step in 0..(4 * 40) {
        db.append(&[ts(&[("__name__", "x")], &[(step * 15_000, step as f64)])])
            .unwrap();
        if step % 4 == 3 {
            db.compact(false).unwrap();
            // Keep a copy of every block ever written.
            for e in std::fs::read_dir(&blocks_dir).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, stash.path().join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let merged: Vec<_> = db.blocks().into_iter().filter(|b| b.level == 2).collect();
    assert!(!merged.is_empty(), "expected a block merged twice");
    let before = all(&db);
    let files_before = std::fs::read_dir(&blocks_dir).unwrap().count();
    drop(db);
    // Pretend the merge crashed before deleting its inputs, and a block
    // write crashed before its rename.
    for e in std::fs::read_dir(stash.path()).unwrap() {
        let p = e.unwrap().path();
        let dst = blocks_dir.join(p.file_name().unwrap());
        if !dst.exists() {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
    std::fs::write(blocks_dir.join("0000009999.block.tmp"), b"half a block").unwrap();
    assert!(std::fs::read_dir(&blocks_dir).unwrap().count() > files_before + 1);
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(r)).unwrap();
    assert_eq!(
        std::fs::read_dir(&blocks_dir).unwrap().count(),
        files_before
    );
    assert_eq!(all(&db), before);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        Arc::new(Tsdb::open_tuned(dir.path(), TsdbOptions::default(), tuning(3_600_000)).unwrap());
    let st0 = db.stats();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..100i64 {
                    db.append(&[ts(&[("__name__", "g"), ("w", &w.to_string())], &[(i, 1.0)])])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = db.stats();
    let (records, syncs) = (
        st.wal_records - st0.wal_records,
        st.wal_fsyncs - st0.wal_fsyncs,
    );
    assert_eq!(st.head_series, 8);
    println!("{records} records, {syncs} fsyncs");
    assert_eq!(records, 800);
    assert!(
        syncs < records,
        "group commit should share fsyncs: {syncs} fsyncs for {records} records"
    );
}

#[test]
fn a_stray_ancient_sample_costs_one_block_not_one_per_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open_tuned(
        dir.path(),
        TsdbOptions {
            retention_time: Duration::from_secs(100 * 365 * 86400),
            ..Default::default()
        },
        tuning(60_000),
    )
    .unwrap();
    let now = 1_700_000_000_000;
    db.append(&[ts(&[("__name__", "old")], &[(0, 1.0)])])
        .unwrap();
    db.append(&[ts(
        &[("__name__", "new")],
        &[(now, 1.0), (now + 120_000, 2.0)],
    )])
    .unwrap();
    let t = std::time::Instant::now();
    db.compact(false).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(db.blocks().len(), 2, "{:?}", db.blocks());
    assert_eq!(all(&db).iter().map(|(_, s)| s.len()).sum::<usize>(), 3);
}
