//! Nothing acknowledged is lost: remote_write clients write batches continuously and note
//! which ones the collector acknowledged (HTTP 2xx); the collector is killed with SIGKILL
//! in the middle of the stream, started again on the same data directory, and every
//! acknowledged sample must come back from a query, with its exact value. Two rounds, so
//! recovery is also tested on a directory that was itself recovered.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sonde_tests::{
    collector::Collector,
    promapi::QueryValue,
    remote_write::{Client, TimeSeries},
};

const WRITERS: usize = 2;
const SERIES_PER_BATCH: usize = 50;
/// Each batch is one sample per series, this much later than the writer's previous batch.
const BATCH_STEP_MS: i64 = 100;
const ROUNDS: usize = 2;
/// How long the writers write before the kill, per round.
const WRITE_FOR: Duration = Duration::from_millis(2500);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One writer's state across rounds: its next batch number and what was acknowledged.
struct Writer {
    id: usize,
    next_batch: u64,
    acked: Vec<u64>,
    refused: usize,
}

fn batch(writer: usize, b: u64, t0: i64) -> Vec<TimeSeries> {
    let (w, t) = (writer.to_string(), t0 + b as i64 * BATCH_STEP_MS);
    (0..SERIES_PER_BATCH)
        .map(|k| {
            TimeSeries::new(
                &[
                    ("__name__", "crash_test_samples"),
                    ("writer", &w),
                    ("series", &k.to_string()),
                ],
                &[(t, b as f64)],
            )
        })
        .collect()
}

/// Writes batches until `stop`; after the first unacknowledged one the receiver is gone,
/// and later tries would only count refusals.
fn write_until(w: &mut Writer, url: &str, t0: i64, stop: &AtomicBool) {
    let client = Client::new(url);
    while !stop.load(Ordering::SeqCst) {
        let b = w.next_batch;
        w.next_batch += 1;
        if client.send(&batch(w.id, b, t0)).acknowledged() {
            w.acked.push(b);
        } else {
            w.refused += 1;
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn every_acknowledged_sample_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path(), &[]);
    // Timestamps start 10 minutes back and advance 100 ms per batch: in order per series,
    // in the past, and well inside the default out-of-order window and retention.
    let t0 = now_ms() - 10 * 60_000;
    let writers: Vec<Arc<Mutex<Writer>>> = (0..WRITERS)
        .map(|id| {
            Arc::new(Mutex::new(Writer {
                id,
                next_batch: 0,
                acked: vec![],
                refused: 0,
            }))
        })
        .collect();

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = writers
            .iter()
            .map(|w| {
                let (w, stop, url) = (w.clone(), stop.clone(), collector.remote_write_url());
                thread::spawn(move || write_until(&mut w.lock().unwrap(), &url, t0, &stop))
            })
            .collect();
        thread::sleep(WRITE_FOR);
        // SIGKILL while the writers are still sending.
        collector.kill9();
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().expect("writer thread panicked");
        }
        let acked: usize = writers.iter().map(|w| w.lock().unwrap().acked.len()).sum();
        eprintln!(
            "round {round}: {acked} batches acknowledged so far; killed the collector mid-stream"
        );
        collector.restart();
    }

    let writers: Vec<Writer> = writers
        .into_iter()
        .map(|w| Arc::try_unwrap(w).ok().unwrap().into_inner().unwrap())
        .collect();
    for w in &writers {
        assert!(
            w.acked.len() >= 5,
            "writer {} had only {} batches acknowledged: the collector did not take writes;\n{}",
            w.id,
            w.acked.len(),
            collector.log_text()
        );
        assert!(
            w.refused > 0,
            "writer {} saw no refused write: the kill did not land mid-stream",
            w.id
        );
    }

    // Every raw sample of the test series, as (writer, series, timestamp ms, value).
    let at = (now_ms() as f64) / 1000.0 + 1.0;
    let got = collector
        .api()
        .instant("crash_test_samples[15m]", at)
        .unwrap_or_else(|e| panic!("querying after restart: {e:?}\n{}", collector.log_text()));
    let QueryValue::Matrix(series) = got else {
        panic!("a range selector must return a matrix, got {}", got.kind())
    };
    let mut stored = BTreeSet::new();
    for (labels, points) in &series {
        let (Some(w), Some(s)) = (labels.get("writer"), labels.get("series")) else {
            continue;
        };
        for (t, v) in points {
            stored.insert((
                w.clone(),
                s.clone(),
                (t * 1000.0).round() as i64,
                v.to_bits(),
            ));
        }
    }
    let mut missing = Vec::new();
    let mut total = 0;
    for w in &writers {
        for &b in &w.acked {
            for k in 0..SERIES_PER_BATCH {
                total += 1;
                let key = (
                    w.id.to_string(),
                    k.to_string(),
                    t0 + b as i64 * BATCH_STEP_MS,
                    (b as f64).to_bits(),
                );
                if !stored.contains(&key) {
                    missing.push(format!("writer {} batch {b} series {k}", w.id));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {total} acknowledged samples are missing after kill -9 and restart (first: {:?});\ncollector log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        collector.log_text()
    );
    eprintln!("all {total} acknowledged samples were returned after {ROUNDS} kill -9 restarts");
}
