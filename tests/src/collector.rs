//! Starting the real `sonde-collector` binary on free 127.0.0.1 ports and a data
//! directory the test owns, killing it (`kill -9`) and starting it again on the same
//! directory and ports.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use crate::{free_port, process::Logged, promapi::PromApi, workspace_root};

/// How long a start (storage recovery included) may take before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds `sonde-collector` once per test process (cheap when up to date) and returns its path.
pub fn collector_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "sonde-collector",
                    "--bin",
                    "sonde-collector",
                ])
                .current_dir(workspace_root())
                .status()
                .expect("running cargo build for sonde-collector");
            assert!(status.success(), "cargo build -p sonde-collector failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_root().join("target"));
            target.join("debug/sonde-collector")
        })
        .clone()
}

/// A running collector; killed when dropped. Its data directory is the caller's.
pub struct Collector {
    /// Prometheus HTTP API, remote_write and OTLP/HTTP.
    pub http: SocketAddr,
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    /// Set: the collector serves TLS (its `extra` has the certificate flags) with a
    /// certificate signed by this CA (PEM); readiness is checked over TLS.
    tls_ca: Option<String>,
    process: Option<Logged>,
    /// Logs of earlier runs (before a kill or stop), kept for error messages.
    earlier_logs: String,
}

impl Collector {
    /// Starts the collector on `data_dir` with `extra` flags and waits until `/-/ready`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Collector {
        Collector::start_with(data_dir, extra, None)
    }

    /// Like [`Collector::start`] for a collector serving TLS: `extra` has its
    /// `--tls-cert-file` and `--tls-key-file`, signed by `ca_pem`; waits until
    /// `https://.../-/ready` answers.
    pub fn start_tls(data_dir: &Path, extra: &[&str], ca_pem: &str) -> Collector {
        Collector::start_with(data_dir, extra, Some(ca_pem.to_string()))
    }

    fn start_with(data_dir: &Path, extra: &[&str], tls_ca: Option<String>) -> Collector {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let mut c = Collector {
            http: addr(free_port()),
            grpc: addr(free_port()),
            otlp_http: addr(free_port()),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls_ca,
            process: None,
            earlier_logs: String::new(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(collector_binary());
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http-listen", &self.http.to_string()])
            .args(["--grpc-listen", &self.grpc.to_string()])
            .args(["--otlp-http-listen", &self.otlp_http.to_string()])
            .args(["--log-level", "info"])
            .args(&self.extra);
        let mut p = Logged::spawn("sonde-collector", cmd);
        match &self.tls_ca {
            None => p.wait_ready(self.http, "/-/ready", READY_TIMEOUT),
            Some(ca) => {
                let http = self.http;
                p.wait_until(&format!("https://{http}/-/ready"), READY_TIMEOUT, || {
                    crate::tls::https_get(http, "/-/ready", ca, None)
                        .is_ok_and(|(code, _)| code == 200)
                });
            }
        }
        self.process = Some(p);
    }

    /// `kill -9`: no flush, no shutdown hook.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
            self.keep_log(&p);
        }
    }

    /// SIGTERM (a clean shutdown), SIGKILL after 30 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(30));
            self.keep_log(&p);
        }
    }

    /// Starts it again, same data directory, ports and flags; waits until ready.
    pub fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "restart of a collector that is still running"
        );
        self.spawn();
    }

    fn keep_log(&mut self, p: &Logged) {
        self.earlier_logs.push_str(&p.log_text());
        self.earlier_logs.push_str("\n--- (restart) ---\n");
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Logged::pid)
    }

    /// The log of this run and of the runs before it.
    pub fn log_text(&self) -> String {
        format!(
            "{}{}",
            self.earlier_logs,
            self.process
                .as_ref()
                .map(Logged::log_text)
                .unwrap_or_default()
        )
    }

    pub fn api(&self) -> PromApi {
        PromApi::new(&format!("http://{}", self.http))
    }

    pub fn remote_write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.http)
    }

    /// The HTTP API's address (Prometheus, Loki and Jaeger APIs).
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// What the agent's `--collector` takes (https:// for a TLS collector).
    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc)
    }
}
