//! Pod metadata from the Kubernetes API: which pod and container a cgroup belongs to.
//!
//! [`spawn_watcher`] list-watches this node's pods (field selector `spec.nodeName=<node>`)
//! with kube's `watcher` and keeps a [`PodIndex`]: pods by UID (what `containers::parse`
//! finds in a pod cgroup's path), containers by ID (what it finds in a container cgroup's),
//! and pods by IP (who sent a span to the node-local receiver).
//!
//! Choices, and why:
//! - Only this node's pods: an agent on every node watching every pod would put the whole
//!   cluster's pod churn on each agent and the API server, for metadata it cannot use.
//! - A relist (at start, after a `410 Gone`, after an outage the watch cannot resume from)
//!   replaces the index in one swap when it completes, so pods deleted while we were not
//!   watching disappear, and lookups never see a half-listed index.
//! - Errors never clear the index: while the API server is away, the pods on this node
//!   keep running, and their last known metadata is still the best label we have.
//! - Finished pods (Succeeded/Failed) stay until the API deletes them: their cgroups'
//!   final numbers still deserve a name.

mod meta;
mod watch;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, PoisonError, RwLock},
};

pub use watch::{client, spawn_watcher};

#[derive(Clone, Debug)]
pub struct PodConfig {
    /// This node's name as the API knows it (the downward API's `spec.nodeName`).
    pub node_name: String,
    /// `None`: `kube::Config::infer()` (KUBECONFIG, ~/.kube/config, else the in-cluster
    /// service account).
    pub kubeconfig: Option<PathBuf>,
    /// The pod labels worth keeping; all others are dropped to bound label cardinality.
    pub label_keys: Vec<String>,
}

#[derive(Debug)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The controller owner's kind and name (`ownerReferences[]` with `controller: true`),
    /// as the API says: a Deployment's pod is owned by its ReplicaSet, and we do not guess
    /// the Deployment from the ReplicaSet's name. Both empty for a pod without a controller.
    pub owner_kind: String,
    pub owner_name: String,
    /// Only the keys in [`PodConfig::label_keys`] that the pod has.
    pub labels: BTreeMap<String, String>,
    /// Containers that have a runtime ID: regular, then init, then ephemeral ones.
    pub containers: Vec<ContainerMeta>,
    /// `status.podIPs`; empty for a hostNetwork pod, whose IPs are the node's.
    pub ips: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMeta {
    pub name: String,
    /// The bare ID in lower case (no `containerd://`), as cgroup paths carry it.
    pub id: String,
    /// `containerd`, `cri-o` or `docker`, from the status's ID prefix.
    pub runtime: String,
    /// The image the status reports, else the one the spec asks for.
    pub image: String,
}

/// This node's pods, shared between the watcher (the one writer) and the lookups.
/// Cheap to clone: every clone sees the same index.
#[derive(Clone, Debug, Default)]
pub struct PodIndex {
    inner: Arc<RwLock<Snapshot>>,
}

#[derive(Debug, Default)]
struct Snapshot {
    pods: HashMap<String, Arc<PodMeta>>,
    /// Container ID -> its pod, for the cgroup -> container lookup.
    by_container: HashMap<String, Arc<PodMeta>>,
    /// Pod IP -> its pod, for the peer address -> pod lookup.
    by_ip: HashMap<IpAddr, Arc<PodMeta>>,
}

impl PodIndex {
    pub fn pod(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.read(|s| s.pods.get(uid).cloned())
    }

    /// (pod, container) for a container id; also finds init and ephemeral containers.
    pub fn container(&self, container_id: &str) -> Option<(Arc<PodMeta>, ContainerMeta)> {
        let pod = self.read(|s| s.by_container.get(container_id).cloned())?;
        let container = pod
            .containers
            .iter()
            .find(|c| c.id == container_id)?
            .clone();
        Some((pod, container))
    }

    /// The running pod with this IP (pod IPs are reused once a pod is gone).
    pub fn by_ip(&self, ip: IpAddr) -> Option<Arc<PodMeta>> {
        self.read(|s| s.by_ip.get(&ip).cloned())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.read(|s| s.pods.len())
    }

    /// Adds a pod or replaces the one with its UID.
    fn upsert(&self, pod: PodMeta) {
        let pod = Arc::new(pod);
        self.write(|s| {
            s.remove(&pod.uid);
            s.insert(pod);
        });
    }

    fn remove(&self, uid: &str) {
        self.write(|s| s.remove(uid));
    }

    /// Replaces everything at once: the result of a complete (re)list.
    fn replace(&self, pods: Vec<PodMeta>) {
        let mut fresh = Snapshot::default();
        for pod in pods {
            fresh.insert(Arc::new(pod));
        }
        self.write(|s| *s = fresh);
    }

    // A panic elsewhere while holding the lock cannot leave the maps half-updated in a way
    // that matters for labels, so a poisoned lock is used as is rather than spreading panics.
    fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Snapshot {
    fn insert(&mut self, pod: Arc<PodMeta>) {
        for c in &pod.containers {
            self.by_container.insert(c.id.clone(), pod.clone());
        }
        for ip in &pod.ips {
            self.by_ip.insert(*ip, pod.clone());
        }
        self.pods.insert(pod.uid.clone(), pod);
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.pods.remove(uid) else {
            return;
        };
        for c in &old.containers {
            // Only if the ID still points at this pod: never unlink another pod's container.
            if self.by_container.get(&c.id).is_some_and(|p| p.uid == uid) {
                self.by_container.remove(&c.id);
            }
        }
        for ip in &old.ips {
            if self.by_ip.get(ip).is_some_and(|p| p.uid == uid) {
                self.by_ip.remove(ip);
            }
        }
    }
}
