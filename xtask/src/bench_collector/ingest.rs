//! Replays the generated requests into one peer: one thread per client file, each sending
//! its requests in order (its series, in time order), all clients meeting at a barrier
//! every ten minutes of data. Measures wall time from the first request to the last
//! acknowledgement; counts refused requests with the first refusal's answer.

use std::{
    path::PathBuf,
    sync::{Arc, Barrier, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{
    data::{Frame, SYNC_EVERY_CHUNKS, read_frames},
    rw::{Client, Outcome},
};
use crate::bench_agent::guard;

pub struct Ingested {
    pub wall: Duration,
    pub requests: u64,
    pub refused: u64,
    pub first_refusal: Option<String>,
}

/// The frames of every client file, read before the clock starts.
pub fn load(files: &[PathBuf]) -> Result<Vec<Vec<Frame>>> {
    files.iter().map(|f| read_frames(f)).collect()
}

pub fn replay(url: &str, clients: &[Vec<Frame>]) -> Result<Ingested> {
    let barrier = Arc::new(Barrier::new(clients.len()));
    let refusals: Arc<Mutex<(u64, Option<String>)>> = Arc::new(Mutex::new((0, None)));
    let start = Instant::now();
    let requests = thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|frames| {
                let (barrier, refusals) = (barrier.clone(), refusals.clone());
                s.spawn(move || -> u64 {
                    let client = Client::new(url);
                    let mut synced = 0;
                    for (chunk, body) in frames {
                        // Every client reaches each sync point exactly once, in the same order.
                        while synced < chunk / SYNC_EVERY_CHUNKS {
                            barrier.wait();
                            synced += 1;
                        }
                        match client.send_encoded(body) {
                            o if o.acknowledged() => {}
                            o => {
                                let mut r = refusals.lock().unwrap_or_else(|e| e.into_inner());
                                r.0 += 1;
                                r.1.get_or_insert_with(|| describe(&o));
                            }
                        }
                    }
                    let last_chunk = frames.last().map_or(0, |f| f.0);
                    // Clients with fewer sync points left still release the others.
                    let total_syncs = last_chunk / SYNC_EVERY_CHUNKS;
                    while synced < total_syncs {
                        barrier.wait();
                        synced += 1;
                    }
                    frames.len() as u64
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum::<u64>()
    });
    let wall = start.elapsed();
    guard::check_interrupt()?;
    let (refused, first_refusal) =
        std::mem::take(&mut *refusals.lock().unwrap_or_else(|e| e.into_inner()));
    if requests == 0 {
        bail!("no requests to send");
    }
    Ok(Ingested {
        wall,
        requests,
        refused,
        first_refusal,
    })
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Status(code, body) => format!(
            "HTTP {code}: {}",
            body.chars().take(300).collect::<String>()
        ),
        Outcome::Transport(e) => format!("no answer: {e}"),
    }
}
