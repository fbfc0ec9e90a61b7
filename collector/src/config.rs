//! The collector's configuration: built-in defaults, then an optional TOML file
//! (`--config`), then flags. The file uses the long flags' names as keys:
//! ```toml
//! data-dir = "/var/lib/sonde"
//! http-listen = "0.0.0.0:9090"
//! retention-time = "30d"
//! retention-size = "10GiB"     # or a plain number of bytes
//! max-series = 2000000
//! logs-retention-time = "7d"  # default: retention-time
//! logs-max-lines = 5000
//! tls-cert-file = "/etc/sonde/tls/tls.crt"     # TLS on every listener, with tls-key-file
//! tls-key-file = "/etc/sonde/tls/tls.key"
//! tls-client-ca-file = "/etc/sonde/tls/ca.crt" # mutual TLS on the ingest ports
//! auth-token-file = "/etc/sonde/token/ingest"  # writes need `Authorization: Bearer <token>`
//! api-token-file = "/etc/sonde/token/api"      # so do queries (not /-/healthy, /-/ready)
//! ```
//! Any mistake is one error line naming the flag, or the file and key; the
//! collector then exits non-zero without starting anything.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// sonde-collector: Sonde's central collector. Accepts OTLP metrics and logs (gRPC
/// and HTTP), Prometheus remote_write and Loki push, stores them durably, and
/// answers PromQL over the Prometheus HTTP API and LogQL over Loki's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "sonde-collector", version, about, long_about)]
pub struct Flags {
    /// TOML config file with the long flags' names as keys; flags given on the command line override it.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Where the stores keep their data (logs in <DIR>/logs), relative to the working directory unless absolute [default: sonde-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Prometheus HTTP API, remote_write (POST /api/v1/write), Loki HTTP API and push
    /// (/loki/api/v1/...), OTLP/HTTP (/v1/metrics, /v1/logs) and /metrics [default: 0.0.0.0:9090].
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,

    /// OTLP/HTTP receiver (POST /v1/metrics, /v1/logs) [default: 0.0.0.0:4318].
    #[arg(long, value_name = "ADDR")]
    pub otlp_http_listen: Option<String>,

    /// OTLP/gRPC receiver (MetricsService, LogsService) [default: 0.0.0.0:4317].
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,

    /// How long samples are kept, e.g. 15d or 12h [default: 15d].
    #[arg(long, value_name = "DURATION")]
    pub retention_time: Option<String>,

    /// Most bytes the store may use, e.g. 10GiB or 500MB; oldest data goes first [default: no limit].
    #[arg(long, value_name = "BYTES")]
    pub retention_size: Option<String>,

    /// Active series allowed; writes that would create more are refused [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_series: Option<String>,

    /// How far behind a series' newest sample a sample may still arrive [default: 10m].
    #[arg(long, value_name = "DURATION")]
    pub ooo_window: Option<String>,

    /// How long log entries are kept, e.g. 7d [default: the value of --retention-time].
    #[arg(long, value_name = "DURATION")]
    pub logs_retention_time: Option<String>,

    /// Most bytes the log store (<data-dir>/logs) may use; oldest chunks go first [default: no limit].
    #[arg(long, value_name = "BYTES")]
    pub logs_retention_size: Option<String>,

    /// Active log streams allowed; pushes that would create more are refused (429) [default: 100000].
    #[arg(long, value_name = "N")]
    pub logs_max_streams: Option<String>,

    /// Most lines a log query may return (the largest accepted `limit`), as Loki's
    /// max_entries_limit_per_query [default: 5000].
    #[arg(long, value_name = "N")]
    pub logs_max_lines: Option<String>,

    /// How long spans are kept, e.g. 7d [default: the value of --retention-time].
    #[arg(long, value_name = "DURATION")]
    pub traces_retention_time: Option<String>,

    /// Most spans one trace may hold; a write that would pass it is refused whole [default: 10000].
    #[arg(long, value_name = "N")]
    pub traces_max_spans_per_trace: Option<String>,

