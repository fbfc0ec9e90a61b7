//! cgroup id -> the workload it belongs to: cgroup path, and for Kubernetes pods
//! the namespace, pod, container and image. This is what every per-cgroup series
//! is labelled with.
//!
//! Resolution is path first (`cgroups`), then the kubelet's naming (`containers`),
//! then the API's pod metadata (`pods`). Without pod metadata (API unreachable,
//! or not in Kubernetes) a container cgroup is still labelled by its container ID.
//! A cgroup that disappears keeps its labels for a grace period, so its final
//! values can still be scraped, and is then forgotten: series of containers that
//! are gone disappear, and cardinality stays bounded.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{cgroups::CgroupPaths, containers, pods::PodIndex};
use crate::export::families::Labels;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    pub cgroup: Arc<str>,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub container_id: String,
    pub image: String,
    /// The pod's controller (e.g. ReplicaSet web-5d8f), for events; not a series label.
    pub owner_kind: String,
    pub owner_name: String,
    /// The configured pod labels, as `label_<key>` (kube-state-metrics' naming).
    pub pod_labels: Vec<(&'static str, String)>,
}

impl Workload {
    /// Labels for kernel metrics: where it ran, as precisely as known.
    pub fn labels(&self) -> Labels {
        crate::labels!(
            "namespace" => self.namespace,
            "pod" => self.pod,
            "container" => self.container,
            "container_id" => self.container_id,
            "cgroup" => self.cgroup,
        )
        .into_iter()
        .chain(self.pod_labels.iter().cloned())
        .collect()
    }

    /// A workload known only by its cgroup id (it vanished before it was named).
    pub fn unnamed(id: u64) -> Workload {
        Workload {
            cgroup: Arc::from(format!("id:{id}").as_str()),
            ..Workload::default()
        }
    }
}

struct Known {
    workload: Arc<Workload>,
    gone_since: Option<Instant>,
}

pub struct Workloads {
    paths: CgroupPaths,
    pods: Option<PodIndex>,
    /// (pod label key, Prometheus label name) for each configured key.
    label_keys: Vec<(String, &'static str)>,
    known: HashMap<u64, Known>,
    grace: Duration,
}

impl Workloads {
    pub fn new(
        paths: CgroupPaths,
        pods: Option<PodIndex>,
        label_keys: &[String],
        grace: Duration,
    ) -> Workloads {
        // Label names are fixed for the agent's life: leaking them once gives the
        // `&'static str` keys every series shares.
        let label_keys = label_keys
            .iter()
            .map(|k| (k.clone(), &*Box::leak(label_name(k).into_boxed_str())))
            .collect();
        Workloads {
            paths,
            pods,
            label_keys,
            known: HashMap::new(),
            grace,
        }
    }

    /// The cgroup v2 root being resolved against, if one was found.
    pub fn cgroup_root(&self) -> Option<&std::path::Path> {
        self.paths.root()
    }

    /// The pod index, when the agent watches the API (for lookups by pod IP).
    pub fn pods(&self) -> Option<PodIndex> {
        self.pods.clone()
    }

    /// The workload of one cgroup id, now (for events such as an OOM kill).
    pub fn workload(&mut self, id: u64) -> Arc<Workload> {
        match self.paths.path(id) {
            Some(path) => self.refresh(id, path),
            None => self
                .known
                .get(&id)
                .map(|k| k.workload.clone())
                .unwrap_or_else(|| Arc::new(Workload::unnamed(id))),
        }
    }

