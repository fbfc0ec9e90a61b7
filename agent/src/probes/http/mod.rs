//! HTTP/1.x spans of unmodified services (probe `http`, on with spans): the
//! kernel programs (`agent-ebpf/src/http.rs`) follow the socket syscalls of
//! processes in container cgroups and send one event per request/response
//! exchange; here each becomes an OTLP span ([`span`], parsed by [`head`])
//! named after its pod and container, handed to the span path
//! (`crate::spans`) in batches. Which cgroups are followed is refreshed from
//! the cgroup tree as the stdout/stderr tap does (`stdio::targets`).
//!
//! Losses: in the kernel `sonde_probe_events_lost_total{probe="http"}`; here
//! `sonde_http_spans_dropped_total{reason}` (the span path had no room, or an
//! event was not HTTP after all).

pub mod head;
pub mod span;

use std::{
    collections::{BTreeSet, HashMap as StdHashMap},
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, RingBuf},
    programs::TracePoint,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, trace::v1::Span,
};
use prometheus_client::encoding::DescriptorEncoder;
use sonde_probe_abi::{Conn, ConnKey, HttpEvent, HttpRequest, Pending};
use tokio::{
    io::unix::AsyncFd,
    sync::mpsc::{self, error::TrySendError},
};
use tracing::{error, info, warn};

use super::stdio::{realtime_minus_monotonic_ns, targets};
use crate::{
    enrich::workloads::Workloads,
    export::families::{self, Labels},
};

/// The programs, each named `http_` + its tracepoint in `syscalls`.
pub const PROGRAMS: &[&str] = &[
    "http_enter_accept4",
    "http_exit_accept4",
    "http_enter_accept",
    "http_exit_accept",
    "http_enter_connect",
    "http_enter_close",
    "http_enter_read",
    "http_exit_read",
    "http_enter_recvfrom",
    "http_exit_recvfrom",
    "http_enter_write",
    "http_enter_sendto",
];

/// Spans per export request at most; a busier wakeup sends several.
const BATCH: usize = 512;

/// The probe's maps, once its programs are attached.
pub struct HttpProbe {
    events: RingBuf<MapData>,
    cgroups: HashMap<MapData, u64, u8>,
    conns: HashMap<MapData, ConnKey, Conn>,
    requests: HashMap<MapData, ConnKey, HttpRequest>,
    pending: HashMap<MapData, u64, Pending>,
}

/// Loads and attaches every program and takes the maps. On failure nothing
/// stays attached.
pub fn attach(ebpf: &mut Ebpf) -> Result<HttpProbe> {
    super::stdio::tracefs::ensure_mounted()
        .map_err(|e| anyhow!("attaching the http probe: {e}"))?;
    for (i, name) in PROGRAMS.iter().enumerate() {
        let result = (|| -> Result<()> {
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} is missing from the eBPF object"))?
                .try_into()?;
            prog.load().with_context(|| format!("loading {name}"))?;
            let tracepoint = name.replacen("http_", "sys_", 1);
            prog.attach("syscalls", &tracepoint)
                .with_context(|| format!("attaching {name} to syscalls:{tracepoint}"))?;
            Ok(())
        })();
        if let Err(e) = result {
            for done in &PROGRAMS[..=i] {
                if let Some(p) = ebpf
                    .program_mut(done)
                    .and_then(|p| <&mut TracePoint>::try_from(p).ok())
                {
                    let _ = p.unload();
                }
            }
            return Err(e);
        }
    }
    let mut take = |name: &str| {
        ebpf.take_map(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    };
    let probe = HttpProbe {
        events: RingBuf::try_from(take("HTTP_EVENTS")?)?,
        cgroups: HashMap::try_from(take("HTTP_CGROUPS")?)?,
        conns: HashMap::try_from(take("HTTP_CONNS")?)?,
        requests: HashMap::try_from(take("HTTP_REQUESTS")?)?,
        pending: HashMap::try_from(take("HTTP_PENDING")?)?,
    };
    info!(programs = ?PROGRAMS, "http probe attached");
    Ok(probe)
}