    /// Largest write body (metrics and logs), checked compressed and decompressed, e.g. 32MiB [default: 32MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<String>,

    /// Longest a PromQL or LogQL query may run, as Prometheus's --query.timeout [default: 2m].
    #[arg(long, value_name = "DURATION")]
    pub query_timeout: Option<String>,

    /// Most samples a query may hold in memory, as Prometheus's --query.max-samples [default: 50000000].
    #[arg(long, value_name = "N")]
    pub query_max_samples: Option<String>,

    /// How far back an instant selector looks for a sample, as Prometheus's --query.lookback-delta [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub lookback_delta: Option<String>,

    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Serve the admin endpoints (POST /api/v1/admin/tsdb/compact), as Prometheus's
    /// --web.enable-admin-api; without it they answer 503 "admin APIs disabled".
    #[arg(long)]
    pub enable_admin_api: bool,

    /// Prometheus rule files (alerting and recording rules), comma separated; reloaded on
    /// SIGHUP and POST /-/reload [default: none].
    #[arg(long, value_name = "FILES")]
    pub rule_files: Option<String>,

    /// Log rule files: Prometheus's rule file format with LogQL metric queries as `expr`
    /// (as Loki's ruler reads them), comma separated; reloaded with the others [default: none].
    #[arg(long, value_name = "FILES")]
    pub log_rule_files: Option<String>,

    /// How often a rule group without its own `interval` is evaluated, as Prometheus's
    /// global evaluation_interval [default: 1m].
    #[arg(long, value_name = "DURATION")]
    pub evaluation_interval: Option<String>,

    /// Alertmanager base URLs to send alerts to (API v2), comma separated, e.g.
    /// http://alertmanager:9093 [default: none: alerts are evaluated and served, not sent].
    #[arg(long, value_name = "URLS")]
    pub alertmanager_url: Option<String>,

    /// Built-in notification for clusters without Alertmanager: a file with the `route`,
    /// `receivers` (webhook_configs) and `inhibit_rules` sections of an alertmanager.yml.
    /// Silences are served at /api/v2/silences and kept in <data-dir>/silences.json
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub alert_routes: Option<PathBuf>,

    /// How often a still-firing alert is sent again, as Prometheus's
    /// --rules.alert.resend-delay [default: 1m].
    #[arg(long, value_name = "DURATION")]
    pub alert_resend_delay: Option<String>,

    /// The URL users reach the collector at: alerts' generatorURL and templates'
    /// $externalURL [default: http://<hostname>:<http port>].
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,

