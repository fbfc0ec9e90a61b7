//! The agent's configuration: built-in defaults, then an optional TOML file
//! (`--config`), then flags. Any mistake is one error line naming the file, flag
//! or field; the agent then exits non-zero without starting anything.
//!
//! File format (every key optional):
//! ```toml
//! listen = "0.0.0.0:9101"        # /metrics and /healthz
//! log_level = "info"             # or a tracing filter such as "sonde_agent=debug"
//! log_format = "text"            # "text" or "json"
//! [host]
//! procfs = "/proc"               # the host's /proc (in Kubernetes: /host/proc)
//! sysfs = "/sys"
//! rootfs = "/"
//! [probes]
//! enabled = ["runqueue", "oom", "tcp", "blockio", "http"]   # [] for none; http needs [spans]
//! interval = "5s"                # how often the kernel maps are read
//! max_cgroups = 1024             # per-cgroup map entries; more are counted as lost
//! cgroup_root = "/sys/fs/cgroup/unified"   # the cgroup v2 tree; found by itself if unset
//! cgroup_grace = "2m"            # how long series of a removed cgroup stay
//! [kubernetes]
//! node_name = "node-1"           # this node; with it the agent watches its pods (env NODE_NAME)
//! kubeconfig = "/path/kubeconfig"   # default: in-cluster service account, or $KUBECONFIG
//! pod_labels = ["app", "app.kubernetes.io/name"]   # pod labels copied onto series
//! [export]
//! collector = "https://collector:4317"  # OTLP/gRPC endpoint; unset = no push
//! insecure = false               # true: allow a plaintext http:// collector
//! ca_file = "/etc/sonde/tls/ca.crt"        # CA of the collector's certificate; default: the system's
//! cert_file = "/etc/sonde/tls/tls.crt"     # client certificate for mutual TLS (with key_file)
//! key_file = "/etc/sonde/tls/tls.key"
//! token_file = "/etc/sonde/token/token"    # sent as `authorization: Bearer <token>`
//! interval = "15s"               # how often metrics are snapshotted and pushed
//! buffer_dir = "/var/lib/sonde-agent/buffer"   # unsent batches, kept across restarts
//! buffer_max_bytes = "256MiB"    # or a number of bytes; past it the oldest batches are dropped
//! [logs]
//! enabled = "on"                 # "on"/"off" (or true/false); default: on with a collector
//! log_dir = "/var/log/pods"      # <ns>_<pod>_<uid>/<container>/*.log
//! positions = "/var/lib/sonde-agent/log-positions.json"   # where tailing resumes
//! redact = "/etc/sonde/redaction.toml"   # [[rule]] name/pattern/replacement
//! flush_interval = "1s"          # longest a read line waits before its batch is queued
//! tap = false                    # eBPF tap of stdout/stderr writes of containers without a log file
//! [problems]                     # node problem detection: see config/problems.rs for every key
//! enabled = true
//! config = ["/etc/sonde/npd/kernel-monitor.json"]   # NPD monitor files
//! [spans]                        # OTLP span receiver: see config/spans.rs
//! enabled = true                 # default: on with a collector
//! otlp_grpc_listen = "0.0.0.0:4317"
//! ```

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Parser;
use serde::Deserialize;

mod problems;
mod spans;
pub use problems::{ProblemsConfig, RuntimeSocket};
pub use spans::SpansConfig;

/// The probes the agent can load, by the name used in flags, config and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    Runqueue,
    Oom,
    Tcp,
    Blockio,
    /// HTTP/1.x spans from socket syscalls; loads only with spans on.
    Http,
}

impl Probe {
    pub const ALL: [Probe; 5] = [
        Probe::Runqueue,
        Probe::Oom,
        Probe::Tcp,
        Probe::Blockio,
        Probe::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Probe::Runqueue => "runqueue",
            Probe::Oom => "oom",
            Probe::Tcp => "tcp",
            Probe::Blockio => "blockio",
            Probe::Http => "http",
        }
    }
}

impl FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Probe::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown probe {s:?} (known: runqueue, oom, tcp, blockio, http)")
            })
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// sonde-agent: Sonde's node agent. Serves node_exporter-compatible host metrics and
/// eBPF kernel metrics (run-queue latency, OOM kills, TCP, block I/O) on /metrics.
///
/// Runs with no arguments; as root it loads the eBPF probes, otherwise it serves host
/// metrics and says which probes are off and why.
#[derive(Debug, Parser)]
#[command(name = "sonde-agent", version, about, long_about)]
pub struct Flags {
    /// TOML config file; flags given on the command line override it.
    #[arg(long, value_name = "FILE", env = "SONDE_AGENT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to serve /metrics and /healthz on [default: 0.0.0.0:9101].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log format [default: text].
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,

    /// Probes to load, comma separated: runqueue,oom,tcp,blockio,http (http: spans of
    /// containers' HTTP/1.x exchanges, needs spans on); or "all" or "none" [default: all].
    #[arg(long, value_name = "LIST")]
    pub probes: Option<String>,

