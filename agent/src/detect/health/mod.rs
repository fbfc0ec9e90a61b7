//! Health checks: small probes of the node's own health, each owning one
//! condition type (PSI owns one per resource), run every `interval` and
//! reported as [`Finding::Condition`] every time (the hub ignores reports that
//! change nothing, so resending is cheap and heals a lost report).
//!
//! | check | condition type | problem reason(s) | file |
//! |---|---|---|---|
//! | kubelet `/healthz` | `KubeletUnhealthy` | `KubeletUnhealthy` | [`kubelet`] |
//! | runtime socket | `ContainerRuntimeUnhealthy` | `ContainerdUnhealthy` / `ContainerRuntimeUnhealthy` | [`runtime`] |
//! | adjtimex | `ClockUnsynchronized` | `ClockNotSynchronized`, `ClockMaxErrorTooLarge` | [`clock`] |
//! | root mount flags | `ReadonlyRootFilesystem` | `RootFilesystemReadOnly` | [`readonly`] |
//! | statvfs blocks | `DiskSpacePressure` | `DiskSpaceLow` | [`disk`] |
//! | statvfs inodes | `InodePressure` | `InodesLow` | [`inodes`] |
//! | `pressure/{cpu,memory,io}` | `CPUPressureStall`, `MemoryPressureStall`, `IOPressureStall` | `<Resource>PressureStallHigh` | [`psi`] |
//!
//! None of these reuse the kubelet's own condition types (Ready, MemoryPressure,
//! DiskPressure, PIDPressure, NetworkUnavailable): the kubelet owns those and
//! would overwrite them.

mod clock;
mod disk;
mod fsstat;
mod inodes;
mod kubelet;
mod psi;
mod readonly;
mod runtime;

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use futures::future::BoxFuture;
use tracing::debug;

use super::problem::{ConditionDefault, Finding, FindingTx, Status};

pub use kubelet::DEFAULT_KUBELET_HEALTHZ;
pub use runtime::{RUNTIME_SOCKETS, detect_runtime_socket};

/// NPD's source name for its health checkers (health-checker-*.json).
pub const SOURCE: &str = "health-checker";

/// What the health checks look at and when they call something a problem.
///
/// The kubelet and container runtime checks are off unless their field is set:
/// outside Kubernetes there is no kubelet to ask. The lead's wiring turns them
/// on by default only when the agent runs in Kubernetes (its node name is known),
/// with [`DEFAULT_KUBELET_HEALTHZ`] and [`detect_runtime_socket`], or when they
/// are configured explicitly.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// How often every check runs and reports. Default 30 s.
    pub interval: Duration,
    /// How long the kubelet GET, the runtime connect and a statvfs may take
    /// before the check counts as failed (or, for statvfs, skipped). Default 10 s
    /// (NPD's kubelet `--health-check-timeout`).
    pub timeout: Duration,
    /// The kubelet's healthz URL (plain `http://` only, as the kubelet serves it
    /// on localhost); `None` turns the check off. Not "ok" or no answer is a problem.
    pub kubelet: Option<String>,
    /// The container runtime's socket; `None` turns the check off. A failed
    /// connect is a problem.
    pub runtime_socket: Option<PathBuf>,
    /// The host's /proc (PSI files, and pid 1's mountinfo for the root mount).
    pub procfs: PathBuf,
    /// The host's root filesystem as the agent sees it (`/`, or e.g. `/host` in a
    /// container). Checked for read-only, space and inodes.
    pub rootfs: PathBuf,
    /// More filesystems to check for space and inodes, besides `rootfs` (which
    /// is always checked). Paths as the agent sees them. Default none.
    pub disk_paths: Vec<PathBuf>,
    /// Space available to unprivileged users below this fraction of the size is
    /// a problem. Default 0.10: the kubelet's default `nodefs.available<10%`
    /// eviction threshold, so this fires when the kubelet starts evicting.
    pub disk_min_free_ratio: f64,
    /// Free inodes below this fraction is a problem. Default 0.05: the kubelet's
    /// default `nodefs.inodesFree<5%`.
    pub inode_min_free_ratio: f64,
    /// The kernel's bound on the clock's error (adjtimex `maxerror`) above this
    /// is a problem, as is an unsynchronised clock. Default 1 s: NTP daemons keep
    /// `maxerror` at their root distance (milliseconds), and the kernel adds
    /// 0.5 ms to it each second no daemon updates it, so 1 s means the clock has
    /// been free-running for about half an hour; smaller errors do not upset
    /// certificates, leases or log order.
    pub clock_max_error: Duration,
    /// PSI `some avg60` (percent of the last minute some task stalled) above
    /// which CPU pressure is a problem. Default 50: on a fully used node some
    /// runnable task often waits; half of every minute is heavy overcommit.
    pub psi_cpu: f64,
    /// The same for memory. Default 10: memory stalls (reclaim, refaults,
    /// swap-in) are rare on a healthy node, and 10% of a minute already means
    /// visibly slow workloads and an OOM kill not far off.
    pub psi_memory: f64,
    /// The same for I/O. Default 20: I/O waits are normal for busy disks, so
    /// the bar is higher than memory's; a fifth of every minute is saturation.
    pub psi_io: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            kubelet: None,
            runtime_socket: None,
            procfs: PathBuf::from("/proc"),
            rootfs: PathBuf::from("/"),
            disk_paths: Vec::new(),
            disk_min_free_ratio: 0.10,
            inode_min_free_ratio: 0.05,
            clock_max_error: Duration::from_secs(1),
            psi_cpu: 50.0,
            psi_memory: 10.0,
            psi_io: 20.0,
        }
    }
}

