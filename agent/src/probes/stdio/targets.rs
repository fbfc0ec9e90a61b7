//! Which cgroups the tap listens to: every container cgroup in the v2 tree whose
//! pod has no log directory under the log dir (`<ns>_<pod>_<uid>`). Containers
//! with log files are tailed from those; tapping them too would ship every line twice.

use std::{
    collections::BTreeSet, fs, os::unix::fs::MetadataExt, path::Path, sync::atomic::AtomicU64,
};

use crate::{container_stats::walk, enrich::containers};

/// Cgroup ids (directory inode numbers) of the container cgroups to tap.
pub fn find(cgroup_v2_root: &Path, log_dir: &Path) -> BTreeSet<u64> {
    let logged = pods_with_logs(log_dir);
    containers_where(cgroup_v2_root, |pod_uid| !logged.contains(pod_uid))
}

/// Cgroup ids of every container cgroup (the HTTP probe follows them all).
pub fn containers(cgroup_v2_root: &Path) -> BTreeSet<u64> {
    containers_where(cgroup_v2_root, |_| true)
}

/// Makes the cgroup-id set `map` (last written as `current`) hold `want`.
/// Returns the ids that did not fit (the map is full).
pub fn sync(
    map: &mut aya::maps::HashMap<aya::maps::MapData, u64, u8>,
    current: &mut BTreeSet<u64>,
    want: BTreeSet<u64>,
) -> Vec<u64> {
    let mut refused = Vec::new();
    for id in want.difference(current) {
        if map.insert(id, 1, 0).is_err() {
            refused.push(*id);
        }
    }
    for id in current.difference(&want) {
        let _ = map.remove(id);
    }
    *current = want;
    refused
}

fn containers_where(cgroup_v2_root: &Path, keep: impl Fn(&str) -> bool) -> BTreeSet<u64> {
    // The walk also decides which hierarchy serves each metric (its `Layout`),
    // which the tap ignores: no v1 roots to look at.
    let v1 = walk::V1Roots::new(Path::new("/nonexistent"));
    let unrecognized = AtomicU64::new(0);
    let mut out = BTreeSet::new();
    for c in walk::find(cgroup_v2_root, true, &v1, &unrecognized) {
        let Some(identity) = containers::parse(&c.rel) else {
            continue;
        };
        if identity.container.is_none() || !keep(&identity.pod_uid) {
            continue;
        }
        if let Ok(md) = fs::metadata(cgroup_v2_root.join(c.rel.trim_start_matches('/'))) {
            out.insert(md.ino());
        }
    }
    out
}

/// Pod uids with a directory in the log dir (`<namespace>_<pod>_<uid>`).
fn pods_with_logs(log_dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(log_dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.rsplit_once('_').map(|(_, uid)| uid.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_containers_of_pods_without_log_dirs() {
        let cg = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let with = "11111111-2222-3333-4444-555555555555";
        let without = "66666666-7777-8888-9999-000000000000";
        let id = "a".repeat(64);
        let mut expected = BTreeSet::new();
        for uid in [with, without] {
            let pod = format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
                uid.replace('-', "_")
            );
            let container = cg
                .path()
                .join(&pod)
                .join(format!("cri-containerd-{id}.scope"));
            fs::create_dir_all(&container).unwrap();
            if uid == without {
                expected.insert(fs::metadata(&container).unwrap().ino());
            }
        }
        fs::create_dir_all(logs.path().join(format!("default_web_{with}"))).unwrap();
        assert_eq!(find(cg.path(), logs.path()), expected);
        // No log dir at all: every container is tapped.
        assert_eq!(find(cg.path(), &logs.path().join("missing")).len(), 2);
    }
}
