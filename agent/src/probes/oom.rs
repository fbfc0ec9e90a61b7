//! OOM kills: events from the ring buffer become structured log lines and are
//! handed to `detect::evidence` as problems; the per-cgroup count comes from the
//! counters map.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use aya::maps::{MapData, RingBuf};
use prometheus_client::encoding::DescriptorEncoder;
use sonde_probe_abi::OomEvent;
use tokio::{
    io::unix::AsyncFd,
    sync::mpsc::{Sender, error::TrySendError},
};
use tracing::{error, warn};

use super::reader::Reading;
use crate::{
    detect::evidence::OomKill,
    enrich::workloads::Workloads,
    export::families::{self, Labels},
};

/// OOM kills not handed to the problem detector because its queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Logs every OOM kill the kernel reports, as it happens, and sends it to
/// `ooms` (the problem detector) when given. Never waits on `ooms`: a kill that
/// does not fit is logged anyway and counted as dropped.
pub async fn forward_events(
    events: RingBuf<MapData>,
    workloads: Arc<Mutex<Workloads>>,
    ooms: Option<Sender<OomKill>>,
) {
    // SAFETY: the RingBuf owns its map fd and keeps it open for as long as it lives,
    // and it lives inside the AsyncFd.
    let mut fd = match unsafe {
        AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE)
    } {
        Ok(fd) => fd,
        Err(e) => {
            error!(error = %e, "cannot watch the OOM event ring buffer; OOM kills are only counted");
            return;
        }
    };
    loop {
        let Ok(mut ready) = fd.readable_mut().await else {
            return;
        };
        let ring = ready.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<OomEvent>() {
                continue;
            }
            // SAFETY: the kernel program wrote exactly one OomEvent into this record.
            let ev: OomEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let comm_len = ev
                .comm
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(ev.comm.len());
            let comm = String::from_utf8_lossy(&ev.comm[..comm_len]).into_owned();
            let w = workloads.lock().unwrap().workload(ev.cgroup_id);
            warn!(
                pid = ev.pid,
                tgid = ev.tgid,
                comm = %comm,
                cgroup_id = ev.cgroup_id,
                cgroup = %w.cgroup,
                namespace = %w.namespace,
                pod = %w.pod,
                container = %w.container,
                container_id = %w.container_id,
                owner_kind = %w.owner_kind,
                owner_name = %w.owner_name,
                "OOM kill"
            );
            if let Some(ooms) = &ooms {
                let kill = OomKill {
                    pid: ev.pid,
                    tgid: ev.tgid,
                    comm,
                    cgroup_id: ev.cgroup_id,
                    workload: w,
                    time: SystemTime::now(),
                };
                match ooms.try_send(kill) {
                    Ok(()) | Err(TrySendError::Closed(_)) => {}
                    Err(TrySendError::Full(_)) => {
                        DROPPED.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        ready.clear_ready();
    }
}

pub fn encode(enc: &mut DescriptorEncoder, r: &Reading) -> fmt::Result {
    families::counter(
        enc,
        "cgroup_oom_kills",
        "Processes killed by the OOM killer, by the victim's cgroup.",
        r.snapshot.cgroups.iter().filter_map(|(id, d)| {
            let c = d.counters?;
            (c.oom_kills > 0).then(|| (r.labels(*id), c.oom_kills as f64))
        }),
    )?;
    families::counter(
        enc,
        "sonde_oom_events_dropped",
        "OOM kills not handed to the problem detector because its queue was full (still logged).",
        [(Labels::new(), DROPPED.load(Ordering::Relaxed) as f64)],
    )
}
