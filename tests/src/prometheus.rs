//! The real Prometheus (Debian's 2.42) as a peer: a fresh TSDB in a temp directory, a free
//! 127.0.0.1 port, the remote-write receiver on, no scrape targets.

use std::{net::SocketAddr, process::Command, time::Duration};

use crate::{free_port, process::Logged, promapi::PromApi, require_binary};

pub struct Prometheus {
    pub addr: SocketAddr,
    process: Logged,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus and waits for `/-/ready`. Panics if it is not installed: on the
    /// machines we run on that is a setup bug (`cargo xtask setup`), never a skip.
    pub fn start() -> Prometheus {
        let binary = require_binary("prometheus");
        let dir = tempfile::Builder::new()
            .prefix("sonde-prometheus-")
            .tempdir()
            .expect("creating a temp dir");
        let config = dir.path().join("prometheus.yml");
        // No scrape jobs: everything it stores comes over remote_write.
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n")
            .expect("writing prometheus.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args([
                "--web.enable-remote-write-receiver",
                "--web.enable-admin-api",
                "--log.level=warn",
            ]);
        let mut process = Logged::spawn("prometheus", cmd);
        process.wait_ready(addr, "/-/ready", Duration::from_secs(60));
        Prometheus {
            addr,
            process,
            _dir: dir,
        }
    }

    pub fn api(&self) -> PromApi {
        PromApi::new(&format!("http://{}", self.addr))
    }

    pub fn remote_write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}