    /// How often the kernel maps are read, e.g. 5s or 500ms [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub probe_interval: Option<Duration>,

    /// Cgroups tracked per kernel map; events for more are counted as lost [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_cgroups: Option<u32>,

    /// The cgroup v2 hierarchy [default: found in /proc/self/mountinfo].
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,

    /// How long the series of a removed cgroup stay before they are dropped [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub cgroup_grace: Option<Duration>,

    /// This node's name; with it the agent watches this node's pods for metadata.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// kubeconfig for the pod watch [default: in-cluster service account, or $KUBECONFIG].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Pod label keys copied onto per-container series, comma separated [default: none].
    #[arg(long, value_name = "KEYS")]
    pub pod_labels: Option<String>,

    /// procfs mount point, as node_exporter's flag [default: /proc].
    #[arg(long = "path.procfs", value_name = "DIR")]
    pub procfs: Option<PathBuf>,

    /// sysfs mount point, as node_exporter's flag [default: /sys].
    #[arg(long = "path.sysfs", value_name = "DIR")]
    pub sysfs: Option<PathBuf>,

    /// Root filesystem mount point, as node_exporter's flag [default: /].
    #[arg(long = "path.rootfs", value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Collector to push metrics, logs and spans to over OTLP/gRPC, e.g. https://collector:4317;
    /// http:// (plaintext) needs --collector-insecure [default: none, no push].
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,

    /// Allow a plaintext http:// --collector: no encryption, no check of who answers.
    #[arg(long)]
    pub collector_insecure: bool,

    /// CA certificates (PEM) the collector's certificate must chain to [default: the system's CA bundle].
    #[arg(long, value_name = "FILE")]
    pub collector_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) shown to the collector for mutual TLS; with --collector-key-file [default: none].
    #[arg(long, value_name = "FILE")]
    pub collector_cert_file: Option<PathBuf>,

    /// The private key (PEM) of --collector-cert-file.
    #[arg(long, value_name = "FILE")]
    pub collector_key_file: Option<PathBuf>,

    /// A file holding the token sent with every push as `authorization: Bearer <token>` [default: none].
    #[arg(long, value_name = "FILE")]
    pub collector_token_file: Option<PathBuf>,

    /// How often metrics are snapshotted and pushed to the collector, e.g. 15s [default: 15s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub export_interval: Option<Duration>,

    /// Directory of the on-disk queue of batches not yet sent [default: /var/lib/sonde-agent/buffer].
    #[arg(long, value_name = "DIR")]
    pub buffer_dir: Option<PathBuf>,

    /// Bound of the on-disk queue, e.g. 256MiB; past it the oldest batches are dropped and counted [default: 256MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub buffer_max_bytes: Option<u64>,

    /// Tail container logs and ship them to --collector: on or off [default: on when --collector is set].
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub logs: Option<String>,

    /// Kubelet's pod log directory, <ns>_<pod>_<uid>/<container>/*.log below it [default: /var/log/pods].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Checkpoint of how far each log file was shipped (JSON) [default: /var/lib/sonde-agent/log-positions.json].
    #[arg(long, value_name = "FILE")]
    pub log_positions: Option<PathBuf>,

    /// Redaction rules applied to every log line before shipping (TOML [[rule]] name, pattern, replacement) [default: none].
    #[arg(long, value_name = "FILE")]
    pub redact: Option<PathBuf>,

    /// Longest a read log line waits before its batch is queued for sending, e.g. 1s [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub log_flush_interval: Option<Duration>,

    /// Also read stdout/stderr of containers that have no log file, by an eBPF tap of write(2) to fd 1 and 2: on or off [default: off].
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub log_tap: Option<String>,

    #[command(flatten)]
    pub problem: problems::ProblemFlags,

    #[command(flatten)]
    pub span: spans::SpanFlags,

    /// Check the configuration, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 5s or 500ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<SocketAddr>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    host: FileHost,
    #[serde(default)]
    probes: FileProbes,
    #[serde(default)]
    kubernetes: FileKubernetes,
    #[serde(default)]
    export: FileExport,
    #[serde(default)]
    logs: FileLogs,
    #[serde(default)]
    problems: problems::FileProblems,
    #[serde(default)]
    spans: spans::FileSpans,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogs {
    enabled: Option<OnOff>,
    log_dir: Option<PathBuf>,
    positions: Option<PathBuf>,
    redact: Option<PathBuf>,
    flush_interval: Option<String>,
    tap: Option<bool>,
}

/// `enabled = "on"` or `enabled = true`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OnOff {
    Bool(bool),
    Text(String),
}

