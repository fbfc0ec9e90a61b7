//! The background thread of the log and trace stores: cuts what is due
//! every interval or when an append wakes it, and applies retention at most
//! once per interval. It holds the store weakly, so it ends with the store.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// What the thread does to a store.
pub(crate) trait Maintained: Send + Sync + 'static {
    /// Cuts whatever is due (big or old), not everything.
    fn cut_due(&self) -> io::Result<()>;
    /// One retention pass.
    fn retention(&self) -> io::Result<()>;
}

/// The wake-up channel. Capacity 1: wake-ups coalesce.
pub(crate) fn channel() -> (mpsc::SyncSender<()>, mpsc::Receiver<()>) {
    mpsc::sync_channel(1)
}

/// The running thread (if any); dropping it stops and joins the thread.
pub(crate) struct Maintenance {
    wake: Option<mpsc::SyncSender<()>>,
    worker: Option<JoinHandle<()>>,
    stop_flag: Arc<AtomicBool>,
}

impl Maintenance {
    /// Starts the thread when there is an `interval`; `wake`/`rx` are one
    /// [`channel`]. `signal` ("log", "trace") names the thread and its errors.
    pub fn start<S: Maintained>(
        store: &Arc<S>,
        signal: &str,
        interval: Option<Duration>,
        (wake, rx): (mpsc::SyncSender<()>, mpsc::Receiver<()>),
    ) -> io::Result<Maintenance> {
        let stop_flag = Arc::new(AtomicBool::new(false));
        let Some(every) = interval else {
            return Ok(Maintenance {
                wake: None,
                worker: None,
                stop_flag,
            });
        };
        let weak = Arc::downgrade(store);
        let flag = stop_flag.clone();
        let signal = signal.to_string();
        let worker = std::thread::Builder::new()
            .name(format!("{signal}store-maintenance"))
            .spawn(move || {
                let mut last_retention = Instant::now();
                loop {
                    let woke = match rx.recv_timeout(every) {
                        Ok(()) => true,
                        Err(mpsc::RecvTimeoutError::Timeout) => false,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(store) = weak.upgrade() else { break };
                    if let Err(e) = store.cut_due() {
                        tracing::error!(error = %e, "{signal} store cut failed; will retry");
                    }
                    // Retention at most once per interval, not on every wake-up.
                    if !woke || last_retention.elapsed() >= every {
                        last_retention = Instant::now();
                        if let Err(e) = store.retention() {
                            tracing::error!(error = %e, "{signal} retention failed; will retry");
                        }
                    }
                }
            })?;
        Ok(Maintenance {
            wake: Some(wake),
            worker: Some(worker),
            stop_flag,
        })
    }

    /// Asks the thread for a cut now (no-op without a thread).
    pub fn wake(&self) {
        if let Some(w) = &self.wake {
            let _ = w.try_send(());
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop_flag.store(true, Ordering::Relaxed);
        if let Some(s) = self.wake.take() {
            // Wakes the thread if it is waiting; it then sees the flag.
            let _ = s.try_send(());
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
