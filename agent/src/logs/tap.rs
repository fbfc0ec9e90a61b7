//! Lines from the stdout/stderr tap (`probes::stdio`) joining the log path: each
//! is labelled by its cgroup's workload and added to the same batches as tailed
//! lines. Tapped lines have no file position to resume from: what the agent had
//! read but not queued when it stopped is gone (the kernel does not replay), so
//! the tap is at most once, unlike the files.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::mpsc::Receiver;

use super::{
    Stream,
    batch::{BatchBuilder, Source},
    path::PodContainer,
    redact::Redactor,
};
use crate::{enrich::workloads::Workloads, probes::stdio::Line};

/// Labels are looked up again after this long: the pod watcher may have named
/// the pod since (a container's first lines can come before its pod is known).
const RELABEL_AFTER: Duration = Duration::from_secs(30);
/// Tapped sources get ids from here up, far from the tailer's (which count from 1).
const FIRST_ID: u64 = 1 << 62;

pub struct TapInput {
    pub lines: Receiver<Line>,
    pub workloads: Arc<Mutex<Workloads>>,
}

/// The reader thread's end of the tap.
pub struct Tap {
    input: TapInput,
    node: String,
    sources: HashMap<u64, (Arc<Source>, Instant)>,
    next_id: u64,
}

impl Tap {
    pub fn new(input: TapInput, node: String) -> Tap {
        Tap {
            input,
            node,
            sources: HashMap::new(),
            next_id: FIRST_ID,
        }
    }

    /// Moves waiting lines into `batch` until it holds `max_bytes`; returns how many.
    pub fn drain(
        &mut self,
        batch: &mut BatchBuilder,
        max_bytes: usize,
        redactor: &Redactor,
    ) -> usize {
        let mut n = 0;
        while batch.bytes() < max_bytes {
            let Ok(line) = self.input.lines.try_recv() else {
                break;
            };
            let src = self.source(line.cgroup_id);
            let stream = if line.fd == 2 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            let ts = line.unix_ns.max(0) as u64;
            batch.add(&src, ts, ts, stream, &redactor.apply(&line.text));
            n += 1;
        }
        n
    }

    fn source(&mut self, cgroup_id: u64) -> Arc<Source> {
        if let Some((src, at)) = self.sources.get(&cgroup_id)
            && at.elapsed() < RELABEL_AFTER
        {
            return src.clone();
        }
        let w = self
            .input
            .workloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .workload(cgroup_id);
        let labels = PodContainer {
            namespace: w.namespace.clone(),
            pod: w.pod.clone(),
            uid: String::new(),
            container: w.container.clone(),
        };
        // Without the pod watcher only the container id is known; it keeps streams apart.
        let id = if w.container_id.is_empty() {
            w.cgroup.to_string()
        } else {
            w.container_id.clone()
        };
        self.next_id += 1;
        let src = Arc::new(Source::with_extra(
            self.next_id,
            labels,
            &self.node,
            Some(("container.id", &id)),
        ));
        self.sources
            .insert(cgroup_id, (src.clone(), Instant::now()));
        src
    }
}