/// Starts every enabled check on the tokio runtime; returns the defaults of
/// the conditions they own. Call inside the runtime.
pub fn start(cfg: HealthConfig, tx: FindingTx) -> Vec<ConditionDefault> {
    let mut checks: Vec<Box<dyn Check>> = Vec::new();
    if let Some(url) = &cfg.kubelet {
        checks.push(Box::new(kubelet::Kubelet::new(url.clone(), cfg.timeout)));
    }
    if let Some(socket) = &cfg.runtime_socket {
        checks.push(Box::new(runtime::Runtime::new(socket.clone(), cfg.timeout)));
    }
    checks.push(Box::new(clock::Clock::new(cfg.clock_max_error)));
    checks.push(Box::new(readonly::Readonly::new(
        cfg.procfs.clone(),
        cfg.rootfs.clone(),
        cfg.timeout,
    )));
    let fs_paths = fs_paths(&cfg.rootfs, &cfg.disk_paths);
    checks.push(Box::new(disk::Disk::new(
        fs_paths.clone(),
        cfg.disk_min_free_ratio,
        cfg.timeout,
    )));
    checks.push(Box::new(inodes::Inodes::new(
        fs_paths,
        cfg.inode_min_free_ratio,
        cfg.timeout,
    )));
    if let Some(psi) = psi::Psi::new(&cfg.procfs, [cfg.psi_cpu, cfg.psi_memory, cfg.psi_io]) {
        checks.push(Box::new(psi));
    }
    let defaults = checks.iter().flat_map(|c| c.defaults()).collect();
    for check in checks {
        tokio::spawn(run(check, cfg.interval, tx.clone()));
    }
    defaults
}

/// The root filesystem first, then the others, without repeats.
fn fs_paths(rootfs: &Path, more: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![rootfs.to_path_buf()];
    for p in more {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// What a check concluded this round about one of its conditions.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Verdict {
    /// All is well: the condition's default reason and message.
    Healthy,
    Problem {
        reason: String,
        message: String,
    },
}

impl Verdict {
    /// Healthy when nothing was found; else a problem listing every finding.
    fn of_findings(reason: &str, found: Vec<String>) -> Verdict {
        if found.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Problem {
                reason: reason.to_string(),
                message: found.join("; "),
            }
        }
    }
}