    /// Resolves `ids`. Returns their workloads and the ids gone for longer than the
    /// grace period, whose kernel map entries the caller should drop.
    pub fn resolve(
        &mut self,
        ids: impl IntoIterator<Item = u64>,
    ) -> (HashMap<u64, Arc<Workload>>, HashSet<u64>) {
        let now = Instant::now();
        let mut out = HashMap::new();
        let mut expired = HashSet::new();
        for id in ids {
            match self.paths.path(id) {
                Some(path) => {
                    out.insert(id, self.refresh(id, path));
                }
                None => {
                    let known = self.known.entry(id).or_insert_with(|| Known {
                        workload: Arc::new(Workload::unnamed(id)),
                        gone_since: None,
                    });
                    let since = *known.gone_since.get_or_insert(now);
                    if now.duration_since(since) >= self.grace {
                        self.known.remove(&id);
                        expired.insert(id);
                    } else {
                        out.insert(id, known.workload.clone());
                    }
                }
            }
        }
        (out, expired)
    }

    fn refresh(&mut self, id: u64, path: Arc<str>) -> Arc<Workload> {
        let fresh = self.describe(path);
        match self.known.get_mut(&id) {
            Some(k) if *k.workload == fresh => {
                k.gone_since = None;
                k.workload.clone()
            }
            _ => {
                let w = Arc::new(fresh);
                self.known.insert(
                    id,
                    Known {
                        workload: w.clone(),
                        gone_since: None,
                    },
                );
                w
            }
        }
    }

    /// What ran in the cgroup at `cgroup` (a path relative to the v2 root), from
    /// the path and the pod metadata known now.
    pub fn describe(&self, cgroup: Arc<str>) -> Workload {
        let mut w = Workload {
            cgroup: cgroup.clone(),
            ..Workload::default()
        };
        let Some(identity) = containers::parse(&cgroup) else {
            return w;
        };
        if let Some(c) = &identity.container {
            w.container_id = c.id.clone();
        }
        let Some(pods) = &self.pods else { return w };
        let by_container = identity
            .container
            .as_ref()
            .and_then(|c| pods.container(&c.id));
        let pod = if let Some((pod, container)) = by_container {
            w.container = container.name.clone();
            w.image = container.image.clone();
            pod
        } else if let Some(pod) = pods.pod(&identity.pod_uid) {
            pod // known, but not this container (the sandbox, or not yet in status)
        } else {
            return w;
        };
        w.namespace = pod.namespace.clone();
        w.pod = pod.name.clone();
        w.owner_kind = pod.owner_kind.clone();
        w.owner_name = pod.owner_name.clone();
        w.pod_labels = self
            .label_keys
            .iter()
            .filter_map(|(key, name)| Some((*name, pod.labels.get(key)?.clone())))
            .collect();
        w
    }
}

/// `app.kubernetes.io/name` -> `label_app_kubernetes_io_name`.
fn label_name(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("label_{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_prometheus_safe() {
        assert_eq!(
            label_name("app.kubernetes.io/name"),
            "label_app_kubernetes_io_name"
        );
        assert_eq!(label_name("team"), "label_team");
    }

    #[test]
    fn gone_cgroups_keep_their_labels_for_the_grace_period_then_expire() {
        let root = std::env::temp_dir().join(format!("sonde-wl-test-{}", std::process::id()));
        let uid = "0f6c1f6e-2b7a-4f1e-9d3c-5a8b7c6d5e4f";
        let id = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";
        let dir = root.join(format!("kubepods/pod{uid}/{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir).unwrap());
        let paths = CgroupPaths::new(Some(root.clone()), Duration::ZERO);
        let mut w = Workloads::new(paths, None, &[], Duration::from_millis(300));
        let (found, gone) = w.resolve([ino]);
        assert!(gone.is_empty());
        assert_eq!(
            found[&ino].container_id, id,
            "labelled by container id without the API"
        );
        assert_eq!(&*found[&ino].cgroup, format!("/kubepods/pod{uid}/{id}"));
        std::fs::remove_dir_all(&root).unwrap();
        let (found, gone) = w.resolve([ino]);
        assert!(
            gone.is_empty() && found[&ino].container_id == id,
            "kept during the grace period"
        );
        std::thread::sleep(Duration::from_millis(350));
        let (found, gone) = w.resolve([ino]);
        assert!(found.is_empty() && gone.contains(&ino), "expired after it");
    }
}
