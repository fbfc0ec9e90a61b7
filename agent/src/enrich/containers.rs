//! cgroup path -> container identity, for the kubelet's cgroup layouts.
//!
//! The kubelet names pod cgroups after the pod's UID and QoS class; the runtime
//! names container cgroups after the container ID. Both cgroup drivers are seen
//! in the wild:
//!
//! | driver  | example path |
//! |---------|--------------|
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` |
//! | systemd | `/kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope` (Guaranteed QoS has no QoS level) |
//! | systemd | `.../docker-<id>.scope` (dockershim / cri-dockerd) |
//! | cgroupfs| `/kubepods/besteffort/pod<uid>/<id>` (the runtime is not in the path) |
//!
//! Anything below a container's cgroup (a process that made its own sub-cgroup)
//! belongs to that container. CRI-O's `crio-conmon-<id>.scope` is the runtime's
//! monitor process, not the container, and is reported as such.

/// Which container runtime created a container cgroup, when the path says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
    /// cgroupfs driver paths carry only the ID; the pod status says which runtime.
    Unknown,
}

/// What a cgroup path says about the pod and container it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// The pod UID in its canonical dashed form.
    pub pod_uid: String,
    pub qos: &'static str,
    /// `None` for the pod-level cgroup itself (and runtime helpers such as conmon).
    pub container: Option<ContainerRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// The full container ID (64 hex digits for the common runtimes).
    pub id: String,
}

/// Parses a cgroup path (relative to the cgroup root, as `/a/b/c`). Returns `None`
/// for cgroups outside `kubepods` and for names that are not what the kubelet writes.
pub fn parse(path: &str) -> Option<CgroupIdentity> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let first = parts.next()?;
    match first {
        "kubepods.slice" => parse_systemd(parts),
        "kubepods" => parse_cgroupfs(parts),
        _ => None,
    }
}

fn parse_systemd<'a>(parts: impl Iterator<Item = &'a str>) -> Option<CgroupIdentity> {
    let mut qos = "guaranteed";
    let mut pod_uid = None;
    let mut container = None;
    for part in parts {
        if pod_uid.is_none() {
            let slice = part.strip_suffix(".slice")?;
            if let Some(level) = slice.strip_prefix("kubepods-").and_then(qos_slice) {
                qos = level;
                continue;
            }
            // kubepods-pod<uid>.slice or kubepods-<qos>-pod<uid>.slice
            let (_, uid) = slice.rsplit_once("-pod")?;
            pod_uid = Some(canonical_uid(&uid.replace('_', "-"))?);
            continue;
        }
        if container.is_none() {
            container = Some(systemd_container(part));
            continue;
        }
        break; // deeper cgroups belong to the container found above
    }
    Some(CgroupIdentity {
        pod_uid: pod_uid?,
        qos,
        container: container.flatten(),
    })
}

/// `burstable.slice`'s level from `kubepods-burstable` (already stripped of `.slice`).
fn qos_slice(rest: &str) -> Option<&'static str> {
    match rest {
        "burstable" => Some("burstable"),
        "besteffort" => Some("besteffort"),
        _ => None,
    }
}

fn systemd_container(scope: &str) -> Option<ContainerRef> {
    let unit = scope.strip_suffix(".scope")?;
    let (runtime, id) = if let Some(id) = unit.strip_prefix("cri-containerd-") {
        (Runtime::Containerd, id)
    } else if let Some(id) = unit.strip_prefix("crio-") {
        if id.starts_with("conmon-") {
            return None; // CRI-O's monitor process for the container, not the container
        }
        (Runtime::Crio, id)
    } else if let Some(id) = unit.strip_prefix("docker-") {
        (Runtime::Docker, id)
    } else {
        return None;
    };
    container_id(id).map(|id| ContainerRef { runtime, id })
}

fn parse_cgroupfs<'a>(mut parts: impl Iterator<Item = &'a str>) -> Option<CgroupIdentity> {
    let mut part = parts.next()?;
    let qos = match part {
        "burstable" | "besteffort" => {
            let level = if part == "burstable" {
                "burstable"
            } else {
                "besteffort"
            };
            part = parts.next()?;
            level
        }
        _ => "guaranteed",
    };
    let pod_uid = canonical_uid(part.strip_prefix("pod")?)?;
    let container = parts.next().and_then(container_id).map(|id| ContainerRef {
        runtime: Runtime::Unknown,
        id,
    });
    Some(CgroupIdentity {
        pod_uid,
        qos,
        container,
    })
}

/// A container ID: hex, at least 12 digits (short IDs exist in hand-made setups).
fn container_id(s: &str) -> Option<String> {
    (s.len() >= 12 && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
}

/// A pod UID: 36 characters of hex in the 8-4-4-4-12 dashed pattern.
fn canonical_uid(s: &str) -> Option<String> {
    let groups: Vec<&str> = s.split('-').collect();
    let shape_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    shape_ok.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f6c1f6e-2b7a-4f1e-9d3c-5a8b7c6d5e4f";
    const ID: &str = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";

    fn container(runtime: Runtime) -> Option<ContainerRef> {
        Some(ContainerRef {
            runtime,
            id: ID.into(),
        })
    }

    #[test]
    fn systemd_driver_every_runtime_and_qos() {
        let u = UID.replace('-', "_");
        let cases = [
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
                ),
                "burstable",
                Runtime::Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{ID}.scope"
                ),
                "besteffort",
                Runtime::Crio,
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{ID}.scope"),
                "guaranteed",
                Runtime::Docker,
            ),
        ];
        for (path, qos, runtime) in cases {
            let id = parse(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(
                id,
                CgroupIdentity {
                    pod_uid: UID.into(),
                    qos,
                    container: container(runtime)
                },
                "{path}"
            );
        }
    }

    #[test]
    fn cgroupfs_driver_every_qos() {
        for (path, qos) in [
            (format!("/kubepods/burstable/pod{UID}/{ID}"), "burstable"),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), "besteffort"),
            (format!("/kubepods/pod{UID}/{ID}"), "guaranteed"),
        ] {
            let id = parse(&path).unwrap();
            assert_eq!(
                id,
                CgroupIdentity {
                    pod_uid: UID.into(),
                    qos,
                    container: container(Runtime::Unknown)
                }
            );
        }
    }

    #[test]
    fn pod_level_nested_and_helper_cgroups() {
        let u = UID.replace('-', "_");
        let pod = parse(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"
        ))
        .unwrap();
        assert_eq!((pod.pod_uid.as_str(), pod.container), (UID, None));
        let nested = parse(&format!("/kubepods/pod{UID}/{ID}/init.scope/child")).unwrap();
        assert_eq!(nested.container, container(Runtime::Unknown));
        let conmon = parse(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(conmon.container, None);
    }

    #[test]
    fn everything_else_is_not_a_pod() {
        for path in [
            "/",
            "",
            "/system.slice/containerd.service",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
            "/kubepods/burstable/podnot-a-uid/abc",
            "/kubepods.slice/kubepods-pod12.slice/cri-containerd-zz.scope",
            "/kubepods.slice/kubepods-burstable.slice/garbage",
            "//kubepods///",
            "/kubepods.slice/kubepods-pod\u{0}.slice",
        ] {
            assert_eq!(parse(path), None, "{path:?}");
        }
        // A malformed container name under a real pod still yields the pod.
        let p = parse(&format!("/kubepods/pod{UID}/not-hex")).unwrap();
        assert_eq!(p.container, None);
    }
}
