//! One measured run: fresh collector and agent, the corpus moved into the agent's log
//! directory, wait until the collector holds every line, measure, count, stop.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{
    corpus::{Corpus, NAMESPACE},
    procs::{cpu_seconds, metric_sum, peak_rss},
};
use crate::{
    bench_agent::{
        guard::{self, Running, TempDir},
        http,
    },
    step::{self, say},
};

const MIB: f64 = (1 << 20) as f64;
const RECEIVED: &str = "sonde_collector_log_entries_received_total";
const DEDUPLICATED: &str = "sonde_collector_log_entries_deduplicated_total";
const REJECTED: &str = "sonde_collector_log_entries_rejected_total";
/// Each LogQL count reads at most about this much (the collector caps a query's bytes).
const COUNT_BYTES_PER_QUERY: f64 = 48.0 * MIB;

pub struct Measured {
    pub wall_s: f64,
    pub agent_cpu_s: f64,
    pub agent_peak_rss: u64,
    pub collector_cpu_s: f64,
    pub collector_peak_rss: u64,
    /// Bytes (allocated) under `<data-dir>/logs` after a clean stop.
    pub disk_bytes: u64,
    pub lost: u64,
    /// How `lost` was found: the LogQL count, or the counters when the count failed (why).
    pub lost_source: String,
    pub deduplicated: f64,
    pub rejected: f64,
    pub agent_dropped: f64,
}

impl Measured {
    pub fn mib_per_s(&self, c: &Corpus) -> f64 {
        c.bytes() as f64 / MIB / self.wall_s
    }
    pub fn lines_per_s(&self, c: &Corpus) -> f64 {
        c.lines() as f64 / self.wall_s
    }
}

/// Moves the pod directories into the agent's log dir; moves them back when dropped.
pub struct Moved<'a> {
    corpus: &'a Corpus,
    to: PathBuf,
    done: Vec<String>,
}

impl Moved<'_> {
    pub fn all<'a>(corpus: &'a Corpus, to: &Path) -> Result<Moved<'a>> {
        let mut m = Moved {
            corpus,
            to: to.to_path_buf(),
            done: Vec::new(),
        };
        for c in &corpus.containers {
            fs::rename(corpus.store.join(&c.pod_dir), to.join(&c.pod_dir))
                .with_context(|| format!("moving {} into {}", c.pod_dir, to.display()))?;
            m.done.push(c.pod_dir.clone());
        }
        Ok(m)
    }
}

impl Drop for Moved<'_> {
    fn drop(&mut self) {
        for d in &self.done {
            let _ = fs::rename(self.to.join(d), self.corpus.store.join(d));
        }
    }
}

fn wait_http(
    name: &str,
    p: &mut Running,
    port: u16,
    path: &str,
    dir: &TempDir,
    log: &str,
) -> Result<()> {
    guard::wait_until(
        &format!("{name}'s {path}"),
        Duration::from_secs(120),
        || {
            if p.exited()? {
                bail!(
                    "{name} exited while starting; its log ends:\n{}",
                    dir.tail(log)
                );
            }
            Ok(http::get(port, path).is_ok_and(|r| r.status == 200))
        },
    )
}