/// Sizes as Prometheus writes them (the collector's flags take the same): a number
/// with an optional unit, decimal (`KB`, `MB`, `GB`, `TB`) or binary (`KiB`, `MiB`,
/// `GiB`, `TiB`); `B` or none for bytes. Zero is refused: nothing could be buffered.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    match sonde_cli_config::parse_bytes(s, "256MiB")? {
        0 => Err("must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// The collector's URL, `https://host:port` or `http://host:port`; true for https.
fn check_collector_url(s: &str) -> Result<bool, String> {
    let (tls, rest) = match (s.strip_prefix("https://"), s.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err("write the URL with its scheme, e.g. https://collector:4317".into());
        }
    };
    if rest.trim_end_matches('/').is_empty() {
        return Err("no host".into());
    }
    tonic::transport::Endpoint::from_shared(s.to_string()).map_err(|e| e.to_string())?;
    Ok(tls)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExport {
    collector: Option<String>,
    insecure: Option<bool>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    interval: Option<String>,
    buffer_dir: Option<PathBuf>,
    buffer_max_bytes: Option<FileSize>,
}

/// `buffer_max_bytes = "256MiB"` or `buffer_max_bytes = 268435456`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKubernetes {
    node_name: Option<String>,
    kubeconfig: Option<PathBuf>,
    pod_labels: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHost {
    procfs: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    rootfs: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProbes {
    enabled: Option<Vec<String>>,
    interval: Option<String>,
    max_cgroups: Option<u32>,
    cgroup_root: Option<PathBuf>,
    cgroup_grace: Option<String>,
}

/// The resolved configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub log_level: String,
    pub log_format: LogFormat,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub probes: Vec<Probe>,
    pub probe_interval: Duration,
    pub max_cgroups: u32,
    pub cgroup_root: Option<PathBuf>,
    pub cgroup_grace: Duration,
    /// Set: watch this node's pods. Unset: label from cgroup paths alone.
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub pod_labels: Vec<String>,
    /// Set: push metrics to a collector over OTLP/gRPC.
    pub export: Option<ExportConfig>,
    /// Set: tail container logs and ship them (needs `export`).
    pub logs: Option<LogsConfig>,
    /// Set: detect node problems and report them.
    pub problems: Option<ProblemsConfig>,
    /// Set: receive application spans and forward them.
    pub spans: Option<SpansConfig>,
}

/// The log tailer's settings (see `logs`).
#[derive(Debug, Clone)]
pub struct LogsConfig {
    pub log_dir: PathBuf,
    pub positions: PathBuf,
    /// The rules file and its compiled rules.
    pub redact: Option<(PathBuf, crate::logs::redact::Rules)>,
    pub flush_interval: Duration,
    /// The eBPF stdout/stderr tap for containers without a log file (`probes::stdio`).
    pub tap: bool,
}

/// Where and how the agent pushes its metrics (see `export::otlp`).
#[derive(Clone)]
pub struct ExportConfig {
    pub collector: CollectorConn,
    pub export_interval: Duration,
    pub buffer_dir: PathBuf,
    pub buffer_max_bytes: u64,
}

/// `collector: "<url>"` first, as `--check-config` has always printed it, then the
/// connection's files (never the token).
impl fmt::Debug for ExportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportConfig")
            .field("collector", &self.collector.url)
            .field("connection", &self.collector)
            .field("export_interval", &self.export_interval)
            .field("buffer_dir", &self.buffer_dir)
            .field("buffer_max_bytes", &self.buffer_max_bytes)
            .finish()
    }
}