static SPANS: AtomicU64 = AtomicU64::new(0);
static DROPPED_FULL: AtomicU64 = AtomicU64::new(0);
static DROPPED_REQUEST: AtomicU64 = AtomicU64::new(0);
static DROPPED_STATUS: AtomicU64 = AtomicU64::new(0);
static CGROUPS: AtomicU64 = AtomicU64::new(0);

/// The user side's counters, on /metrics with the probes' families.
pub fn encode(enc: &mut DescriptorEncoder) -> fmt::Result {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    families::counter(
        enc,
        "sonde_http_spans",
        "HTTP spans the http probe built and handed to the span path.",
        [(Labels::new(), load(&SPANS))],
    )?;
    families::counter(
        enc,
        "sonde_http_spans_dropped",
        "HTTP exchanges that became no span: the span path was full (queue_full), or the kept head or status line was not HTTP/1.x (not_http_request, not_http_status).",
        [
            (
                crate::labels!("reason" => "queue_full"),
                load(&DROPPED_FULL),
            ),
            (
                crate::labels!("reason" => "not_http_request"),
                load(&DROPPED_REQUEST),
            ),
            (
                crate::labels!("reason" => "not_http_status"),
                load(&DROPPED_STATUS),
            ),
        ],
    )?;
    families::gauge(
        enc,
        "sonde_http_cgroups",
        "Container cgroups whose HTTP exchanges the http probe follows.",
        [(Labels::new(), load(&CGROUPS))],
    )
}

/// Runs the probe ([`spawn`]) with the agent's cgroup tree, refreshing every 2 s;
/// returns the spans it builds. Bounded: the kernel cannot wait, so past 256
/// requests spans are dropped (and counted).
pub fn start(
    probe: HttpProbe,
    procfs: PathBuf,
    workloads: Arc<Mutex<Workloads>>,
) -> mpsc::Receiver<ExportTraceServiceRequest> {
    let (tx, rx) = mpsc::channel(256);
    let root = workloads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .cgroup_root()
        .map(Path::to_path_buf);
    spawn(probe, root, procfs, Duration::from_secs(2), workloads, tx);
    rx
}

/// Runs the probe: keeps the followed cgroups current and removes the state of
/// exited processes every `refresh` (a thread), and turns events into spans sent
/// to `out` (a task).
pub fn spawn(
    probe: HttpProbe,
    cgroup_v2_root: Option<PathBuf>,
    procfs: PathBuf,
    refresh: Duration,
    workloads: Arc<Mutex<Workloads>>,
    out: mpsc::Sender<ExportTraceServiceRequest>,
) {
    let HttpProbe {
        events,
        cgroups,
        conns,
        requests,
        pending,
    } = probe;
    match cgroup_v2_root {
        Some(root) => {
            let maps = StateMaps {
                cgroups,
                conns,
                requests,
                pending,
            };
            let spawned = std::thread::Builder::new()
                .name("http-probe".into())
                .spawn(move || maps.keep(&root, &procfs, refresh));
            if let Err(e) = spawned {
                error!(error = %e, "cannot start the http probe's cgroup refresher; it follows nothing");
            }
        }
        None => {
            warn!("the http probe has no cgroup v2 tree to find containers in; it follows nothing")
        }
    }
    tokio::spawn(read_events(events, workloads, out));
}

struct StateMaps {
    cgroups: HashMap<MapData, u64, u8>,
    conns: HashMap<MapData, ConnKey, Conn>,
    requests: HashMap<MapData, ConnKey, HttpRequest>,
    pending: HashMap<MapData, u64, Pending>,
}

impl StateMaps {
    fn keep(mut self, root: &Path, procfs: &Path, refresh: Duration) -> ! {
        let mut followed = BTreeSet::new();
        loop {
            let want = targets::containers(root);
            CGROUPS.store(want.len() as u64, Ordering::Relaxed);
            for id in targets::sync(&mut self.cgroups, &mut followed, want) {
                warn!(
                    cgroup_id = id,
                    "the http probe cannot follow a cgroup (map full)"
                );
            }
            self.forget_exited(procfs);
            std::thread::sleep(refresh);
        }
    }

