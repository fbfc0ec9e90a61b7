//! The problem detector's settings: flags, the `[problems]` table, defaults.
//!
//! ```toml
//! [problems]
//! enabled = true                   # detection and reporting; default on
//! config = ["/etc/sonde/npd/kernel-monitor.json"]   # NPD monitor JSON files;
//!                                  # default: NPD's kernel-monitor and readonly-monitor, built in
//! kubelet_healthz = "http://127.0.0.1:10248/healthz"   # "off" to skip; default: on in Kubernetes
//! runtime_socket = "/run/containerd/containerd.sock"   # "off" to skip; default: found, in Kubernetes
//! health_interval = "30s"
//! tcp_retransmits_per_second = 50  # node-wide, sustained -> FrequentTCPRetransmits
//! blockio_p99 = "500ms"            # per disk, sustained -> SlowBlockIO
//! runqueue_p99 = "50ms"            # node-wide, sustained -> CPURunQueueLatencyHigh
//! sustain = "2m"                   # how long a kernel-evidence bound must be crossed
//! heartbeat = "5m"                 # NodeCondition heartbeat (NPD's default)
//! event_namespace = "default"      # where Events go (NPD's choice)
//! ```
//!
//! Why the kubelet and runtime checks default to on only with a node name: off
//! Kubernetes (`cargo xtask run`, a laptop) there is no kubelet to be unhealthy,
//! and a condition that is always True teaches people to ignore conditions.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use serde::Deserialize;

use super::{OnOff, parse_duration};

#[derive(Debug, Default, Args)]
pub struct ProblemFlags {
    /// Detect node problems and report them (NodeConditions, Events, problem_* metrics, OTLP): on or off [default: on].
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub problems: Option<String>,

    /// node-problem-detector monitor configs (JSON), comma separated [default: NPD's kernel-monitor.json and readonly-monitor.json, built in].
    #[arg(long, value_name = "FILES")]
    pub problem_config: Option<String>,

    /// Kubelet health URL to check, or "off" [default: http://127.0.0.1:10248/healthz with a node name, else off].
    #[arg(long, value_name = "URL")]
    pub kubelet_healthz: Option<String>,

    /// Container runtime socket to check, or "off" [default: containerd, CRI-O or Docker's socket, whichever exists, with a node name; else off].
    #[arg(long, value_name = "PATH")]
    pub runtime_socket: Option<String>,

    /// How often the health checks run, e.g. 30s [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_interval: Option<Duration>,

    /// TCP retransmits per second, node-wide, that raise FrequentTCPRetransmits when sustained [default: 50].
    #[arg(long, value_name = "RATE")]
    pub tcp_retransmits_problem: Option<f64>,

    /// Block I/O latency p99 of a disk that raises SlowBlockIO when sustained, e.g. 500ms [default: 500ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub blockio_p99_problem: Option<Duration>,

    /// Run-queue latency p99, node-wide, that raises CPURunQueueLatencyHigh when sustained, e.g. 50ms [default: 50ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub runqueue_p99_problem: Option<Duration>,

    /// How long a kernel-evidence bound must be crossed (and then be clear) before the condition changes [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub problem_sustain: Option<Duration>,

    /// How often unchanged NodeConditions are re-sent as a heartbeat [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_period: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProblems {
    enabled: Option<OnOff>,
    config: Option<Vec<PathBuf>>,
    kubelet_healthz: Option<String>,
    runtime_socket: Option<String>,
    health_interval: Option<String>,
    tcp_retransmits_per_second: Option<f64>,
    blockio_p99: Option<String>,
    runqueue_p99: Option<String>,
    sustain: Option<String>,
    heartbeat: Option<String>,
    event_namespace: Option<String>,
}

/// The resolved settings (see `detect` and `export::kube`).
#[derive(Debug, Clone)]
pub struct ProblemsConfig {
    /// NPD monitor files; empty means the built-in ones. Already checked to load.
    pub monitor_files: Vec<PathBuf>,
    pub kubelet_healthz: Option<String>,
    pub runtime_socket: RuntimeSocket,
    pub health_interval: Duration,
    pub tcp_retransmits_per_second: f64,
    pub blockio_p99: Duration,
    pub runqueue_p99: Duration,
    pub sustain: Duration,
    pub heartbeat: Duration,
    pub event_namespace: String,
}

/// Which container runtime socket the health check connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSocket {
    Off,
    /// The first of containerd's, CRI-O's and Docker's that exists under the
    /// host's root (`detect::health::detect_runtime_socket`), found at start.
    Found,
    At(PathBuf),
}