impl Config {
    /// Resolves flags over the config file over defaults. The error is one line.
    pub fn resolve(flags: &Flags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => sonde_cli_config::load_toml::<File>(path)?,
            None => File::default(),
        };
        let where_file = |field: &str| match &flags.config {
            Some(p) => format!("{}: {field}", p.display()),
            None => field.to_string(),
        };
        let probes = match (&flags.probes, &file.probes.enabled) {
            (Some(list), _) => parse_probe_list(list).map_err(|e| format!("--probes: {e}"))?,
            (None, Some(list)) => list
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", where_file("probes.enabled")))?,
            (None, None) => Probe::ALL.to_vec(),
        };
        // A duration from its flag, else the file's field, else `default`.
        let duration = |flag: Option<Duration>,
                        field: &str,
                        text: &Option<String>,
                        default: Duration| match (flag, text) {
            (Some(d), _) => Ok(d),
            (None, Some(s)) => {
                parse_duration(s).map_err(|e| format!("{}: {s:?}: {e}", where_file(field)))
            }
            (None, None) => Ok(default),
        };
        let probe_interval = duration(
            flags.probe_interval,
            "probes.interval",
            &file.probes.interval,
            Duration::from_secs(5),
        )?;
        let max_cgroups = flags
            .max_cgroups
            .or(file.probes.max_cgroups)
            .unwrap_or(1024);
        if max_cgroups == 0 {
            return Err(if flags.max_cgroups.is_some() {
                "--max-cgroups: must be at least 1".into()
            } else {
                format!("{}: must be at least 1", where_file("probes.max_cgroups"))
            });
        }
        let cgroup_grace = duration(
            flags.cgroup_grace,
            "probes.cgroup_grace",
            &file.probes.cgroup_grace,
            Duration::from_secs(120),
        )?;
        let pod_labels = match (&flags.pod_labels, file.kubernetes.pod_labels) {
            (Some(list), _) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        let export_interval = duration(
            flags.export_interval,
            "export.interval",
            &file.export.interval,
            Duration::from_secs(15),
        )?;
        let export = resolve_export(flags, &file.export, &where_file, export_interval)?;
        let log_flush = duration(
            flags.log_flush_interval,
            "logs.flush_interval",
            &file.logs.flush_interval,
            Duration::from_secs(1),
        )?;
        let logs = resolve_logs(flags, &file.logs, &where_file, export.is_some(), log_flush)?;
        let node_name = flags
            .node_name
            .clone()
            .or(file.kubernetes.node_name)
            .filter(|n| !n.is_empty());
        let problems = problems::resolve(
            &flags.problem,
            &file.problems,
            &where_file,
            node_name.is_some(),
        )?;
        let spans = spans::resolve(&flags.span, &file.spans, &where_file, export.is_some())?;
        let log_format = match flags.log_format.as_deref() {
            Some("json") => LogFormat::Json,
            Some(_) => LogFormat::Text,
            None => file.log_format.unwrap_or(LogFormat::Text),
        };
        Ok(Config {
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "0.0.0.0:9101".parse().unwrap()),
            log_level: flags
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            log_format,
            procfs: flags
                .procfs
                .clone()
                .or(file.host.procfs)
                .unwrap_or_else(|| "/proc".into()),
            sysfs: flags
                .sysfs
                .clone()
                .or(file.host.sysfs)
                .unwrap_or_else(|| "/sys".into()),
            rootfs: flags
                .rootfs
                .clone()
                .or(file.host.rootfs)
                .unwrap_or_else(|| "/".into()),
            probes,
            probe_interval,
            max_cgroups,
            cgroup_root: flags.cgroup_root.clone().or(file.probes.cgroup_root),
            cgroup_grace,
            node_name,
            kubeconfig: flags.kubeconfig.clone().or(file.kubernetes.kubeconfig),
            pod_labels,
            export,
            logs,
            problems,
            spans,
        })
    }
}

/// The log settings, each from its flag, else the `[logs]` table, else its
/// default; `None` when logs are off (the default without a collector).
fn resolve_logs(
    flags: &Flags,
    file: &FileLogs,
    where_file: &dyn Fn(&str) -> String,
    have_collector: bool,
    flush_interval: Duration,
) -> Result<Option<LogsConfig>, String> {
    let enabled = match (&flags.logs, &file.enabled) {
        (Some(v), _) => Some((v == "on", "--logs".to_string())),
        (None, Some(OnOff::Bool(b))) => Some((*b, where_file("logs.enabled"))),
        (None, Some(OnOff::Text(t))) => match t.as_str() {
            "on" => Some((true, where_file("logs.enabled"))),
            "off" => Some((false, where_file("logs.enabled"))),
            other => {
                return Err(format!(
                    "{}: {other:?}: write \"on\" or \"off\"",
                    where_file("logs.enabled")
                ));
            }
        },
        (None, None) => None,
    };
    match enabled {
        Some((false, _)) => return Ok(None),
        Some((true, what)) if !have_collector => {
            return Err(format!(
                "{what}: logs need a collector to ship to (--collector)"
            ));
        }
        None if !have_collector => return Ok(None),
        _ => {}
    }
    let redact_path = flags
        .redact
        .clone()
        .map(|p| (p, true))
        .or_else(|| file.redact.clone().map(|p| (p, false)));
    let redact = match redact_path {
        Some((path, from_flag)) => {
            let rules = crate::logs::redact::Rules::load(&path).map_err(|e| {
                if from_flag {
                    format!("--redact: {e}")
                } else {
                    format!("{}: {e}", where_file("logs.redact"))
                }
            })?;
            Some((path, rules))
        }
        None => None,
    };
    Ok(Some(LogsConfig {
        log_dir: flags
            .log_dir
            .clone()
            .or_else(|| file.log_dir.clone())
            .unwrap_or_else(|| "/var/log/pods".into()),
        positions: flags
            .log_positions
            .clone()
            .or_else(|| file.positions.clone())
            .unwrap_or_else(|| "/var/lib/sonde-agent/log-positions.json".into()),
        redact,
        flush_interval,
        tap: flags
            .log_tap
            .as_deref()
            .map(|v| v == "on")
            .or(file.tap)
            .unwrap_or(false),
    }))
}