/// One health check: owns its conditions, measures once per round.
pub(super) trait Check: Send + 'static {
    fn defaults(&self) -> Vec<ConditionDefault>;
    /// (condition type, verdict) for each condition it could judge this round;
    /// a condition it could not measure is left out (nothing is reported).
    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>>;
}

async fn run(mut check: Box<dyn Check>, interval: Duration, tx: FindingTx) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (kind, verdict) in check.round().await {
            debug!(kind, ?verdict, "health check");
            if tx.send(finding(kind, verdict)).await.is_err() {
                return; // the hub is gone: the agent is shutting down
            }
        }
    }
}

fn finding(kind: &str, verdict: Verdict) -> Finding {
    let (status, reason, message) = match verdict {
        // An empty reason tells the hub "back to the default reason and message".
        Verdict::Healthy => (Status::False, String::new(), String::new()),
        Verdict::Problem { reason, message } => (Status::True, reason, message),
    };
    Finding::Condition {
        source: SOURCE.to_string(),
        kind: kind.to_string(),
        status,
        reason,
        message,
        time: SystemTime::now(),
        pods: Vec::new(),
    }
}

/// A condition default of this source.
fn condition(kind: &str, reason: &str, message: &str, problems: &[&str]) -> ConditionDefault {
    ConditionDefault {
        source: SOURCE.to_string(),
        kind: kind.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        problem_reasons: problems.iter().map(|s| s.to_string()).collect(),
    }
}

/// `0.042` -> `"4.2%"`.
fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_reports_false_with_default_reason() {
        let Finding::Condition {
            status,
            reason,
            source,
            kind,
            ..
        } = finding("X", Verdict::Healthy)
        else {
            panic!("not a condition");
        };
        assert_eq!((status, reason.as_str()), (Status::False, ""));
        assert_eq!((source.as_str(), kind.as_str()), (SOURCE, "X"));
    }

    #[test]
    fn fs_paths_put_root_first_once() {
        let p = fs_paths(
            Path::new("/host"),
            &[PathBuf::from("/var"), PathBuf::from("/host")],
        );
        assert_eq!(p, vec![PathBuf::from("/host"), PathBuf::from("/var")]);
    }

    #[tokio::test]
    async fn start_reports_every_enabled_check() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let cfg = HealthConfig {
            interval: Duration::from_secs(3600),
            procfs: dir.path().to_path_buf(), // no PSI here: that check is off
            rootfs: dir.path().to_path_buf(),
            runtime_socket: Some(dir.path().join("missing.sock")),
            ..HealthConfig::default()
        };
        let defaults = start(cfg, tx);
        let kinds: Vec<_> = defaults.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ContainerRuntimeUnhealthy",
                "ClockUnsynchronized",
                "ReadonlyRootFilesystem",
                "DiskSpacePressure",
                "InodePressure"
            ]
        );
        let mut seen = Vec::new();
        // Clock (maybe), read-only, disk, inodes (tempfs may lack inodes) and the runtime.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Ok(Some(Finding::Condition { kind, status, .. })) =
            tokio::time::timeout_at(deadline, rx.recv()).await
        {
            if kind == "ContainerRuntimeUnhealthy" {
                assert_eq!(status, Status::True, "a missing socket is a problem");
            }
            seen.push(kind);
            if seen.contains(&"ContainerRuntimeUnhealthy".to_string())
                && seen.contains(&"DiskSpacePressure".to_string())
                && seen.contains(&"ReadonlyRootFilesystem".to_string())
            {
                break;
            }
        }
        assert!(seen.contains(&"ContainerRuntimeUnhealthy".to_string()));
        assert!(seen.contains(&"DiskSpacePressure".to_string()));
        assert!(seen.contains(&"ReadonlyRootFilesystem".to_string()));
    }
}