/// `None` when problems are off.
pub fn resolve(
    flags: &ProblemFlags,
    file: &FileProblems,
    where_file: &dyn Fn(&str) -> String,
    in_kubernetes: bool,
) -> Result<Option<ProblemsConfig>, String> {
    let enabled = match (&flags.problems, &file.enabled) {
        (Some(v), _) => v == "on",
        (None, Some(OnOff::Bool(b))) => *b,
        (None, Some(OnOff::Text(t))) => match t.as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(format!(
                    "{}: {other:?}: write \"on\" or \"off\"",
                    where_file("problems.enabled")
                ));
            }
        },
        (None, None) => true,
    };
    if !enabled {
        return Ok(None);
    }
    let (monitor_files, from_flag) = match (&flags.problem_config, &file.config) {
        (Some(list), _) => (
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            true,
        ),
        (None, Some(list)) => (list.clone(), false),
        (None, None) => (Vec::new(), false),
    };
    if !monitor_files.is_empty() {
        crate::detect::npd::load(&monitor_files).map_err(|e| {
            if from_flag {
                format!("--problem-config: {e}")
            } else {
                format!("{}: {e}", where_file("problems.config"))
            }
        })?;
    }
    let duration = |flag: Option<Duration>, field: &str, text: &Option<String>, default: u64| match (
        flag, text,
    ) {
        (Some(d), _) => Ok(d),
        (None, Some(s)) => parse_duration(s)
            .map_err(|e| format!("{}: {s:?}: {e}", where_file(&format!("problems.{field}")))),
        (None, None) => Ok(Duration::from_millis(default)),
    };
    let off = |v: &str| v == "off" || v.is_empty();
    let kubelet_healthz = match (&flags.kubelet_healthz, &file.kubelet_healthz) {
        (Some(v), _) | (None, Some(v)) if off(v) => None,
        (Some(v), _) | (None, Some(v)) => Some(check_http_url(v).map_err(|e| {
            if flags.kubelet_healthz.is_some() {
                format!("--kubelet-healthz {v:?}: {e}")
            } else {
                format!("{}: {v:?}: {e}", where_file("problems.kubelet_healthz"))
            }
        })?),
        (None, None) => {
            in_kubernetes.then(|| crate::detect::health::DEFAULT_KUBELET_HEALTHZ.to_string())
        }
    };
    let runtime_socket = match (&flags.runtime_socket, &file.runtime_socket) {
        (Some(v), _) | (None, Some(v)) if off(v) => RuntimeSocket::Off,
        (Some(v), _) | (None, Some(v)) => RuntimeSocket::At(PathBuf::from(v)),
        (None, None) if in_kubernetes => RuntimeSocket::Found,
        (None, None) => RuntimeSocket::Off,
    };
    let tcp_retransmits_per_second = flags
        .tcp_retransmits_problem
        .or(file.tcp_retransmits_per_second)
        .unwrap_or(50.0);
    if !(tcp_retransmits_per_second.is_finite() && tcp_retransmits_per_second > 0.0) {
        return Err(if flags.tcp_retransmits_problem.is_some() {
            "--tcp-retransmits-problem: must be a rate above 0".into()
        } else {
            format!(
                "{}: must be a rate above 0",
                where_file("problems.tcp_retransmits_per_second")
            )
        });
    }
    let event_namespace = file
        .event_namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    if event_namespace.is_empty() {
        return Err(format!(
            "{}: must not be empty",
            where_file("problems.event_namespace")
        ));
    }
    Ok(Some(ProblemsConfig {
        monitor_files,
        kubelet_healthz,
        runtime_socket,
        health_interval: duration(
            flags.health_interval,
            "health_interval",
            &file.health_interval,
            30_000,
        )?,
        tcp_retransmits_per_second,
        blockio_p99: duration(
            flags.blockio_p99_problem,
            "blockio_p99",
            &file.blockio_p99,
            500,
        )?,
        runqueue_p99: duration(
            flags.runqueue_p99_problem,
            "runqueue_p99",
            &file.runqueue_p99,
            50,
        )?,
        sustain: duration(flags.problem_sustain, "sustain", &file.sustain, 120_000)?,
        heartbeat: duration(
            flags.heartbeat_period,
            "heartbeat",
            &file.heartbeat,
            300_000,
        )?,
        event_namespace,
    }))
}

fn check_http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or("write an http:// URL, e.g. http://127.0.0.1:10248/healthz")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("no host".into());
    }
    Ok(s.to_string())
}