    /// Server certificate (PEM, chain first) for TLS on every listener: gRPC, OTLP/HTTP and
    /// the HTTP API; with --tls-key-file [default: none: plaintext, with a warning at start].
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM): the ingest listeners (--grpc-listen, --otlp-http-listen) require a
    /// client certificate signed by one of them (mutual TLS) [default: none].
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// A file holding the token that writes must carry (gRPC metadata `authorization: Bearer
    /// <token>`, HTTP `Authorization: Bearer <token>`) on every ingest endpoint [default: none].
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// A file holding the token the query, admin and /metrics endpoints of --http-listen
    /// require as `Authorization: Bearer <token>`; /-/healthy and /-/ready stay open [default: none].
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Check the configuration (flags, --config, every rule file and --alert-routes), print
    /// it, and exit: 0 when the collector would start with it, else 2 and the one-line error.
    #[arg(long)]
    pub check_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs PromQL test scripts (Prometheus's promqltest format) against an in-memory store;
    /// prints each failure, then "N passed, N failed"; exits 1 on any failure.
    PromqlTest {
        /// Script files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs Prometheus rule unit-test files (`promtool test rules` format) on Sonde's rule
    /// evaluation; prints each failure, then "N passed, N failed"; exits 1 on any failure.
    TestRules {
        /// Test files; their `rule_files` are relative to each test file.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

/// The config file: the long flags' names as keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    data_dir: Option<PathBuf>,
    http_listen: Option<String>,
    otlp_http_listen: Option<String>,
    grpc_listen: Option<String>,
    retention_time: Option<String>,
    retention_size: Option<Scalar>,
    max_series: Option<Scalar>,
    ooo_window: Option<String>,
    max_request_bytes: Option<Scalar>,
    logs_retention_time: Option<String>,
    logs_retention_size: Option<Scalar>,
    logs_max_streams: Option<Scalar>,
    logs_max_lines: Option<Scalar>,
    traces_retention_time: Option<String>,
    traces_max_spans_per_trace: Option<Scalar>,
    query_timeout: Option<String>,
    query_max_samples: Option<Scalar>,
    lookback_delta: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    enable_admin_api: Option<bool>,
    rule_files: Option<Vec<PathBuf>>,
    log_rule_files: Option<Vec<PathBuf>>,
    evaluation_interval: Option<String>,
    alertmanager_url: Option<Vec<String>>,
    alert_routes: Option<PathBuf>,
    alert_resend_delay: Option<String>,
    external_url: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_client_ca_file: Option<PathBuf>,
    auth_token_file: Option<PathBuf>,
    api_token_file: Option<PathBuf>,
}

/// A file value that may be written as a number or a string (`10GiB`, `1000`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// The resolved configuration the collector runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub otlp_http_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub retention_time: Duration,
    pub retention_size: Option<u64>,
    pub max_series: usize,
    pub ooo_window: Duration,
    pub max_request_bytes: usize,
    pub logs_retention_time: Duration,
    pub logs_retention_size: Option<u64>,
    pub logs_max_streams: usize,
    pub logs_max_lines: usize,
    pub traces_retention_time: Duration,
    pub traces_max_spans_per_trace: usize,
    pub query_timeout: Duration,
    pub query_max_samples: usize,
    pub lookback_delta: Duration,
    pub log_level: String,
    pub log_format: LogFormat,
    pub enable_admin_api: bool,
    pub rule_files: Vec<PathBuf>,
    pub log_rule_files: Vec<PathBuf>,
    pub evaluation_interval: Duration,
    pub alertmanager_urls: Vec<String>,
    pub alert_routes: Option<PathBuf>,
    pub alert_resend_delay: Duration,
    pub external_url: String,
    /// Set: every listener serves TLS. Unset: plaintext (the collector warns at start).
    pub tls: Option<TlsFiles>,
    /// The token ingest requires (`--auth-token-file`).
    pub auth_token: Option<Token>,
    /// The token the HTTP API requires (`--api-token-file`).
    pub api_token: Option<Token>,
}

/// `--tls-cert-file`, `--tls-key-file` and `--tls-client-ca-file` (see `tls.rs`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A bearer token read from its file; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Reads a token file (`flag` names it in errors): the first line, trimmed; it must be
/// non-empty and printable ASCII without spaces (it travels in an HTTP header).
pub fn read_token(flag: &str, path: &std::path::Path) -> Result<Token, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!(
            "{flag} {}: the file holds no token",
            path.display()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{flag} {}: a token is printable ASCII without spaces",
            path.display()
        ));
    }
    Ok(Token(token.to_string()))
}