    /// A process that exits closes its sockets without close(2): its entries
    /// would stay forever. Drop those of processes that are gone.
    fn forget_exited(&mut self, procfs: &Path) {
        let alive = |tgid: u32| procfs.join(tgid.to_string()).exists();
        let gone: Vec<ConnKey> = self
            .conns
            .keys()
            .filter_map(Result::ok)
            .chain(self.requests.keys().filter_map(Result::ok))
            .filter(|k| !alive(k.tgid))
            .collect();
        for k in &gone {
            let _ = self.conns.remove(k);
            let _ = self.requests.remove(k);
        }
        let threads: Vec<u64> = self
            .pending
            .keys()
            .filter_map(Result::ok)
            .filter(|id| !alive((id >> 32) as u32))
            .collect();
        for id in &threads {
            let _ = self.pending.remove(id);
        }
    }
}

async fn read_events(
    events: RingBuf<MapData>,
    workloads: Arc<Mutex<Workloads>>,
    out: mpsc::Sender<ExportTraceServiceRequest>,
) {
    // SAFETY: the RingBuf owns its map fd and keeps it open for as long as it lives,
    // and it lives inside the AsyncFd.
    let mut fd =
        match unsafe { AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                error!(error = %e, "cannot watch the http probe's ring buffer; it builds no spans");
                return;
            }
        };
    loop {
        let Ok(mut ready) = fd.readable_mut().await else {
            return;
        };
        let ring = ready.get_inner_mut();
        // Read per wakeup, not once: the wall clock may be stepped (NTP) while we run.
        let offset = realtime_minus_monotonic_ns();
        let mut batch = Batch::default();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<HttpEvent>() {
                continue;
            }
            // SAFETY: the kernel program wrote exactly one HttpEvent into this record.
            let ev: &HttpEvent = unsafe { &*item.as_ptr().cast::<HttpEvent>() };
            batch.add(ev, offset);
            if batch.len >= BATCH {
                std::mem::take(&mut batch).send(&workloads, &out);
            }
        }
        batch.send(&workloads, &out);
        ready.clear_ready();
    }
}

/// Spans of one wakeup, grouped by process (one resource each).
#[derive(Default)]
struct Batch {
    by_process: StdHashMap<(u64, u32), (String, Vec<Span>)>,
    len: usize,
}

impl Batch {
    fn add(&mut self, ev: &HttpEvent, offset_ns: i64) {
        match span::build(&span::Exchange::from_event(ev, offset_ns)) {
            Ok(s) => {
                let comm_len = ev.comm.iter().position(|&b| b == 0).unwrap_or(16);
                self.by_process
                    .entry((ev.cgroup_id, ev.tgid))
                    .or_insert_with(|| {
                        (
                            String::from_utf8_lossy(&ev.comm[..comm_len]).into_owned(),
                            Vec::new(),
                        )
                    })
                    .1
                    .push(s);
                self.len += 1;
            }
            Err(span::Unusable::Request) => {
                DROPPED_REQUEST.fetch_add(1, Ordering::Relaxed);
            }
            Err(span::Unusable::Status) => {
                DROPPED_STATUS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn send(self, workloads: &Mutex<Workloads>, out: &mpsc::Sender<ExportTraceServiceRequest>) {
        if self.len == 0 {
            return;
        }
        let mut req = ExportTraceServiceRequest::default();
        {
            let mut w = workloads.lock().unwrap_or_else(|p| p.into_inner());
            for ((cgroup_id, tgid), (comm, spans)) in self.by_process {
                let workload = w.workload(cgroup_id);
                req.resource_spans.push(span::resource_spans(
                    span::resource(&workload, &comm, tgid),
                    spans,
                ));
            }
        }
        match out.try_send(req) {
            Ok(()) => {
                SPANS.fetch_add(self.len as u64, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                DROPPED_FULL.fetch_add(self.len as u64, Ordering::Relaxed);
            }
        }
    }
}