pub fn once(dir: &TempDir, corpus: &Corpus, r: usize) -> Result<Measured> {
    let run = dir.path(&format!("run-{r}"));
    let _ = fs::remove_dir_all(&run);
    let (data, pods) = (run.join("data"), run.join("pods"));
    fs::create_dir_all(&data)?;
    fs::create_dir_all(&pods)?;
    let (http_port, grpc_port, agent_port) = (
        guard::free_port()?,
        guard::free_port()?,
        guard::free_port()?,
    );

    let clog = format!("collector-{r}.log");
    let mut cmd = Command::new(step::target_dir().join("release/sonde-collector"));
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .args([
            "--otlp-http-listen",
            &format!("127.0.0.1:{}", guard::free_port()?),
        ])
        .args(["--log-level", "warn"]);
    let f = dir.log(&clog)?;
    cmd.stdout(f.try_clone()?).stderr(f);
    let mut collector = Running::spawn("sonde-collector", cmd)?;
    wait_http(
        "sonde-collector",
        &mut collector,
        http_port,
        "/-/ready",
        dir,
        &clog,
    )?;

    let alog = format!("agent-{r}.log");
    let mut cmd = Command::new(step::target_dir().join("release/sonde-agent"));
    cmd.args(["--listen", &format!("127.0.0.1:{agent_port}")])
        .args(["--probes", "none", "--log-level", "warn", "--spans", "off"])
        .args(["--collector", &format!("http://127.0.0.1:{grpc_port}")])
        .arg("--collector-insecure")
        .arg("--buffer-dir")
        .arg(run.join("buffer"))
        .arg("--log-dir")
        .arg(&pods)
        .arg("--log-positions")
        .arg(run.join("positions.json"));
    let f = dir.log(&alog)?;
    cmd.stdout(f.try_clone()?).stderr(f);
    let mut agent = Running::spawn("sonde-agent", cmd)?;
    wait_http(
        "sonde-agent",
        &mut agent,
        agent_port,
        "/healthz",
        dir,
        &alog,
    )?;

    let (a0, c0) = (cpu_seconds(agent.pid())?, cpu_seconds(collector.pid())?);
    let start = Instant::now();
    let moved = Moved::all(corpus, &pods)?;
    let total = corpus.lines() as f64;
    // Fails below 2 MiB/s: far under any bar, and a stuck pipeline must not hang the bench.
    let timeout = Duration::from_secs(120 + corpus.bytes() / (2 << 20));
    let mut last_report = Instant::now();
    loop {
        guard::check_interrupt()?;
        if agent.exited()? {
            bail!(
                "sonde-agent exited mid-run; its log ends:\n{}",
                dir.tail(&alog)
            );
        }
        if collector.exited()? {
            bail!(
                "sonde-collector exited mid-run; its log ends:\n{}",
                dir.tail(&clog)
            );
        }
        // Counts entries stored, duplicates already left out.
        let stored = metric_sum(http_port, RECEIVED)?;
        if stored >= total {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            say(&format!(
                "  {:.0} s: collector holds {stored:.0} of {total:.0} lines; agent read {:.0}, dropped {:.0}",
                start.elapsed().as_secs_f64(),
                metric_sum(agent_port, "sonde_logs_lines_read_total").unwrap_or(f64::NAN),
                metric_sum(agent_port, "sonde_logs_lines_dropped_total").unwrap_or(f64::NAN),
            ));
        }
        if start.elapsed() > timeout {
            bail!(
                "after {timeout:?} the collector holds {stored:.0} of {total:.0} lines (rejected {:.0}); agent log ends:\n{}\ncollector log ends:\n{}",
                metric_sum(http_port, REJECTED).unwrap_or(f64::NAN),
                dir.tail(&alog),
                dir.tail(&clog)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall_s = start.elapsed().as_secs_f64();
    let mut m = Measured {
        wall_s,
        agent_cpu_s: cpu_seconds(agent.pid())? - a0,
        agent_peak_rss: peak_rss(agent.pid())?,
        collector_cpu_s: cpu_seconds(collector.pid())? - c0,
        collector_peak_rss: peak_rss(collector.pid())?,
        disk_bytes: 0,
        lost: 0,
        lost_source: String::new(),
        deduplicated: metric_sum(http_port, DEDUPLICATED)?,
        rejected: metric_sum(http_port, REJECTED)?,
        agent_dropped: metric_sum(agent_port, "sonde_logs_lines_dropped_total")?,
    };
    let received = metric_sum(http_port, RECEIVED)?;
    match count_stored(http_port, corpus) {
        Ok(counted) => {
            m.lost = (total as u64).saturating_sub(counted);
            m.lost_source = format!("LogQL count_over_time: {counted} lines stored");
        }
        Err(e) => {
            m.lost = (total - received).max(0.0) as u64;
            m.lost_source = format!("counters (the LogQL count failed: {e:#})");
        }
    }
    drop(agent);
    // A clean stop, so what the store buffers is on disk when counted.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(collector.pid() as libc::pid_t, libc::SIGTERM) };
    collector.finish(Duration::from_secs(300))?;
    m.disk_bytes = crate::bench_collector::peers::allocated_bytes(&data.join("logs"))?;
    drop(moved);
    let _ = fs::remove_dir_all(&run);
    Ok(m)
}

/// Lines stored for the bench namespace, counted with `sum(count_over_time(...[1m]))`
/// range queries on a one-minute grid (step = range, so the windows tile the corpus's
/// span exactly), a few minutes per query to stay under the collector's bytes-read cap.
fn count_stored(port: u16, corpus: &Corpus) -> Result<u64> {
    let first = corpus
        .containers
        .iter()
        .map(|c| c.first_ns)
        .min()
        .context("empty corpus")?;
    let last = corpus
        .containers
        .iter()
        .map(|c| c.first_ns + c.step_ns * c.lines as i64)
        .max()
        .context("empty corpus")?;
    const MIN_NS: i64 = 60_000_000_000;
    let (grid0, grid1) = (
        first.div_euclid(MIN_NS) * MIN_NS,
        (last.div_euclid(MIN_NS) + 2) * MIN_NS,
    );
    let minutes = (grid1 - grid0) / MIN_NS;
    let per_minute = corpus.bytes() as f64 / minutes as f64;
    let steps_per_query = ((COUNT_BYTES_PER_QUERY / per_minute).floor() as i64).max(1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let query = format!("sum(count_over_time({{namespace=\"{NAMESPACE}\"}}[1m]))");
    let mut counted = 0.0;
    let mut t = grid0 + MIN_NS;
    while t <= grid1 {
        let end = (t + (steps_per_query - 1) * MIN_NS).min(grid1);
        let url = format!("http://127.0.0.1:{port}/loki/api/v1/query_range");
        let mut resp = agent
            .get(&url)
            .query("query", &query)
            .query("start", t.to_string())
            .query("end", end.to_string())
            .query("step", "60")
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(
            &resp
                .body_mut()
                .with_config()
                .limit(1 << 28)
                .read_to_string()?,
        )?;
        if status != 200 || body["status"] != "success" {
            bail!("{query} over [{t}, {end}] answered {status}: {body:.300}");
        }
        for series in body["data"]["result"]
            .as_array()
            .context("result is not an array")?
        {
            for v in series["values"]
                .as_array()
                .context("series without values")?
            {
                counted += v[1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .context("a value that is not a number")?;
            }
        }
        t = end + MIN_NS;
    }
    Ok(counted as u64)
}
