//! Helpers for the alerting tests: the collector and the real Alertmanager as
//! child processes, OTLP pushes of a gauge, and polling with a deadline.

#![allow(dead_code)] // each test file uses its own subset

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub mod sink;

use crate::api_support::{binary, free_port, now_ms, request};
use serde_json::Value;

pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Proc {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    let r = request(addr, "GET", path, &[], b"").ok()?;
    (r.status == 200).then(|| serde_json::from_slice(&r.body).ok())?
}

/// The real Alertmanager, clustering off, every alert to a receiver with no
/// integrations (we read alerts back through its API).
pub fn alertmanager(dir: &Path) -> (Proc, SocketAddr) {
    let bin = "/usr/bin/prometheus-alertmanager";
    assert!(
        Path::new(bin).exists(),
        "{bin} missing: `cargo xtask setup` installs prometheus-alertmanager"
    );
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: none\n  group_wait: 0s\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = dir.join("alertmanager.log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting alertmanager");
    let p = Proc { child, log };
    wait_for("alertmanager ready", Duration::from_secs(30), || {
        request(addr, "GET", "/-/ready", &[], b"")
            .ok()
            .filter(|r| r.status == 200)
    });
    (p, addr)
}

pub struct Collector {
    pub proc: Proc,
    pub http: SocketAddr,
}

pub fn collector(data: &Path, log: &Path, args: &[String]) -> Collector {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args(["--http-listen", &http.to_string()])
        .args(["--otlp-http-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--evaluation-interval", "1s", "--alert-resend-delay", "1s"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting sonde-collector");
    let proc = Proc {
        child,
        log: log.to_path_buf(),
    };
    wait_for("collector ready", Duration::from_secs(30), || {
        request(http, "GET", "/-/ready", &[], b"")
            .ok()
            .filter(|r| r.status == 200)
    });
    Collector { proc, http }
}

/// One gauge sample `queue_depth{queue="q1"}` at now, through OTLP/HTTP JSON.
pub fn push_depth(c: &Collector, v: i64) {
    push_queue(c, "q1", v);
}

/// One gauge sample `queue_depth{queue}` at now, through OTLP/HTTP JSON.
pub fn push_queue(c: &Collector, queue: &str, v: i64) {
    let t_ns = now_ms() as u64 * 1_000_000;
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"web"}}}}]}},
        "scopeMetrics":[{{"metrics":[{{"name":"queue.depth","gauge":{{"dataPoints":[
          {{"timeUnixNano":"{t_ns}","asInt":"{v}","attributes":[{{"key":"queue","value":{{"stringValue":"{queue}"}}}}]}}]}}}}]}}]}}]}}"#
    );
    let r = request(
        c.http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}