/// Splits a comma-separated flag value, dropping empty items.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl Config {
    /// What the collector checks at start beyond [`Config::resolve`] (and `--check-config`
    /// with it): every rule file and the `--alert-routes` file load. The error is the one
    /// line the collector stops with.
    pub fn check_files(&self) -> Result<(), String> {
        crate::alert::load::groups(&self.all_rule_files(), self.evaluation_interval)
            .map_err(|e| format!("rule files: {e}"))?;
        if let Some(path) = &self.alert_routes {
            crate::alert::route::config::RouteConfig::load(path)
                .map_err(|e| format!("--alert-routes {e}"))?;
        }
        Ok(())
    }

    /// Every rule file with the language of its `expr`s.
    pub fn all_rule_files(&self) -> Vec<(PathBuf, crate::alert::rules::Lang)> {
        use crate::alert::rules::Lang;
        let promql = self.rule_files.iter().map(|p| (p.clone(), Lang::PromQL));
        let logql = self.log_rule_files.iter().map(|p| (p.clone(), Lang::LogQL));
        promql.chain(logql).collect()
    }

    /// Resolves flags over the config file over defaults. The error is one line
    /// naming the flag (`--max-series: ...`) or the file and key.
    pub fn resolve(flags: &Flags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => sonde_cli_config::load_toml::<File>(path)?,
            None => File::default(),
        };
        let src = Source {
            file_path: flags.config.as_ref(),
        };
        let retention_time = src.pick(
            "retention-time",
            &flags.retention_time,
            file.retention_time,
            "15d",
            parse_duration,
        )?;
        let mut cfg = Config {
            data_dir: flags
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| "sonde-data".into()),
            http_listen: src.pick(
                "http-listen",
                &flags.http_listen,
                file.http_listen,
                "0.0.0.0:9090",
                parse_addr,
            )?,
            otlp_http_listen: src.pick(
                "otlp-http-listen",
                &flags.otlp_http_listen,
                file.otlp_http_listen,
                "0.0.0.0:4318",
                parse_addr,
            )?,
            grpc_listen: src.pick(
                "grpc-listen",
                &flags.grpc_listen,
                file.grpc_listen,
                "0.0.0.0:4317",
                parse_addr,
            )?,
            retention_time,
            retention_size: match src.pick_opt(
                "retention-size",
                &flags.retention_size,
                file.retention_size.map(|s| s.text()),
                parse_bytes,
            )? {
                Some(0) | None => None,
                Some(n) => Some(n),
            },
            max_series: src.pick(
                "max-series",
                &flags.max_series,
                file.max_series.map(|s| s.text()),
                "1000000",
                parse_count,
            )?,
            ooo_window: src.pick(
                "ooo-window",
                &flags.ooo_window,
                file.ooo_window,
                "10m",
                parse_duration_or_zero,
            )?,
            max_request_bytes: src.pick(
                "max-request-bytes",
                &flags.max_request_bytes,
                file.max_request_bytes.map(|s| s.text()),
                "32MiB",
                |s| {
                    parse_bytes(s).and_then(|n| {
                        if n == 0 {
                            Err("must be greater than zero".into())
                        } else {
                            Ok(n)
                        }
                    })
                },
            )? as usize,
            logs_retention_time: src
                .pick_opt(
                    "logs-retention-time",
                    &flags.logs_retention_time,
                    file.logs_retention_time,
                    parse_duration,
                )?
                .unwrap_or(retention_time),
            logs_retention_size: match src.pick_opt(
                "logs-retention-size",
                &flags.logs_retention_size,
                file.logs_retention_size.map(|s| s.text()),
                parse_bytes,
            )? {
                Some(0) | None => None,
                Some(n) => Some(n),
            },
            logs_max_streams: src.pick(
                "logs-max-streams",
                &flags.logs_max_streams,
                file.logs_max_streams.map(|s| s.text()),
                "100000",
                parse_count,
            )?,
            logs_max_lines: src.pick(
                "logs-max-lines",
                &flags.logs_max_lines,
                file.logs_max_lines.map(|s| s.text()),
                "5000",
                parse_count,
            )?,
            traces_retention_time: src
                .pick_opt(
                    "traces-retention-time",
                    &flags.traces_retention_time,
                    file.traces_retention_time,
                    parse_duration,
                )?
                .unwrap_or(retention_time),
            traces_max_spans_per_trace: src.pick(
                "traces-max-spans-per-trace",
                &flags.traces_max_spans_per_trace,
                file.traces_max_spans_per_trace.map(|s| s.text()),
                "10000",
                parse_count,
            )?,
            query_timeout: src.pick(
                "query-timeout",
                &flags.query_timeout,
                file.query_timeout,
                "2m",
                parse_duration,
            )?,
            query_max_samples: src.pick(
                "query-max-samples",
                &flags.query_max_samples,
                file.query_max_samples.map(|s| s.text()),
                "50000000",
                parse_count,
            )?,
            lookback_delta: src.pick(
                "lookback-delta",
                &flags.lookback_delta,
                file.lookback_delta,
                "5m",
                parse_duration,
            )?,
            log_level: flags
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            log_format: src.pick(
                "log-format",
                &flags.log_format,
                file.log_format,
                "text",
                |s| match s {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err("must be text or json".into()),
                },
            )?,
            // A flag can only switch it on; the file may say either.
            enable_admin_api: flags.enable_admin_api || file.enable_admin_api.unwrap_or(false),
            rule_files: match &flags.rule_files {
                Some(v) => list(v).into_iter().map(PathBuf::from).collect(),
                None => file.rule_files.unwrap_or_default(),
            },
            log_rule_files: match &flags.log_rule_files {
                Some(v) => list(v).into_iter().map(PathBuf::from).collect(),
                None => file.log_rule_files.unwrap_or_default(),
            },
            evaluation_interval: src.pick(
                "evaluation-interval",
                &flags.evaluation_interval,
                file.evaluation_interval,
                "1m",
                parse_duration,
            )?,
            alertmanager_urls: match &flags.alertmanager_url {
                Some(v) => list(v),
                None => file.alertmanager_url.unwrap_or_default(),
            },
            alert_routes: flags.alert_routes.clone().or(file.alert_routes),
            alert_resend_delay: src.pick(
                "alert-resend-delay",
                &flags.alert_resend_delay,
                file.alert_resend_delay,
                "1m",
                parse_duration,
            )?,
            external_url: String::new(),
            tls: None,
            auth_token: None,
            api_token: None,
        };
        let path = |flag: &Option<PathBuf>, key: Option<PathBuf>| flag.clone().or(key);
        cfg.tls = match (
            path(&flags.tls_cert_file, file.tls_cert_file),
            path(&flags.tls_key_file, file.tls_key_file),
            path(&flags.tls_client_ca_file, file.tls_client_ca_file),
        ) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            (Some(_), None, _) => return Err("--tls-cert-file needs --tls-key-file".into()),
            (None, Some(_), _) => return Err("--tls-key-file needs --tls-cert-file".into()),
            (None, None, Some(_)) => {
                return Err("--tls-client-ca-file needs --tls-cert-file and --tls-key-file".into());
            }
        };
        cfg.auth_token = path(&flags.auth_token_file, file.auth_token_file)
            .map(|p| read_token("--auth-token-file", &p))
            .transpose()?;
        cfg.api_token = path(&flags.api_token_file, file.api_token_file)
            .map(|p| read_token("--api-token-file", &p))
            .transpose()?;
        for u in &cfg.alertmanager_urls {
            if !u.starts_with("http://") || u.parse::<hyper::Uri>().is_err() {
                return Err(format!("--alertmanager-url: {u:?} is not an http:// URL"));
            }
        }
        cfg.external_url = match flags.external_url.clone().or(file.external_url) {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into());
                format!("http://{host}:{}", cfg.http_listen.port())
            }
        };
        Ok(cfg)
    }
}

