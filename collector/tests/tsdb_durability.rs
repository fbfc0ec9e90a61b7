//! Durability of the embedded stores across crashes: a child process appends
//! and reports acknowledged batches until it is SIGKILLed (metrics) or aborts
//! (logs, `durability/log_store.rs`); everything it acknowledged must be there
//! after reopening. Also: torn WAL tails.
//!
//! Runs without libtest's harness (`harness = false` in Cargo.toml) so that
//! the same executable can be the crashing child: `main` becomes the writer
//! when `SONDE_TSDB_CRASH_CHILD_DIR` (or the log store's variable) is set, and
//! runs the tests otherwise.

#[path = "durability/log_store.rs"]
mod log_store;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use sonde_collector::{
    model::{Labels, Matcher, Sample, TimeSeries},
    store::{
        Storage,
        tsdb::{Tsdb, TsdbOptions, Tuning},
    },
};

const CHILD_ENV: &str = "SONDE_TSDB_CRASH_CHILD_DIR";
const WRITERS: usize = 3;
const SERIES_PER_BATCH: usize = 20;

fn tuning() -> Tuning {
    // Tiny blocks and segments and a busy maintenance thread, so the kill
    // also lands during compactions, merges and WAL truncation.
    Tuning {
        block_range_ms: 20_000,
        wal_segment_bytes: 32 << 10,
        maintenance_interval: Some(Duration::from_millis(20)),
    }
}