/// The export settings (interval already resolved), each from its flag, else the
/// `[export]` table, else its default;
/// `None` without a collector.
fn resolve_export(
    flags: &Flags,
    file: &FileExport,
    where_file: &dyn Fn(&str) -> String,
    export_interval: Duration,
) -> Result<Option<ExportConfig>, String> {
    let buffer_max_bytes = match (flags.buffer_max_bytes, &file.buffer_max_bytes) {
        (Some(n), _) => n,
        (None, Some(FileSize::Bytes(0))) => {
            return Err(format!(
                "{}: must be at least 1 byte",
                where_file("export.buffer_max_bytes")
            ));
        }
        (None, Some(FileSize::Bytes(n))) => *n,
        (None, Some(FileSize::Text(s))) => parse_bytes(s)
            .map_err(|e| format!("{}: {s:?}: {e}", where_file("export.buffer_max_bytes")))?,
        (None, None) => 256 << 20,
    };
    let buffer_dir = flags
        .buffer_dir
        .clone()
        .or_else(|| file.buffer_dir.clone())
        .unwrap_or_else(|| "/var/lib/sonde-agent/buffer".into());
    let Some(collector) = resolve_collector(flags, file, where_file)? else {
        return Ok(None);
    };
    Ok(Some(ExportConfig {
        collector,
        export_interval,
        buffer_dir,
        buffer_max_bytes,
    }))
}

/// How the agent reaches the collector: the URL, TLS settings for https://, and the
/// bearer token. `sender::client` builds every queue's connection from it.
///
/// The plaintext rule: https:// is TLS (the collector's certificate checked against
/// `--collector-ca-file`, else the system's CA bundle); http:// is accepted only with
/// `--collector-insecure` (or `insecure = true`), so plaintext is always asked for by name.
#[derive(Clone)]
pub struct CollectorConn {
    pub url: String,
    /// Set for https://.
    pub tls: Option<CollectorTls>,
    /// The `authorization` value sent with every request: `Bearer <token>`.
    pub authorization: Option<String>,
}

/// PEM contents read at start (a bad file stops the agent there, named).
#[derive(Clone)]
pub struct CollectorTls {
    pub ca: Option<(PathBuf, Vec<u8>)>,
    /// Certificate file and PEM, key file and PEM.
    pub identity: Option<(PathBuf, Vec<u8>, PathBuf, Vec<u8>)>,
}

impl fmt::Display for CollectorConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Shows files, not keys or the token (`--check-config` prints the configuration).
impl fmt::Debug for CollectorConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = self.tls.as_ref();
        f.debug_struct("CollectorConn")
            .field("url", &self.url)
            .field("tls", &tls.is_some())
            .field("ca_file", &tls.and_then(|t| t.ca.as_ref().map(|c| &c.0)))
            .field(
                "cert_file",
                &tls.and_then(|t| t.identity.as_ref().map(|i| &i.0)),
            )
            .field(
                "key_file",
                &tls.and_then(|t| t.identity.as_ref().map(|i| &i.2)),
            )
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl CollectorConn {
    /// The tonic endpoint (TLS configured for https://); connects on first use.
    pub fn endpoint(&self) -> Result<tonic::transport::Endpoint, String> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let endpoint = Endpoint::from_shared(self.url.clone()).map_err(|e| e.to_string())?;
        let Some(tls) = &self.tls else {
            return Ok(endpoint);
        };
        let mut c = ClientTlsConfig::new().timeout(std::time::Duration::from_secs(10));
        c = match &tls.ca {
            Some((_, pem)) => c.ca_certificate(Certificate::from_pem(pem)),
            None => c.with_native_roots(),
        };
        if let Some((_, cert, _, key)) = &tls.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        endpoint.tls_config(c).map_err(|e| {
            // tonic's own text is "transport error"; the cause is in the chain.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        })
    }
}

/// The `[export]` connection settings; errors name the flag or the file's field.
fn resolve_collector(
    flags: &Flags,
    file: &FileExport,
    where_file: &dyn Fn(&str) -> String,
) -> Result<Option<CollectorConn>, String> {
    let (url, url_name) = match (&flags.collector, &file.collector) {
        (Some(url), _) => (url.clone(), "--collector".to_string()),
        (None, Some(url)) => (url.clone(), where_file("export.collector")),
        (None, None) => return Ok(None),
    };
    let https = check_collector_url(&url).map_err(|e| format!("{url_name} {url:?}: {e}"))?;
    // A path from its flag, else from the file, with the name to use in errors.
    let path = |flag: &Option<PathBuf>, name: &str, field: &Option<PathBuf>, key: &str| match (
        flag, field,
    ) {
        (Some(p), _) => Some((p.clone(), name.to_string())),
        (None, Some(p)) => Some((p.clone(), where_file(key))),
        (None, None) => None,
    };
    let read = |(p, name): &(PathBuf, String), must_have: &str, what: &str| {
        let bytes = std::fs::read(p).map_err(|e| format!("{name} {}: {e}", p.display()))?;
        if !String::from_utf8_lossy(&bytes).contains(must_have) {
            return Err(format!("{name} {}: no {what} in the file", p.display()));
        }
        Ok::<_, String>(bytes)
    };
    let ca = path(
        &flags.collector_ca_file,
        "--collector-ca-file",
        &file.ca_file,
        "export.ca_file",
    );
    let cert = path(
        &flags.collector_cert_file,
        "--collector-cert-file",
        &file.cert_file,
        "export.cert_file",
    );
    let key = path(
        &flags.collector_key_file,
        "--collector-key-file",
        &file.key_file,
        "export.key_file",
    );
    let token = path(
        &flags.collector_token_file,
        "--collector-token-file",
        &file.token_file,
        "export.token_file",
    );
    let tls = if https {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((
                c.0.clone(),
                read(&c, "-----BEGIN CERTIFICATE-----", "PEM CERTIFICATE")?,
                k.0.clone(),
                read(&k, "PRIVATE KEY-----", "PEM PRIVATE KEY")?,
            )),
            (Some((_, name)), None) => {
                return Err(format!(
                    "{name} needs --collector-key-file (or export.key_file)"
                ));
            }
            (None, Some((_, name))) => {
                return Err(format!(
                    "{name} needs --collector-cert-file (or export.cert_file)"
                ));
            }
            (None, None) => None,
        };
        let ca = match ca {
            Some(c) => Some((
                c.0.clone(),
                read(&c, "-----BEGIN CERTIFICATE-----", "PEM CERTIFICATE")?,
            )),
            None => None,
        };
        Some(CollectorTls { ca, identity })
    } else {
        if !(flags.collector_insecure || file.insecure == Some(true)) {
            return Err(format!(
                "{url_name} {url:?}: plaintext http:// needs --collector-insecure (or insecure = true in [export]); use https:// for TLS"
            ));
        }
        if let Some((_, name)) = ca.or(cert).or(key) {
            return Err(format!(
                "{name}: TLS settings need an https:// collector, not {url:?}"
            ));
        }
        None
    };
    let authorization = match token {
        Some((p, name)) => {
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("{name} {}: {e}", p.display()))?;
            let t = text.lines().next().unwrap_or("").trim();
            if t.is_empty() {
                return Err(format!("{name} {}: the file holds no token", p.display()));
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{name} {}: a token is printable ASCII without spaces",
                    p.display()
                ));
            }
            Some(format!("Bearer {t}"))
        }
        None => None,
    };
    let conn = CollectorConn {
        url: url.clone(),
        tls,
        authorization,
    };
    conn.endpoint()
        .map_err(|e| format!("{url_name} {url:?}: TLS settings: {e}"))?;
    Ok(Some(conn))
}

