//! OOM kills from the probe's ring buffer, as `OOMKilling` events naming the
//! pod and container killed. The message starts `Killed process <pid> (` like
//! the kernel's own line, so the hub can join the two by pid.

use super::{OomKill, SOURCE, window::describe};
use crate::detect::problem::Finding;

pub(super) const REASON: &str = "OOMKilling";

pub(super) fn finding(k: &OomKill) -> Finding {
    let (where_, pod) = describe(&k.workload);
    let message = format!("Killed process {} ({}) in {where_}", k.pid, k.comm);
    Finding::Event {
        source: SOURCE.to_string(),
        reason: REASON.to_string(),
        message,
        time: k.time,
        pods: pod.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::SystemTime};

    use super::*;
    use crate::enrich::workloads::Workload;

    fn kill(w: Workload) -> OomKill {
        OomKill {
            pid: 4242,
            tgid: 4242,
            comm: "stress".into(),
            cgroup_id: 7,
            workload: Arc::new(w),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn names_pod_and_container() {
        let w = Workload {
            cgroup: Arc::from("/kubepods/burstable/podx/abc"),
            namespace: "ns".into(),
            pod: "web-1".into(),
            container: "app".into(),
            ..Workload::default()
        };
        let Finding::Event {
            source,
            reason,
            message,
            pods,
            time,
        } = finding(&kill(w))
        else {
            panic!("not an event");
        };
        assert_eq!((source.as_str(), reason.as_str()), (SOURCE, REASON));
        assert_eq!(
            message,
            "Killed process 4242 (stress) in pod ns/web-1 container app"
        );
        assert_eq!(time, SystemTime::UNIX_EPOCH);
        assert_eq!(pods.len(), 1);
        assert_eq!(
            (
                pods[0].namespace.as_str(),
                pods[0].pod.as_str(),
                pods[0].container.as_str()
            ),
            ("ns", "web-1", "app")
        );
    }

    #[test]
    fn without_a_pod_names_the_cgroup() {
        let w = Workload {
            cgroup: Arc::from("/system.slice/foo.service"),
            ..Workload::default()
        };
        let Finding::Event { message, pods, .. } = finding(&kill(w)) else {
            panic!("not an event");
        };
        assert_eq!(
            message,
            "Killed process 4242 (stress) in cgroup /system.slice/foo.service"
        );
        assert!(pods.is_empty());
    }
}