fn batch(writer: usize, i: i64) -> Vec<TimeSeries> {
    (0..SERIES_PER_BATCH)
        .map(|s| TimeSeries {
            labels: Labels::from_pairs([
                ("__name__", "crash_test"),
                ("writer", &writer.to_string()),
                ("s", &s.to_string()),
            ]),
            samples: vec![Sample {
                t: i * 1000,
                v: i as f64 + s as f64 / 8.0,
            }],
        })
        .collect()
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return crash_child(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os(log_store::CHILD_ENV) {
        return log_store::crash_child(PathBuf::from(dir));
    }
    let tests: [(&str, fn()); 4] = [
        ("acked_writes_survive_sigkill", acked_writes_survive_sigkill),
        (
            "torn_wal_tail_is_truncated_and_earlier_writes_survive",
            torn_wal_tail_is_truncated_and_earlier_writes_survive,
        ),
        (
            "corruption_in_the_middle_of_the_wal_is_an_error_naming_the_segment",
            corruption_in_the_middle_of_the_wal_is_an_error_naming_the_segment,
        ),
        (
            "log_store::acknowledged_lines_survive_an_abort",
            log_store::acknowledged_lines_survive_an_abort,
        ),
    ];
    // A panicking test fails the run (non-zero exit) after its message is printed.
    for (name, test) in tests {
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed; 0 failed", tests.len());
}

/// The child process of `acked_writes_survive_sigkill`: appends until killed.
fn crash_child(dir: PathBuf) {
    let db = std::sync::Arc::new(Tsdb::open_tuned(&dir, TsdbOptions::default(), tuning()).unwrap());
    // Writers go in lockstep (so none falls behind the compaction cut) but
    // append concurrently within a step, sharing fsyncs.
    let step = std::sync::Arc::new(std::sync::Barrier::new(WRITERS));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            let step = step.clone();
            // Continue after what an earlier (killed) child stored.
            let m = [Matcher::equal("writer", w.to_string())];
            let start = db
                .select(&m, i64::MIN, i64::MAX)
                .unwrap()
                .iter()
                .map(|s| s.samples.len() as i64)
                .max()
                .unwrap_or(0);
            std::thread::spawn(move || {
                for i in start.. {
                    step.wait();
                    db.append(&batch(w, i)).unwrap();
                    // println! locks stdout per line, so lines never interleave.
                    println!("ACK {w} {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn run_child_and_kill(dir: &Path, acks_before_kill: usize) -> BTreeMap<usize, i64> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked: BTreeMap<usize, i64> = BTreeMap::new();
    let mut seen = 0usize;
    let record = |line: &str, acked: &mut BTreeMap<usize, i64>| {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("ACK") {
            return false;
        }
        let w: usize = parts.next().unwrap().parse().unwrap();
        let i: i64 = parts.next().unwrap().parse().unwrap();
        let e = acked.entry(w).or_insert(-1);
        *e = (*e).max(i);
        true
    };
    for line in lines.by_ref() {
        if record(&line.unwrap(), &mut acked) {
            seen += 1;
            if seen >= acks_before_kill {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Lines already written before the kill were acknowledged too.
    for line in lines {
        match line {
            Ok(l) => {
                record(&l, &mut acked);
            }
            Err(_) => break,
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "child should have been killed");
    acked
}

fn acked_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // Two crash/restart rounds: the second recovers a store that was itself recovered.
    let mut acked_total: BTreeMap<usize, i64> = BTreeMap::new();
    for round in 0..2 {
        let acked = run_child_and_kill(dir.path(), 300 + round * 50);
        for (w, i) in acked {
            let e = acked_total.entry(w).or_insert(-1);
            *e = (*e).max(i);
        }
        let db = Tsdb::open_tuned(
            dir.path(),
            TsdbOptions::default(),
            Tuning {
                maintenance_interval: None,
                ..tuning()
            },
        )
        .unwrap();
        for (&w, &last) in &acked_total {
            let got = db
                .select(
                    &[Matcher::equal("writer", w.to_string())],
                    i64::MIN,
                    i64::MAX,
                )
                .unwrap();
            assert_eq!(
                got.len(),
                SERIES_PER_BATCH,
                "writer {w}: series missing after crash"
            );
            for s in &got {
                let sidx: f64 = s.labels.get("s").unwrap().parse().unwrap();
                // Batches are all-or-nothing, so every series has the same
                // gapless prefix, covering at least every acknowledged batch.
                let n = s.samples.len() as i64;
                assert!(
                    n > last,
                    "writer {w} series {}: {n} samples, but batch {last} was acknowledged",
                    s.labels
                );
                for (i, x) in s.samples.iter().enumerate() {
                    assert_eq!(x.t, i as i64 * 1000, "gap in {}", s.labels);
                    assert_eq!(x.v, i as f64 + sidx / 8.0);
                }
            }
            let lens: Vec<usize> = got.iter().map(|s| s.samples.len()).collect();
            assert!(
                lens.iter().all(|&l| l == lens[0]),
                "writer {w}: a batch was applied partially: {lens:?}"
            );
        }
        if round == 1 {
            assert!(
                !db.blocks().is_empty(),
                "the children should have compacted into blocks"
            );
        }
    }
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

fn stored(db: &Tsdb) -> Vec<usize> {
    db.select(
        &[Matcher::equal("__name__", "crash_test")],
        i64::MIN,
        i64::MAX,
    )
    .unwrap()
    .iter()
    .map(|s| s.samples.len())
    .collect()
}

fn torn_wal_tail_is_truncated_and_earlier_writes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = || Tuning {
        maintenance_interval: None,
        ..Tuning::default()
    };
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap();
        for i in 0..10 {
            db.append(&batch(0, i)).unwrap();
        }
    }
    // A record header promising 1000 bytes, followed by only 10: a write
    // cut short by a crash.
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut junk = 1000u32.to_le_bytes().to_vec();
    junk.extend_from_slice(&[0xab; 14]);
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&junk);
    std::fs::write(&seg, &data).unwrap();
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap();
        assert_eq!(stored(&db), vec![10; SERIES_PER_BATCH]);
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            len,
            "torn tail should be cut off"
        );
        db.append(&batch(0, 10)).unwrap();
    }
    // Now cut the newest record (batch 10) in half: it is lost as a whole,
    // everything before it stays, and the store keeps working.
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap();
        assert_eq!(stored(&db), vec![10; SERIES_PER_BATCH]);
        db.append(&batch(0, 10)).unwrap();
        db.append(&batch(0, 11)).unwrap();
    }
    let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap();
    assert_eq!(stored(&db), vec![12; SERIES_PER_BATCH]);
}

fn corruption_in_the_middle_of_the_wal_is_an_error_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = || Tuning {
        maintenance_interval: None,
        ..Tuning::default()
    };
    {
        let db = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap();
        db.append(&batch(0, 0)).unwrap();
        db.append(&batch(0, 1)).unwrap();
    }
    let seg = last_segment(dir.path());
    // Reopening starts a newer segment, so this one is no longer the last:
    // damage in it cannot be a torn write.
    drop(Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet()).unwrap());
    assert_ne!(last_segment(dir.path()), seg);
    let mut data = std::fs::read(&seg).unwrap();
    let n = data.len();
    data[n - 40] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let e = Tsdb::open_tuned(dir.path(), TsdbOptions::default(), quiet())
        .err()
        .expect("must refuse a corrupt WAL");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(e.to_string().contains(name), "{e}");
}
