//! Finding the pod and container cgroups, and deciding once per kubepods root which
//! hierarchy serves each group of values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::parse;
use crate::enrich::containers;

/// v1 blkio's per-disk bytes under the BFQ I/O scheduler, descendants included.
pub const BFQ_BYTES: &str = "blkio.bfq.io_service_bytes_recursive";

/// The kubelet's top-level cgroup: systemd driver, cgroupfs driver.
const TOPS: [&str; 2] = ["kubepods.slice", "kubepods"];

/// The cgroup v1 hierarchies read on hybrid and v1-only hosts. `cpu` and `cpuacct`
/// are often one mount (`cpu,cpuacct`) with both names as links; either works.
#[derive(Debug)]
pub struct V1Roots {
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub memory: PathBuf,
    pub blkio: PathBuf,
    pub pids: PathBuf,
}

impl V1Roots {
    pub fn new(root: &Path) -> V1Roots {
        V1Roots {
            cpu: root.join("cpu"),
            cpuacct: root.join("cpuacct"),
            memory: root.join("memory"),
            blkio: root.join("blkio"),
            pids: root.join("pids"),
        }
    }
}

/// Which hierarchy a group of values comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Src {
    V2,
    V1,
    #[default]
    Off,
}

/// The files serving each group of values below one kubepods root. The kubelet
/// creates every pod's cgroup in every hierarchy and enables the same v2 controllers
/// all the way down, so one look at the root decides for all of them. That spares a
/// failed open per container and value on hybrid hosts, and it lets a file missing
/// where the layout says it must be count as an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// CPU totals: v2 keeps them without any controller.
    pub cpu: Src,
    /// CFS bandwidth counters: v2 only with the cpu controller enabled.
    pub cfs: Src,
    pub memory: Src,
    pub io: Src,
    pub pids: Src,
    /// PSI: cgroup v2 only, and only on kernels with it enabled.
    pub psi: bool,
    /// v1 blkio: BFQ's stats have data. runc (so cAdvisor) reads them before the
    /// throttle stats, which Linux 6.10+ fills only on disks with a throttle rule.
    pub bfq: bool,
}

impl Layout {
    fn detect(home: &Path, v2: bool, v1: &V1Roots, top: &str) -> Layout {
        let v2_dir = home.join(top);
        let enabled = if v2 {
            fs::read_to_string(v2_dir.join("cgroup.subtree_control")).unwrap_or_default()
        } else {
            String::new()
        };
        let pick = |in_v2: bool, v1_root: &Path| {
            if in_v2 {
                Src::V2
            } else if v1_root.join(top).is_dir() {
                Src::V1
            } else {
                Src::Off
            }
        };
        let controller = |name: &str| enabled.split_whitespace().any(|c| c == name);
        let io = pick(controller("io"), &v1.blkio);
        let bfq = io == Src::V1
            && fs::read_to_string(v1.blkio.join(top).join(BFQ_BYTES))
                .ok()
                .and_then(|t| parse::blkio(&t))
                .is_some_and(|devices| !devices.is_empty());
        Layout {
            cpu: pick(v2, &v1.cpuacct),
            cfs: pick(controller("cpu"), &v1.cpu),
            memory: pick(controller("memory"), &v1.memory),
            io,
            pids: pick(controller("pids"), &v1.pids),
            psi: v2 && v2_dir.join("cpu.pressure").exists(),
            bfq,
        }
    }
}

/// The hierarchy to walk: the v2 tree when the kubelet's cgroups are in it, else
/// a v1 hierarchy (v1-only hosts). `true` with a v2 tree.
pub fn home<'a>(v2: Option<&'a Path>, v1: &'a V1Roots) -> Option<(&'a Path, bool)> {
    let has_pods = |root: &Path| TOPS.iter().any(|t| root.join(t).is_dir());
    if let Some(root) = v2.filter(|r| has_pods(r)) {
        return Some((root, true));
    }
    [&v1.cpuacct, &v1.memory]
        .into_iter()
        .find(|r| has_pods(r))
        .map(|r| (r.as_path(), false))
}

/// A pod-level or container cgroup, by its path relative to the hierarchy root.
#[derive(Debug)]
pub struct Candidate {
    pub rel: Arc<str>,
    pub layout: Layout,
}

/// Where the walk stands: above the pods (the root, QoS slices) or in a pod.
#[derive(Clone, Copy)]
enum Level {
    Above,
    Pod,
}

/// Every pod-level and container cgroup below the kubepods root(s) of `home`,
/// sorted by path. Not below a container: processes there (a container that made
/// its own sub-cgroups) are the container's and already in its totals.
/// Directories below kubepods whose names the kubelet does not write are skipped
/// and counted in `unrecognized` (with a debug line naming them).
pub fn find(home: &Path, v2: bool, v1: &V1Roots, unrecognized: &AtomicU64) -> Vec<Candidate> {
    let mut out = Vec::new();
    for top in TOPS {
        let dir = home.join(top);
        if !dir.is_dir() {
            continue;
        }
        let layout = Layout::detect(home, v2, v1, top);
        // (directory, path relative to home, level, path depth)
        let mut stack = vec![(dir, format!("/{top}"), Level::Above, 1)];
        while let Some((dir, rel, level, depth)) = stack.pop() {
            // Directories vanish mid-walk all the time (containers stop): skip, don't fail.
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    unrecognized.fetch_add(1, Ordering::Relaxed); // the kubelet writes ASCII
                    tracing::debug!(dir = %entry.path().display(), "cgroup name is not UTF-8; skipped");
                    continue;
                };
                let child = format!("{rel}/{name}");
                let identity = containers::parse(&child);
                match (level, identity.map(|i| i.container.is_some())) {
                    // kubepods -> QoS slice -> pod: pods are at depth 2 or 3.
                    (Level::Above, None) if depth < 2 => {
                        stack.push((entry.path(), child, Level::Above, depth + 1))
                    }
                    (Level::Above, Some(false)) => {
                        out.push(Candidate {
                            rel: Arc::from(child.as_str()),
                            layout,
                        });
                        stack.push((entry.path(), child, Level::Pod, depth + 1));
                    }
                    (Level::Pod, Some(true)) => out.push(Candidate {
                        rel: Arc::from(child),
                        layout,
                    }),
                    // Runtime helpers: CRI-O's monitor process sits beside its container.
                    (Level::Pod, Some(false)) if name.starts_with("crio-conmon-") => {}
                    _ => {
                        unrecognized.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(cgroup = %child, "not a cgroup name the kubelet writes; skipped");
                    }
                }
            }
        }
    }
    out.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    out
}