fn parse_probe_list(list: &str) -> Result<Vec<Probe>, String> {
    match list.trim() {
        "all" => Ok(Probe::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => list.split(',').map(|s| s.trim().parse()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("sonde-agent").chain(args.iter().copied())).unwrap()
    }

    fn with_file(body: &str) -> (tempfile_path::TempPath, Flags) {
        let p = tempfile_path::TempPath::new(body);
        let f = flags(&["--config", p.0.to_str().unwrap()]);
        (p, f)
    }

    /// A file removed on drop (std only; no tempfile crate needed for this).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(body: &str) -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir()
                    .join(format!("sonde-config-test-{}-{n}.toml", std::process::id()));
                std::fs::write(&p, body).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn http_probe_is_in_the_list_and_can_be_turned_off() {
        let on = Config::resolve(&flags(&["--probes", "http"])).unwrap();
        assert_eq!(on.probes, vec![Probe::Http]);
        let off = Config::resolve(&flags(&["--probes", "runqueue,oom,tcp,blockio"])).unwrap();
        assert!(!off.probes.contains(&Probe::Http));
        assert!(Probe::ALL.contains(&Probe::Http));
        assert_eq!("http".parse::<Probe>(), Ok(Probe::Http));
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::resolve(&flags(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9101");
        assert_eq!(c.probes, Probe::ALL.to_vec());
        assert_eq!(c.probe_interval, Duration::from_secs(5));
    }

    #[test]
    fn flags_override_file() {
        let (_p, mut f) = with_file(
            "listen = \"127.0.0.1:1\"\n[probes]\nenabled = [\"oom\"]\ninterval = \"2s\"\n",
        );
        let c = Config::resolve(&f).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert_eq!(c.probes, vec![Probe::Oom]);
        assert_eq!(c.probe_interval, Duration::from_secs(2));
        f.probes = Some("tcp,blockio".into());
        assert_eq!(
            Config::resolve(&f).unwrap().probes,
            vec![Probe::Tcp, Probe::Blockio]
        );
    }

    #[test]
    fn file_errors_name_file_line_and_field() {
        let (p, f) = with_file("listen = \"127.0.0.1:1\"\nlistn = 3\n");
        let e = Config::resolve(&f).unwrap_err();
        assert!(e.starts_with(&format!("{}:2:", p.0.display())), "{e}");
        assert!(e.contains("listn"), "{e}");
        assert!(!e.contains('\n'), "{e}");

        let (_p, f) = with_file("[probes]\nenabled = [\"nope\"]\n");
        let e = Config::resolve(&f).unwrap_err();
        assert!(
            e.contains("probes.enabled") && e.contains("\"nope\""),
            "{e}"
        );

        let (_p, f) = with_file("[probes]\ninterval = \"soon\"\n");
        assert!(Config::resolve(&f).unwrap_err().contains("probes.interval"));
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let e = Config::resolve(&flags(&["--probes", "runqueue,bogus"])).unwrap_err();
        assert!(e.starts_with("--probes:") && e.contains("bogus"), "{e}");
        assert!(Flags::try_parse_from(["sonde-agent", "--probe-interval", "0s"]).is_err());
        assert!(Flags::try_parse_from(["sonde-agent", "--listen", "nowhere"]).is_err());
        assert_eq!(
            Config::resolve(&flags(&["--probes", "none"]))
                .unwrap()
                .probes,
            vec![]
        );
    }

    #[test]
    fn export_settings_from_flags_file_and_defaults() {
        assert!(Config::resolve(&flags(&[])).unwrap().export.is_none());
        let c = Config::resolve(&flags(&[
            "--collector",
            "http://127.0.0.1:4317",
            "--collector-insecure",
        ]))
        .unwrap();
        let e = c.export.unwrap();
        assert_eq!(e.export_interval, Duration::from_secs(15));
        assert_eq!(e.buffer_dir, PathBuf::from("/var/lib/sonde-agent/buffer"));
        assert_eq!(e.buffer_max_bytes, 256 << 20);

        let (_p, mut f) = with_file(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\ninterval = \"2s\"\nbuffer_dir = \"/b\"\nbuffer_max_bytes = \"1KiB\"\n",
        );
        let e = Config::resolve(&f).unwrap().export.unwrap();
        assert_eq!(
            (
                e.collector.url.as_str(),
                e.export_interval,
                e.buffer_max_bytes
            ),
            ("http://c:4317", Duration::from_secs(2), 1024)
        );
        f.buffer_max_bytes = Some(5);
        f.export_interval = Some(Duration::from_millis(300));
        let e = Config::resolve(&f).unwrap().export.unwrap();
        assert_eq!(
            (e.export_interval, e.buffer_max_bytes),
            (Duration::from_millis(300), 5)
        );

        let (_p, f) = with_file(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\nbuffer_max_bytes = 4096\n",
        );
        assert_eq!(
            Config::resolve(&f)
                .unwrap()
                .export
                .unwrap()
                .buffer_max_bytes,
            4096
        );
    }

    #[test]
    fn export_errors_name_the_flag_or_field() {
        for url in ["127.0.0.1:4317", "ftp://c:4317", "http://", "https://"] {
            let e = Config::resolve(&flags(&["--collector", url])).unwrap_err();
            assert!(e.starts_with("--collector"), "{e}");
        }
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1.5KB"), Ok(1500));
        for bad in ["", "0", "12XB", "MiB", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(Flags::try_parse_from(["sonde-agent", "--buffer-max-bytes", "lots"]).is_err());
        let (_p, f) = with_file(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\nbuffer_max_bytes = \"9 parsecs\"\n",
        );
        assert!(
            Config::resolve(&f)
                .unwrap_err()
                .contains("export.buffer_max_bytes")
        );
        let (_p, f) = with_file("[export]\ncollector = \"c:4317\"\n");
        assert!(
            Config::resolve(&f)
                .unwrap_err()
                .contains("export.collector")
        );
    }

    #[test]
    fn logs_settings() {
        let c = Config::resolve(&flags(&[])).unwrap();
        assert!(c.logs.is_none(), "off without a collector");
        let c = Config::resolve(&flags(&[
            "--collector",
            "http://c:4317",
            "--collector-insecure",
        ]))
        .unwrap();
        let l = c.logs.unwrap();
        assert_eq!(l.log_dir, PathBuf::from("/var/log/pods"));
        assert_eq!(
            l.positions,
            PathBuf::from("/var/lib/sonde-agent/log-positions.json")
        );
        assert_eq!(l.flush_interval, Duration::from_secs(1));
        assert!(l.redact.is_none());
        assert!(
            Config::resolve(&flags(&[
                "--collector",
                "http://c:4317",
                "--collector-insecure",
                "--logs",
                "off"
            ]))
            .unwrap()
            .logs
            .is_none()
        );
        let e = Config::resolve(&flags(&["--logs", "on"])).unwrap_err();
        assert!(e.starts_with("--logs:"), "{e}");
        assert!(Flags::try_parse_from(["sonde-agent", "--logs", "maybe"]).is_err());
        assert!(Flags::try_parse_from(["sonde-agent", "--log-flush-interval", "0s"]).is_err());

        let rules = tempfile_path::TempPath::new(
            "[[rule]]\nname = \"x\"\npattern = 'a+'\nreplacement = \"b\"\n",
        );
        let (_p, mut f) = with_file(&format!(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\n[logs]\nlog_dir = \"/l\"\npositions = \"/p.json\"\nflush_interval = \"250ms\"\nredact = \"{}\"\n",
            rules.0.display()
        ));
        let l = Config::resolve(&f).unwrap().logs.unwrap();
        assert_eq!(
            (l.log_dir.to_str(), l.positions.to_str()),
            (Some("/l"), Some("/p.json"))
        );
        assert_eq!(l.flush_interval, Duration::from_millis(250));
        assert_eq!(l.redact.unwrap().1.rules.len(), 1);
        f.log_dir = Some("/other".into());
        f.log_flush_interval = Some(Duration::from_secs(3));
        let l = Config::resolve(&f).unwrap().logs.unwrap();
        assert_eq!(
            (l.log_dir.to_str(), l.flush_interval),
            (Some("/other"), Duration::from_secs(3))
        );

        let bad = tempfile_path::TempPath::new("[[rule]]\nname = \"broken\"\npattern = '(x'\n");
        let e = Config::resolve(&flags(&[
            "--collector",
            "http://c:4317",
            "--collector-insecure",
            "--redact",
            bad.0.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(
            e.starts_with("--redact: ")
                && e.contains(bad.0.to_str().unwrap())
                && e.contains("\"broken\""),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let (_p, f) = with_file(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\n[logs]\nenabled = \"yes\"\n",
        );
        assert!(Config::resolve(&f).unwrap_err().contains("logs.enabled"));
        let (_p, f) = with_file("[logs]\nenabled = false\n");
        assert!(Config::resolve(&f).unwrap().logs.is_none());
        let (_p, f) = with_file(
            "[export]\ncollector = \"http://c:4317\"\ninsecure = true\n[logs]\nflush_interval = \"never\"\n",
        );
        assert!(
            Config::resolve(&f)
                .unwrap_err()
                .contains("logs.flush_interval")
        );
    }

    #[test]
    fn plaintext_only_when_asked_for_by_name() {
        let e = Config::resolve(&flags(&["--collector", "http://c:4317"])).unwrap_err();
        assert!(
            e.starts_with("--collector") && e.contains("--collector-insecure") && !e.contains('\n'),
            "{e}"
        );
        let (_p, f) = with_file("[export]\ncollector = \"http://c:4317\"\n");
        let e = Config::resolve(&f).unwrap_err();
        assert!(
            e.contains("export.collector") && e.contains("insecure"),
            "{e}"
        );
        let c = Config::resolve(&flags(&["--collector", "https://c:4317"])).unwrap();
        let conn = c.export.unwrap().collector;
        assert!(conn.tls.is_some() && conn.authorization.is_none());
        let c = Config::resolve(&flags(&[
            "--collector",
            "http://c:4317",
            "--collector-insecure",
        ]))
        .unwrap();
        assert!(c.export.as_ref().unwrap().collector.tls.is_none());
        // --check-config prints the URL as it always has.
        assert!(format!("{c:#?}").contains("collector: \"http://c:4317\""));
    }

    #[test]
    fn tls_and_token_files() {
        let token = tempfile_path::TempPath::new("s3cret\n");
        let tok = token.0.to_str().unwrap();
        let c = Config::resolve(&flags(&[
            "--collector",
            "https://c:4317",
            "--collector-token-file",
            tok,
        ]))
        .unwrap();
        let conn = c.export.unwrap().collector;
        assert_eq!(conn.authorization.as_deref(), Some("Bearer s3cret"));
        assert!(!format!("{conn:?}").contains("s3cret"), "{conn:?}");
        // A token works over an explicit plaintext connection too.
        assert!(
            Config::resolve(&flags(&[
                "--collector",
                "http://c:4317",
                "--collector-insecure",
                "--collector-token-file",
                tok,
            ]))
            .is_ok()
        );
        let not_pem = tempfile_path::TempPath::new("hello\n");
        let np = not_pem.0.to_str().unwrap();
        for (args, flag) in [
            (vec!["--collector-ca-file", np], "--collector-ca-file"),
            (
                vec!["--collector-ca-file", "/nonexistent/ca.pem"],
                "--collector-ca-file",
            ),
            (vec!["--collector-cert-file", np], "--collector-cert-file"),
            (vec!["--collector-key-file", np], "--collector-key-file"),
            (
                vec!["--collector-token-file", "/nonexistent/t"],
                "--collector-token-file",
            ),
        ] {
            let mut a = vec!["--collector", "https://c:4317"];
            a.extend(args);
            let e = Config::resolve(&flags(&a)).unwrap_err();
            assert!(e.starts_with(flag), "{a:?}: {e}");
        }
        let e = Config::resolve(&flags(&[
            "--collector",
            "http://c:4317",
            "--collector-insecure",
            "--collector-ca-file",
            np,
        ]))
        .unwrap_err();
        assert!(
            e.starts_with("--collector-ca-file") && e.contains("https://"),
            "{e}"
        );
        let empty = tempfile_path::TempPath::new("\n");
        let e = Config::resolve(&flags(&[
            "--collector",
            "https://c:4317",
            "--collector-token-file",
            empty.0.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(e.contains("no token"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let f = flags(&["--config", "/nonexistent/agent.toml"]);
        assert!(
            Config::resolve(&f)
                .unwrap_err()
                .starts_with("/nonexistent/agent.toml: ")
        );
    }
}
