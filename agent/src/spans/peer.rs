//! The pod behind a span's sender: by its IP (a pod on the pod network), else
//! by the process holding the connection's other end (loopback, hostNetwork
//! pods), through its cgroup. Answers are cached per connection for a minute:
//! an SDK exports over one long-lived connection, and the process scan is the
//! expensive part.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::socket_owner;
use crate::enrich::{pods::PodMeta, workloads::Workload, workloads::Workloads};

const TTL: Duration = Duration::from_secs(60);
/// Past this many connections the cache starts over (a bound, not an LRU: reaching
/// it takes thousands of short-lived connections, which cost a lookup each anyway).
const MAX_CACHED: usize = 4096;

type Cached = (Instant, Option<Arc<Workload>>);

pub struct Peers {
    workloads: Arc<Mutex<Workloads>>,
    procfs: PathBuf,
    cache: Mutex<HashMap<(SocketAddr, SocketAddr), Cached>>,
}

impl Peers {
    pub fn new(workloads: Arc<Mutex<Workloads>>, procfs: PathBuf) -> Peers {
        Peers {
            workloads,
            procfs,
            cache: Mutex::default(),
        }
    }

    /// The sender of a request that came from `peer` to our `ours`; `None` when
    /// it is neither a known pod IP nor a process on this host.
    pub fn sender(&self, peer: SocketAddr, ours: SocketAddr) -> Option<Arc<Workload>> {
        let key = (peer, ours);
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, w)) = cache.get(&key)
                && now.duration_since(*at) < TTL
            {
                return w.clone();
            }
        }
        let found = self.lookup(peer, ours).map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, (now, found.clone()));
        found
    }

    fn lookup(&self, peer: SocketAddr, ours: SocketAddr) -> Option<Workload> {
        let workloads = || {
            self.workloads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        let pods = workloads().pods();
        if let Some(pod) = pods.and_then(|p| p.by_ip(peer.ip().to_canonical())) {
            return Some(of_pod(&pod));
        }
        let pid = socket_owner::pid_of_peer(&self.procfs, peer, ours)?;
        let path = socket_owner::cgroup_v2_path(&self.procfs, pid)?;
        let w = workloads().describe(path.into());
        (!w.pod.is_empty() || !w.container_id.is_empty()).then_some(w)
    }
}

/// A pod found by IP: its container is known only when it has just one.
fn of_pod(pod: &PodMeta) -> Workload {
    let only = match pod.containers.as_slice() {
        [c] => Some(c),
        _ => None,
    };
    Workload {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container: only.map(|c| c.name.clone()).unwrap_or_default(),
        container_id: only.map(|c| c.id.clone()).unwrap_or_default(),
        ..Workload::default()
    }
}