/// Where a value came from, for error messages.
struct Source<'a> {
    file_path: Option<&'a PathBuf>,
}

impl Source<'_> {
    /// The flag's value, else the file's, else `default`, parsed; errors name
    /// the flag or the file and key.
    fn pick<T>(
        &self,
        key: &str,
        flag: &Option<String>,
        file: Option<String>,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        match self.pick_opt(key, flag, file, &parse)? {
            Some(v) => Ok(v),
            None => parse(default).map_err(|e| format!("default for --{key}: {e}")),
        }
    }

    fn pick_opt<T>(
        &self,
        key: &str,
        flag: &Option<String>,
        file: Option<String>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        if let Some(s) = flag {
            return parse(s)
                .map(Some)
                .map_err(|e| format!("--{key}: {s:?}: {e}"));
        }
        match (file, self.file_path) {
            (Some(s), Some(path)) => parse(&s)
                .map(Some)
                .map_err(|e| format!("{}: {key}: {s:?}: {e}", path.display())),
            _ => Ok(None),
        }
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "not a listen address (write e.g. 0.0.0.0:9090 or 127.0.0.1:9090)".to_string())
}

/// Prometheus-style durations: `15d`, `2m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 15d, 2m or 500ms)"))
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".into()),
    }
}

/// Sizes as Prometheus writes them: a number with an optional unit, decimal
/// (`KB`, `MB`, `GB`, `TB`) or binary (`KiB`, `MiB`, `GiB`, `TiB`); `B` or none for bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    sonde_cli_config::parse_bytes(s, "10GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("sonde-collector").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::resolve(&flags(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("sonde-data"));
        assert_eq!(c.http_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(c.otlp_http_listen.to_string(), "0.0.0.0:4318");
        assert_eq!(c.grpc_listen.to_string(), "0.0.0.0:4317");
        assert_eq!(c.retention_time, Duration::from_secs(15 * 86400));
        assert_eq!(c.retention_size, None);
        assert_eq!(c.max_series, 1_000_000);
        assert_eq!(c.ooo_window, Duration::from_secs(600));
        assert_eq!(c.max_request_bytes, 32 << 20);
        assert_eq!(c.query_timeout, Duration::from_secs(120));
        assert_eq!(c.query_max_samples, 50_000_000);
        assert_eq!(c.lookback_delta, Duration::from_secs(300));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.logs_retention_time, c.retention_time);
        assert_eq!(c.logs_retention_size, None);
        assert_eq!(c.logs_max_streams, 100_000);
        assert_eq!(c.logs_max_lines, 5000);
        assert!(!c.enable_admin_api);
        assert!(
            Config::resolve(&flags(&["--enable-admin-api"]))
                .unwrap()
                .enable_admin_api
        );
    }

    #[test]
    fn logs_flags_and_keys() {
        let c = Config::resolve(&flags(&["--retention-time", "30d"])).unwrap();
        assert_eq!(c.logs_retention_time, Duration::from_secs(30 * 86400));
        let c = Config::resolve(&flags(&[
            "--logs-retention-time",
            "7d",
            "--logs-retention-size",
            "1GiB",
            "--logs-max-streams",
            "10",
            "--logs-max-lines",
            "50",
        ]))
        .unwrap();
        assert_eq!(
            (
                c.logs_retention_time,
                c.logs_retention_size,
                c.logs_max_streams,
                c.logs_max_lines
            ),
            (Duration::from_secs(7 * 86400), Some(1 << 30), 10, 50)
        );
        let e = Config::resolve(&flags(&["--logs-max-lines", "0"])).unwrap_err();
        assert!(e.starts_with("--logs-max-lines:"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "logs-retention-time = \"2d\"\nlogs-max-streams = 3\nlogs-retention-size = \"1MiB\"\n",
        )
        .unwrap();
        let c = Config::resolve(&flags(&["--config", p.to_str().unwrap()])).unwrap();
        assert_eq!(
            (
                c.logs_retention_time,
                c.logs_max_streams,
                c.logs_retention_size
            ),
            (Duration::from_secs(2 * 86400), 3, Some(1 << 20))
        );
        std::fs::write(&p, "logs-retention-time = \"later\"\n").unwrap();
        let e = Config::resolve(&flags(&["--config", p.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("logs-retention-time"), "{e}");
    }

    #[test]
    fn check_files_loads_rules_and_routes() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("bad.rules.yml");
        std::fs::write(
            &rules,
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n",
        )
        .unwrap();
        let f = flags(&["--check-config", "--rule-files", rules.to_str().unwrap()]);
        assert!(f.check_config);
        let e = Config::resolve(&f).unwrap().check_files().unwrap_err();
        assert!(
            e.starts_with("rule files: ") && e.contains("bad.rules.yml") && !e.contains('\n'),
            "{e}"
        );
        let routes = dir.path().join("routes.yml");
        std::fs::write(&routes, "route:\n  receiver: nowhere\nreceivers: []\n").unwrap();
        let f = flags(&["--alert-routes", routes.to_str().unwrap()]);
        let e = Config::resolve(&f).unwrap().check_files().unwrap_err();
        assert!(e.starts_with("--alert-routes "), "{e}");
        assert_eq!(Config::resolve(&flags(&[])).unwrap().check_files(), Ok(()));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let e = Config::resolve(&flags(&["--retention-time", "soon"])).unwrap_err();
        assert!(e.starts_with("--retention-time: \"soon\":"), "{e}");
        let e = Config::resolve(&flags(&["--max-series", "0"])).unwrap_err();
        assert!(e.starts_with("--max-series:"), "{e}");
        let e = Config::resolve(&flags(&["--http-listen", "nowhere"])).unwrap_err();
        assert!(e.starts_with("--http-listen:"), "{e}");
    }

    #[test]
    fn tls_and_token_flags() {
        let c = Config::resolve(&flags(&[])).unwrap();
        assert!(c.tls.is_none() && c.auth_token.is_none() && c.api_token.is_none());
        let c = Config::resolve(&flags(&[
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ]))
        .unwrap();
        let t = c.tls.unwrap();
        assert_eq!(
            (t.cert.to_str(), t.key.to_str()),
            (Some("c.pem"), Some("k.pem"))
        );
        assert!(t.client_ca.is_none());
        for (args, flag) in [
            (&["--tls-cert-file", "c.pem"][..], "--tls-cert-file"),
            (&["--tls-key-file", "k.pem"][..], "--tls-key-file"),
            (
                &["--tls-client-ca-file", "ca.pem"][..],
                "--tls-client-ca-file",
            ),
            (
                &["--auth-token-file", "/nonexistent/t"][..],
                "--auth-token-file",
            ),
        ] {
            let e = Config::resolve(&flags(args)).unwrap_err();
            assert!(e.starts_with(flag), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, "s3cret\n").unwrap();
        let c = Config::resolve(&flags(&["--api-token-file", tok.to_str().unwrap()])).unwrap();
        assert_eq!(c.api_token, Some(Token("s3cret".into())));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug shows the token"
        );
        std::fs::write(&tok, "\n").unwrap();
        let e = Config::resolve(&flags(&["--auth-token-file", tok.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("no token"), "{e}");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "tls-cert-file = \"a\"\ntls-key-file = \"b\"\ntls-client-ca-file = \"ca\"\n",
        )
        .unwrap();
        let c = Config::resolve(&flags(&["--config", p.to_str().unwrap()])).unwrap();
        assert_eq!(c.tls.unwrap().client_ca, Some(PathBuf::from("ca")));
    }

    #[test]
    fn file_keys_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "data-dir = \"x\"\nmax-series = 5\nretention-size = \"1GiB\"\n",
        )
        .unwrap();
        let mut f = flags(&["--config", p.to_str().unwrap()]);
        let c = Config::resolve(&f).unwrap();
        assert_eq!(
            (c.data_dir.to_str(), c.max_series, c.retention_size),
            (Some("x"), 5, Some(1 << 30))
        );
        f.max_series = Some("7".into());
        assert_eq!(Config::resolve(&f).unwrap().max_series, 7);

        std::fs::write(&p, "data-dir = \"x\"\nbogus-key = 1\n").unwrap();
        let e = Config::resolve(&f).unwrap_err();
        assert!(
            e.starts_with(&format!("{}:2:", p.display())) && e.contains("bogus-key"),
            "{e}"
        );
        std::fs::write(&p, "query-timeout = \"never\"\n").unwrap();
        let e = Config::resolve(&f).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: query-timeout:", p.display())),
            "{e}"
        );
    }
}
