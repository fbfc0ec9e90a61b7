//! sonde-agent: Sonde's node agent.
//!
//! Data flows one way: sources (`host` for /proc and /sys, `probes` for the
//! kernel) -> `enrich` (names for cgroup ids and devices) -> `export` (/metrics).
//! Node problems: sources (`detect::npd` over /dev/kmsg, `detect::health`,
//! `detect::evidence` over the probes) -> `detect::hub` -> `export` (Node
//! status and Events, `problem_*` metrics, OTLP).
//! Container logs run their own path: `logs` (tail, parse, redact, batch) ->
//! `export::otlp` (disk queue and sender).

mod config;
mod container_stats;
mod detect;
mod enrich;
mod export;
mod host;
mod logs;
mod probes;
mod spans;

use std::{
    process::ExitCode,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder, registry::Registry};
use tracing::{error, info, warn};

use config::{Config, Flags, LogFormat};

fn main() -> ExitCode {
    let flags: Flags = match sonde_cli_config::parse_flags("sonde-agent") {
        Ok(f) => f,
        Err(code) => return code,
    };
    let cfg = match Config::resolve(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sonde-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.check_config {
        println!("{cfg:#?}");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(&cfg) {
        eprintln!("sonde-agent: --log-level: {e}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("sonde-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cfg.log_level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let listener = export::server::bind(cfg.listen).await?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BuildInfo));
    let host_paths = host::HostPaths {
        procfs: cfg.procfs.clone(),
        sysfs: cfg.sysfs.clone(),
        rootfs: cfg.rootfs.clone(),
    };
    for c in host::collectors(&host_paths) {
        registry.register_collector(c);
    }
    let workloads = Arc::new(Mutex::new(enrich::workloads::Workloads::new(
        cgroup_paths(&cfg),
        start_pod_watch(&cfg)?,
        &cfg.pod_labels,
        cfg.cgroup_grace,
    )));
    registry.register_collector(Box::new(container_stats::ContainerStats::new(
        workloads.clone(),
        cfg.sysfs.join("fs/cgroup"),
        cfg.sysfs.clone(),
        cfg.max_cgroups as usize,
    )));
    let wants_ooms = cfg.problems.is_some();
    let (probe_metrics, stdio_tap, probe_inputs, kernel_spans) =
        start_probes(&cfg, workloads.clone(), wants_ooms);
    if let Some(problems) = &cfg.problems {
        detect::start::start(&cfg, problems, probe_inputs, &mut registry)?;
    }
    registry.register_collector(Box::new(probe_metrics));
    let push = match &cfg.export {
        Some(e) => Some(export::otlp::Export::prepare(
            e,
            export::otlp::node_name(cfg.node_name.as_deref()),
            &mut registry,
        )?),
        None => None,
    };
    match (&cfg.logs, &cfg.export) {
        (Some(logs_cfg), Some(export_cfg)) => {
            let node = export::otlp::node_name(cfg.node_name.as_deref());
            let tap = stdio_tap.map(|t| start_tap(t, logs_cfg, &workloads, &mut registry));
            logs::start(logs_cfg, export_cfg, node, tap, &mut registry)?;
        }
        (None, None) => info!("container logs off: no --collector to ship them to"),
        _ => info!("container logs off (--logs off)"),
    }
    if let (Some(spans_cfg), Some(export_cfg)) = (&cfg.spans, &cfg.export) {
        let node = export::otlp::node_name(cfg.node_name.as_deref());
        spans::start(
            spans_cfg,
            export_cfg,
            node,
            workloads.clone(),
            cfg.procfs.clone(),
            kernel_spans,
            &mut registry,
        )
        .await?;
    }
    let registry = Arc::new(registry);
    if let Some(push) = push {
        push.spawn(registry.clone());
    }
    info!(listen = %cfg.listen, "serving metrics");
    println!(
        "sonde-agent: metrics at http://{}/metrics",
        display_addr(cfg.listen)
    );
    tokio::select! {
        r = export::server::serve(listener, registry) => r,
        _ = tokio::signal::ctrl_c() => { info!("interrupted; stopping"); Ok(()) }
    }
}

fn cgroup_paths(cfg: &Config) -> enrich::cgroups::CgroupPaths {
    let root = cfg
        .cgroup_root
        .clone()
        .or_else(|| enrich::cgroups::find_root(&cfg.procfs));
    if root.is_none() {
        warn!("no cgroup v2 hierarchy found; per-cgroup metrics will be labelled by cgroup id");
    }
    enrich::cgroups::CgroupPaths::new(root, cfg.probe_interval)
}

/// Watches this node's pods when the agent knows its node name. A kubeconfig that
/// cannot be used is a configuration error; an API that is down is not.
fn start_pod_watch(cfg: &Config) -> anyhow::Result<Option<enrich::pods::PodIndex>> {
    let Some(node_name) = cfg.node_name.clone() else {
        info!("no node name (--node-name or NODE_NAME): pods are labelled from cgroup paths alone");
        return Ok(None);
    };
    let pods = enrich::pods::spawn_watcher(enrich::pods::PodConfig {
        node_name,
        kubeconfig: cfg.kubeconfig.clone(),
        label_keys: cfg.pod_labels.clone(),
    })?;
    Ok(Some(pods))
}

/// Starts the stdout/stderr tap; its lines go to the log path.
fn start_tap(
    tap: probes::stdio::StdioTap,
    logs_cfg: &config::LogsConfig,
    workloads: &Arc<Mutex<enrich::workloads::Workloads>>,
    registry: &mut Registry,
) -> logs::tap::TapInput {
    // Bounded: the kernel cannot wait, so past this the tap drops (and counts) lines.
    let (tx, rx) = tokio::sync::mpsc::channel(16_384);
    let stats = probes::stdio::TapStats::default();
    registry.register_collector(Box::new(stats.clone()));
    let root = workloads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .cgroup_root()
        .map(|p| p.to_path_buf());
    match root {
        Some(root) => probes::stdio::spawn(
            tap,
            root,
            logs_cfg.log_dir.clone(),
            Duration::from_secs(2),
            tx,
            stats,
        ),
        None => warn!(
            "the stdout/stderr tap has no cgroup v2 tree to find containers in; it reads nothing"
        ),
    }
    logs::tap::TapInput {
        lines: rx,
        workloads: workloads.clone(),
    }
}

/// Loads the probes and starts their reader; never fails the agent. Also hands
/// back the stdout/stderr tap when it is configured and attached, what the
/// problem detector reads (the readings; OOM kills when `wants_ooms`), and the
/// http probe's spans when it is up.
fn start_probes(
    cfg: &Config,
    workloads: Arc<Mutex<enrich::workloads::Workloads>>,
    wants_ooms: bool,
) -> (
    probes::metrics::ProbeMetrics,
    Option<probes::stdio::StdioTap>,
    detect::start::ProbeInputs,
    Option<tokio::sync::mpsc::Receiver<ExportTraceServiceRequest>>,
) {
    let (loaded, status) = probes::load::load(cfg);
    for s in status
        .iter()
        .filter(|s| !s.up && cfg.probes.contains(&s.probe))
    {
        warn!(probe = %s.probe, reason = %s.reason, "probe is off");
    }
    let latest = Arc::new(RwLock::new(None));
    let mut stats_enabled = false;
    let mut tap = None;
    let mut ooms = None;
    let mut kernel_spans = None;
    if let Some(mut loaded) = loaded {
        tap = loaded.stdio.take();
        let http = loaded.http.take();
        kernel_spans = http.map(|h| probes::http::start(h, cfg.procfs.clone(), workloads.clone()));
        stats_enabled = loaded.stats.is_some();
        let up: Vec<_> = status.iter().filter(|s| s.up).map(|s| s.probe).collect();
        if let Some(events) = loaded.maps.events.take() {
            let to_detect = wants_ooms.then(|| {
                // Bounded: past it kills are still logged and counted, not joined.
                let (tx, rx) = tokio::sync::mpsc::channel(256);
                ooms = Some(rx);
                tx
            });
            tokio::spawn(probes::oom::forward_events(
                events,
                workloads.clone(),
                to_detect,
            ));
        }
        let disks = enrich::disks::DiskNames::new(cfg.sysfs.clone());
        probes::reader::spawn(
            loaded,
            up,
            cfg.probe_interval,
            workloads,
            disks,
            latest.clone(),
        );
    }
    let inputs = detect::start::ProbeInputs {
        latest: latest.clone(),
        ooms,
    };
    let metrics = probes::metrics::ProbeMetrics {
        status,
        stats_enabled,
        latest,
    };
    (metrics, tap, inputs, kernel_spans)
}

fn display_addr(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// `sonde_agent_build_info`: which agent is answering.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        export::families::gauge(
            &mut enc,
            "sonde_agent_build_info",
            "The agent's version, and whether it was built with its eBPF probes.",
            [(
                labels!("version" => env!("CARGO_PKG_VERSION"), "probes_embedded" => probes::object::embedded()),
                1.0,
            )],
        )
    }
}
