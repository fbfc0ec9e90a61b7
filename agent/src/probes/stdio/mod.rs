//! The stdout/stderr tap's user side (config `[logs] tap`, off by default): for
//! containers that have no log file, the kernel program (`agent-ebpf/src/stdio.rs`)
//! copies their `write(2)`s to fd 1 and 2 into a ring buffer; here they become
//! lines ([`lines`]) labelled with the container, handed to the log path.
//! Which cgroups are tapped is refreshed from the cgroup tree ([`targets`]).
//! What the kernel could not keep is counted in `sonde_probe_events_lost_total{probe="stdio"}`;
//! lines the log path had no room for in `sonde_stdio_tap_lines_dropped_total`.

pub mod lines;
pub mod targets;
pub(crate) mod tracefs;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, RingBuf},
    programs::TracePoint,
};
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use sonde_probe_abi::StdioEvent;
use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::{error, info, warn};

use crate::export::families;
pub use lines::Line;

/// The program, named after its tracepoint `syscalls:sys_enter_write`.
const PROGRAM: &str = "sys_enter_write";
/// A line still waiting for its newline after this long is sent as it is.
const IDLE_FLUSH: Duration = Duration::from_secs(1);

/// The tap's maps, once its program is attached.
pub struct StdioTap {
    events: RingBuf<MapData>,
    cgroups: HashMap<MapData, u64, u8>,
}

/// Loads and attaches the tap's program and takes its maps.
pub fn attach(ebpf: &mut Ebpf) -> Result<StdioTap> {
    let prog: &mut TracePoint = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("program {PROGRAM} is missing from the eBPF object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {PROGRAM}"))?;
    tracefs::ensure_mounted().map_err(|e| anyhow!("attaching {PROGRAM}: {e}"))?;
    prog.attach("syscalls", PROGRAM)
        .with_context(|| format!("attaching {PROGRAM} (needs tracefs)"))?;
    let events = ebpf
        .take_map("STDIO_EVENTS")
        .ok_or_else(|| anyhow!("map STDIO_EVENTS missing"))?;
    let cgroups = ebpf
        .take_map("STDIO_CGROUPS")
        .ok_or_else(|| anyhow!("map STDIO_CGROUPS missing"))?;
    info!("stdout/stderr tap attached");
    Ok(StdioTap {
        events: RingBuf::try_from(events)?,
        cgroups: HashMap::try_from(cgroups)?,
    })
}

/// Counters of the user side, served on /metrics.
#[derive(Clone, Debug, Default)]
pub struct TapStats {
    lines: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    cgroups: Arc<AtomicU64>,
}

impl Collector for TapStats {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let none: [(&str, &str); 0] = [];
        families::counter(
            &mut enc,
            "sonde_stdio_tap_lines",
            "Lines read from tapped stdout/stderr writes.",
            [(none, self.lines.load(Ordering::Relaxed) as f64)],
        )?;
        families::counter(
            &mut enc,
            "sonde_stdio_tap_lines_dropped",
            "Tapped lines dropped because the log path had no room for them.",
            [(none, self.dropped.load(Ordering::Relaxed) as f64)],
        )?;
        families::gauge(
            &mut enc,
            "sonde_stdio_tap_cgroups",
            "Container cgroups being tapped (containers without a log file).",
            [(none, self.cgroups.load(Ordering::Relaxed) as f64)],
        )
    }
}

/// Runs the tap: refreshes the tapped cgroups every `refresh` and sends every
/// line to `out`. A full `out` drops the line (counted): the kernel cannot wait.
pub fn spawn(
    tap: StdioTap,
    cgroup_v2_root: PathBuf,
    log_dir: PathBuf,
    refresh: Duration,
    out: mpsc::Sender<Line>,
    stats: TapStats,
) {
    let StdioTap {
        events,
        mut cgroups,
    } = tap;
    let targets_stats = stats.clone();
    tokio::spawn(async move {
        let mut tapped = BTreeSet::new();
        loop {
            let (root, dir) = (cgroup_v2_root.clone(), log_dir.clone());
            let want = tokio::task::spawn_blocking(move || targets::find(&root, &dir))
                .await
                .unwrap_or_default();
            targets_stats
                .cgroups
                .store(want.len() as u64, Ordering::Relaxed);
            for id in targets::sync(&mut cgroups, &mut tapped, want) {
                warn!(cgroup_id = id, "cannot tap a cgroup (map full?)");
            }
            tokio::time::sleep(refresh).await;
        }
    });
    tokio::spawn(read_events(events, out, stats));
}

async fn read_events(events: RingBuf<MapData>, out: mpsc::Sender<Line>, stats: TapStats) {
    // SAFETY: the RingBuf owns its map fd and keeps it open for as long as it lives,
    // and it lives inside the AsyncFd.
    let mut fd = match unsafe {
        AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE)
    } {
        Ok(fd) => fd,
        Err(e) => {
            error!(error = %e, "cannot watch the stdout/stderr tap's ring buffer; the tap reads nothing");
            return;
        }
    };
    let mut joiner = lines::Joiner::default();
    let mut send = |line: Line| {
        stats.lines.fetch_add(1, Ordering::Relaxed);
        if out.try_send(line).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        match tokio::time::timeout(IDLE_FLUSH, fd.readable_mut()).await {
            Err(_) => {}
            Ok(Err(_)) => return,
            Ok(Ok(mut ready)) => {
                let ring = ready.get_inner_mut();
                let now = Instant::now();
                // Read per wakeup, not once: the wall clock may be stepped (NTP) while we run.
                let boot_offset = realtime_minus_monotonic_ns();
                while let Some(item) = ring.next() {
                    if item.len() < size_of::<StdioEvent>() {
                        continue;
                    }
                    // SAFETY: the kernel program wrote exactly one StdioEvent into this record.
                    let ev: &StdioEvent = unsafe { &*item.as_ptr().cast::<StdioEvent>() };
                    let len = (ev.len as usize).min(ev.data.len());
                    let write = lines::Write {
                        cgroup_id: ev.cgroup_id,
                        tgid: ev.tgid,
                        fd: ev.fd,
                        unix_ns: (ev.ts_ns as i64).saturating_add(boot_offset),
                        data: &ev.data[..len],
                        truncated: ev.requested > ev.len,
                    };
                    joiner.push(write, now, &mut send);
                }
                ready.clear_ready();
            }
        }
        joiner.flush_idle(Instant::now(), IDLE_FLUSH, &mut send);
    }
}

/// `bpf_ktime_get_ns` is CLOCK_MONOTONIC; this turns it into Unix time.
pub(crate) fn realtime_minus_monotonic_ns() -> i64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec to write into.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}
