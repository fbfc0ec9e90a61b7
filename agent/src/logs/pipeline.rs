//! The two threads between the log files and the disk queue.
//!
//! The reader polls the [`Tailer`] into a [`BatchBuilder`] (redacting each line)
//! and cuts a batch at [`MAX_BATCH`] bytes or `--log-flush-interval`, together
//! with the positions that batch completes. The writer puts the batch in the
//! queue (one fsync), wakes the sender, and only then adopts those positions,
//! checkpointing them at most once per [`CHECKPOINT_EVERY`]. A one-slot channel
//! between them lets reading overlap the fsync without unbounded memory.
//!
//! Backpressure: while the queue holds more than its bound the reader stops
//! reading (the log files are the buffer) and counts the time waited.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::export::otlp::buffer::Buffer;

use super::{
    Stream,
    batch::{BatchBuilder, Source},
    follower::Sink,
    positions::{self, Position},
    redact::Redactor,
    stats::LogStats,
    tailer::{DISCOVERY_INTERVAL, Tailer},
    tap::Tap,
};

/// A batch is cut once its records take this many bytes. 2 MiB: half the
/// requests (and queue fsyncs) of 1 MiB per byte shipped, while the queue bound
/// (at least 8 MiB) still holds several batches in flight.
pub const MAX_BATCH: usize = 2 << 20;
/// Positions are written at most this often (more often only adds fsyncs; less
/// often only adds lines re-read after a crash).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long the reader sleeps while the queue is over its bound.
const BACKPRESSURE_NAP: Duration = Duration::from_millis(50);

/// A cut batch and the positions it completes.
pub struct Cut {
    pub payload: Vec<u8>,
    pub records: u64,
    pub positions: Vec<Position>,
}

struct BatchSink<'a> {
    batch: BatchBuilder,
    redactor: &'a Redactor,
}

impl Sink for BatchSink<'_> {
    fn line(&mut self, src: &Arc<Source>, ts: u64, observed: u64, stream: Stream, body: &str) {
        if self.redactor.is_empty() {
            self.batch.add(src, ts, observed, stream, body);
        } else {
            let body = self.redactor.apply(body);
            self.batch.add(src, ts, observed, stream, &body);
        }
    }
}

/// Reads until `stop`; returns when the writer is gone or `stop` is set.
#[allow(clippy::too_many_arguments)]
pub fn reader_loop(
    mut tailer: Tailer,
    mut tap: Option<Tap>,
    redactor: Redactor,
    flush_interval: Duration,
    buffer: Arc<Mutex<Buffer>>,
    tx: SyncSender<Cut>,
    stop: Arc<AtomicBool>,
    stats: LogStats,
) {
    let mut sink = BatchSink {
        batch: BatchBuilder::default(),
        redactor: &redactor,
    };
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        let mut blocked = false;
        let mut may_read = || {
            let over = buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .over_bound();
            blocked |= over;
            !over
        };
        let mut n = tailer.poll(&mut sink, MAX_BATCH, &mut may_read);
        if let Some(tap) = tap.as_mut().filter(|_| !blocked) {
            n += tap.drain(&mut sink.batch, MAX_BATCH, sink.redactor);
        }
        let due = sink
            .batch
            .started()
            .is_some_and(|t| t.elapsed() >= flush_interval);
        if sink.batch.bytes() >= MAX_BATCH || due {
            let Some(enc) = sink.batch.cut() else {
                continue;
            };
            let cut = Cut {
                payload: enc.payload,
                records: enc.records,
                positions: tailer.positions(),
            };
            if tx.send(cut).is_err() {
                return;
            }
            continue;
        }
        if blocked {
            if !announced {
                info!("log export queue is full; pausing reading until the collector catches up");
                announced = true;
            }
            std::thread::sleep(BACKPRESSURE_NAP);
            stats.waited(BACKPRESSURE_NAP.as_secs_f64());
        } else if n == 0 {
            announced = false;
            let until_flush = sink.batch.started().map_or(DISCOVERY_INTERVAL, |t| {
                flush_interval.saturating_sub(t.elapsed())
            });
            std::thread::sleep(until_flush.min(DISCOVERY_INTERVAL));
        }
    }
}

/// Writes cut batches to the queue, then checkpoints their positions.
pub fn writer_loop(
    rx: Receiver<Cut>,
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    positions_path: PathBuf,
) {
    let mut pending: Option<Vec<Position>> = None;
    let mut last_saved = Instant::now();
    loop {
        match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok(cut) => {
                push_until_written(&buffer, &cut);
                wake.notify_one();
                pending = Some(cut.positions);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(p) = pending.take() {
                    save(&positions_path, &p);
                }
                return;
            }
        }
        if last_saved.elapsed() >= CHECKPOINT_EVERY
            && let Some(p) = pending.take()
        {
            save(&positions_path, &p);
            last_saved = Instant::now();
        }
    }
}

/// A batch that cannot be written is retried, not dropped: its lines are still
/// in the files, and the reader waits on the channel meanwhile.
fn push_until_written(buffer: &Mutex<Buffer>, cut: &Cut) {
    let mut failing = false;
    loop {
        let r = buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(&cut.payload, cut.records);
        match r {
            Ok(()) => {
                if failing {
                    info!("log export queue writable again");
                }
                return;
            }
            Err(e) => {
                if !failing {
                    error!("writing a log batch to the export queue: {e}; retrying every second");
                    failing = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn save(path: &std::path::Path, positions: &[Position]) {
    if let Err(e) = positions::save(path, positions) {
        warn!("writing the log positions checkpoint: {e}");
    }
}
