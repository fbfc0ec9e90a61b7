//! The three storage servers the bench writes to and queries, each started fresh on a
//! free 127.0.0.1 port with its own data directory: Sonde's collector (release build),
//! Prometheus 2.42 with its remote-write receiver, VictoriaMetrics 1.79.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{
    bench_agent::{
        guard::{self, Running, TempDir},
        http,
    },
    step,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Sonde,
    Prometheus,
    Victoria,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sonde => "Sonde",
            Kind::Prometheus => "Prometheus",
            Kind::Victoria => "VictoriaMetrics",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        match s.trim() {
            "sonde" => Ok(Kind::Sonde),
            "prometheus" => Ok(Kind::Prometheus),
            "victoria-metrics" | "victoriametrics" | "vm" => Ok(Kind::Victoria),
            other => bail!("--peers: unknown peer {other:?} (sonde, prometheus, victoria-metrics)"),
        }
    }

    /// The program's version line, for the report.
    pub fn version(self) -> String {
        let (program, arg) = match self {
            Kind::Sonde => return format!("sonde-collector {}", env!("CARGO_PKG_VERSION")),
            Kind::Prometheus => ("prometheus", "--version"),
            Kind::Victoria => ("victoria-metrics", "-version"),
        };
        let line = Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&[o.stdout, o.stderr].concat())
                    .lines()
                    .next()
                    .map(|l| l.trim().to_string())
            })
            .filter(|l| !l.is_empty());
        // Debian's VictoriaMetrics build prints an empty version: ask dpkg instead.
        line.or_else(|| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Version}", program])
                .output()
                .ok()?;
            let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!v.is_empty()).then(|| format!("{program} {v} (Debian package)"))
        })
        .unwrap_or_else(|| "unknown".into())
    }
}

pub struct Peer {
    pub kind: Kind,
    pub port: u16,
    pub data: PathBuf,
    running: Option<Running>,
    log: String,
}

impl Peer {
    pub fn start(kind: Kind, dir: &TempDir) -> Result<Peer> {
        let port = guard::free_port()?;
        let data = dir.path(&format!("{}-data", kind.name().to_lowercase()));
        fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match kind {
            Kind::Sonde => {
                // SONDE_BENCH_COLLECTOR: another build (e.g. a saved one, for A/B runs).
                let bin = std::env::var_os("SONDE_BENCH_COLLECTOR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| step::target_dir().join("release/sonde-collector"));
                let mut c = Command::new(bin);
                c.arg("--data-dir")
                    .arg(&data)
                    .args(["--http-listen", &addr]);
                c.args([
                    "--grpc-listen",
                    &format!("127.0.0.1:{}", guard::free_port()?),
                ]);
                c.args([
                    "--otlp-http-listen",
                    &format!("127.0.0.1:{}", guard::free_port()?),
                ]);
                // For `POST /api/v1/admin/tsdb/compact` before the "compacted" disk figure.
                c.args(["--log-level", "warn", "--enable-admin-api"]);
                c
            }
            Kind::Prometheus => {
                let config = dir.path("prometheus.yml");
                fs::write(&config, "global:\n  evaluation_interval: 1m\n")?;
                let mut c = Command::new("prometheus");
                c.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .args([
                        "--web.enable-remote-write-receiver",
                        "--web.enable-admin-api",
                        "--log.level=warn",
                    ]);
                c
            }
            Kind::Victoria => {
                let mut c = Command::new("victoria-metrics");
                c.arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={addr}"))
                    // Measure the queries, not a result cache; and show data up to now.
                    .args([
                        "-search.disableCache",
                        "-search.latencyOffset=0s",
                        "-retentionPeriod=1",
                        "-loggerLevel=WARN",
                    ]);
                c
            }
        };
        let log = format!("{}.log", kind.name().to_lowercase());
        let file = dir.log(&log)?;
        cmd.stdout(file.try_clone()?).stderr(file);
        let mut running = Running::spawn(kind.name(), cmd)?;
        let ready = if kind == Kind::Victoria {
            "/health"
        } else {
            "/-/ready"
        };
        guard::wait_until(
            &format!("{}'s {ready}", kind.name()),
            Duration::from_secs(120),
            || {
                if running.exited()? {
                    bail!(
                        "{} exited while starting; its log ends:\n{}",
                        kind.name(),
                        dir.tail(&log)
                    );
                }
                Ok(http::get(port, ready).is_ok_and(|r| r.status == 200))
            },
        )?;
        Ok(Peer {
            kind,
            port,
            data,
            running: Some(running),
            log,
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.base())
    }

    pub fn log_tail(&self, dir: &TempDir) -> String {
        dir.tail(&self.log)
    }

    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(Running::pid)
    }

    /// After the writes: what makes them queryable and on disk. VictoriaMetrics buffers
    /// recent rows in memory for up to a second or so; `/internal/force_flush` writes them out.
    pub fn flush(&self) -> Result<()> {
        if self.kind == Kind::Victoria {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into();
            agent
                .get(&format!("{}/internal/force_flush", self.base()))
                .call()
                .context("VictoriaMetrics /internal/force_flush")?;
        }
        Ok(())
    }

    /// `(VmRSS, VmHWM)` in bytes: now and the peak since start.
    pub fn rss(&self) -> Result<(u64, u64)> {
        let pid = self.pid().context("the peer is stopped")?;
        let field = |name| crate::bench_agent::scrape::status_bytes(pid, name);
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Prometheus only: writes a snapshot (the blocks, plus the head written out as a block)
    /// and returns its directory: Prometheus's data in compacted form.
    pub fn prometheus_snapshot(&self) -> Result<PathBuf> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        let mut resp = agent
            .post(&format!("{}/api/v1/admin/tsdb/snapshot", self.base()))
            .send_empty()
            .context("POST /api/v1/admin/tsdb/snapshot")?;
        let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
        let name = body["data"]["name"]
            .as_str()
            .context("snapshot answer without data.name")?;
        Ok(self.data.join("snapshots").join(name))
    }

    /// Sonde only: `POST /api/v1/admin/tsdb/compact`, which writes the whole head out as
    /// blocks and deletes the WAL segments they cover. Returns its JSON `data`.
    pub fn sonde_compact(&self) -> Result<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        let mut resp = agent
            .post(&format!("{}/api/v1/admin/tsdb/compact", self.base()))
            .send_empty()
            .context("POST /api/v1/admin/tsdb/compact")?;
        let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
        if body["status"] != "success" {
            bail!("Sonde's compaction answered {body}");
        }
        Ok(body["data"].clone())
    }

    /// A clean stop (SIGTERM; SIGKILL after 5 s): each flushes what it buffers.
    pub fn stop(&mut self) {
        self.running.take();
    }
}

/// Bytes on disk under `dir` (allocated blocks, each inode once), by top-level entry,
/// leaving out top-level entries named in `skip`.
pub fn disk_usage(dir: &Path, skip: &[&str]) -> Result<BTreeMap<String, u64>> {
    let mut seen = HashSet::new();
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        out.insert(name, walk(&entry.path(), &mut seen)?);
    }
    Ok(out)
}

/// Allocated bytes under `path` (a file or a directory tree), each inode once;
/// 0 when it does not exist.
pub fn allocated_bytes(path: &Path) -> Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    walk(path, &mut HashSet::new())
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let mut bytes = 0;
    if seen.insert((meta.dev(), meta.ino())) {
        bytes += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            bytes += walk(&entry?.path(), seen)?;
        }
    }
    Ok(bytes)
}
