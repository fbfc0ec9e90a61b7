//! A Pod object -> the [`PodMeta`] we keep. Tolerant by design: the API server is the
//! source of truth, but a field we cannot use costs that field, never the pod or a panic.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{ContainerMeta, PodMeta};

/// `None` only for a pod without a UID, which nothing could look up anyway.
pub(super) fn pod_meta(pod: &Pod, label_keys: &[String]) -> Option<PodMeta> {
    let meta = &pod.metadata;
    let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let labels = meta
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| label_keys.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<BTreeMap<_, _>>();
    Some(PodMeta {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid,
        owner_kind: owner.map(|o| o.kind.clone()).unwrap_or_default(),
        owner_name: owner.map(|o| o.name.clone()).unwrap_or_default(),
        labels,
        containers: containers(pod),
        ips: ips(pod),
    })
}

/// The pod's own IPs; a finished pod's are free for reuse, and a hostNetwork
/// pod's are the node's, so neither names a sender.
fn ips(pod: &Pod) -> Vec<std::net::IpAddr> {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if host_network || finished {
        return Vec::new();
    }
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    let mut ips: Vec<std::net::IpAddr> = listed
        .chain(status.pod_ip.as_deref())
        .filter_map(|s| s.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Every container with a usable runtime ID, from the three status lists.
fn containers(pod: &Pod) -> Vec<ContainerMeta> {
    let (Some(status), spec) = (&pod.status, pod.spec.as_ref()) else {
        return Vec::new();
    };
    // The spec's image, by container name (unique across all three kinds in a pod).
    let spec_image = |name: &str| -> Option<String> {
        let spec = spec?;
        let mut regular = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        let ephemeral = || {
            spec.ephemeral_containers
                .iter()
                .flatten()
                .find(|c| c.name == name)
                .map(|c| c.image.clone())
        };
        regular
            .find(|c| c.name == name)
            .map(|c| c.image.clone())
            .or_else(ephemeral)
            .flatten()
    };
    let statuses = [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ];
    statuses
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|s| container(s, &spec_image))
        .collect()
}

fn container(
    status: &ContainerStatus,
    spec_image: &impl Fn(&str) -> Option<String>,
) -> Option<ContainerMeta> {
    // No ID yet (still pulling, or waiting on an init container): nothing to match a cgroup to.
    let (runtime, id) = split_container_id(status.container_id.as_deref()?)?;
    let image = Some(status.image.clone())
        .filter(|i| !i.is_empty())
        .or_else(|| spec_image(&status.name))
        .unwrap_or_default();
    Some(ContainerMeta {
        name: status.name.clone(),
        id,
        runtime: runtime.to_string(),
        image,
    })
}

/// `containerd://<id>` -> ("containerd", id). Other runtimes' prefixes, and IDs that are
/// not hex (cgroup paths only ever carry hex IDs), give `None`: no cgroup could match them.
fn split_container_id(raw: &str) -> Option<(&'static str, String)> {
    let (scheme, id) = raw.split_once("://")?;
    let runtime = match scheme {
        "containerd" => "containerd",
        "cri-o" => "cri-o",
        "docker" => "docker",
        _ => return None,
    };
    let hex = !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| (runtime, id.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    const ID_A: &str = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";
    const ID_B: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
    const ID_C: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

    fn keys() -> Vec<String> {
        vec!["app".into(), "team".into()]
    }

    fn status(name: &str, id: Option<&str>, image: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            container_id: id.map(Into::into),
            image: image.into(),
            ..Default::default()
        }
    }

    fn owner(kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller,
            ..Default::default()
        }
    }

    fn spec_container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("web-5d4f-abcde".into()),
                uid: Some("0f6c1f6e-2b7a-4f1e-9d3c-5a8b7c6d5e4f".into()),
                labels: Some(
                    [
                        ("app", "web"),
                        ("team", "checkout"),
                        ("pod-template-hash", "5d4f"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                ),
                owner_references: Some(vec![
                    owner("Something", "not-the-controller", None),
                    owner("ReplicaSet", "web-5d4f", Some(true)),
                ]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    spec_container("web", "nginx:1.27"),
                    spec_container("sidecar", "envoy:1.30"),
                ],
                init_containers: Some(vec![spec_container("migrate", "migrate:3")]),
                ephemeral_containers: Some(vec![EphemeralContainer {
                    name: "debugger".into(),
                    image: Some("busybox:1.36".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![
                    status(
                        "web",
                        Some(&format!("containerd://{ID_A}")),
                        "docker.io/library/nginx:1.27",
                    ),
                    status("sidecar", None, "envoy:1.30"), // still being created
                ]),
                init_container_statuses: Some(vec![status(
                    "migrate",
                    Some(&format!("cri-o://{ID_B}")),
                    "",
                )]),
                ephemeral_container_statuses: Some(vec![status(
                    "debugger",
                    Some(&format!("docker://{ID_C}")),
                    "",
                )]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn maps_identity_owner_labels_and_every_kind_of_container() {
        let m = pod_meta(&pod(), &keys()).unwrap();
        assert_eq!(
            (m.namespace.as_str(), m.name.as_str()),
            ("shop", "web-5d4f-abcde")
        );
        assert_eq!(m.uid, "0f6c1f6e-2b7a-4f1e-9d3c-5a8b7c6d5e4f");
        assert_eq!(
            (m.owner_kind.as_str(), m.owner_name.as_str()),
            ("ReplicaSet", "web-5d4f")
        );
        let labels: Vec<_> = m
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("app", "web"), ("team", "checkout")]);
        let got: Vec<_> = m
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.id.as_str(),
                    c.runtime.as_str(),
                    c.image.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("web", ID_A, "containerd", "docker.io/library/nginx:1.27"),
                ("migrate", ID_B, "cri-o", "migrate:3"), // image from the spec
                ("debugger", ID_C, "docker", "busybox:1.36"), // ephemeral, image from the spec
            ]
        );
    }

    #[test]
    fn bare_pod_has_no_owner_and_missing_status_has_no_containers() {
        let mut p = pod();
        p.metadata.owner_references = None;
        p.status = None;
        let m = pod_meta(&p, &keys()).unwrap();
        assert_eq!((m.owner_kind.as_str(), m.owner_name.as_str()), ("", ""));
        assert!(m.containers.is_empty());

        let mut p = pod();
        p.spec = None;
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![status(
            "migrate",
            Some(&format!("cri-o://{ID_B}")),
            "",
        )]);
        let m = pod_meta(&p, &keys()).unwrap();
        assert_eq!(
            m.containers[1].image, "",
            "no status image and no spec: empty, not a panic"
        );
    }

    #[test]
    fn malformed_container_ids_skip_the_container_only() {
        for bad in [
            "",
            "containerd://",
            "containerd:/abc123",
            ID_A,
            "rkt://abc123",
            "containerd://not-hex!",
            "://abc",
        ] {
            let mut p = pod();
            p.status.as_mut().unwrap().container_statuses =
                Some(vec![status("web", Some(bad), "nginx")]);
            let m = pod_meta(&p, &keys()).unwrap();
            let names: Vec<_> = m.containers.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["migrate", "debugger"], "{bad:?}");
        }
    }

    #[test]
    fn upper_case_ids_are_lowered_like_cgroup_paths() {
        let mut p = pod();
        let upper = ID_A.to_ascii_uppercase();
        p.status.as_mut().unwrap().container_statuses = Some(vec![status(
            "web",
            Some(&format!("containerd://{upper}")),
            "nginx",
        )]);
        assert_eq!(pod_meta(&p, &keys()).unwrap().containers[0].id, ID_A);
    }

    #[test]
    fn pod_without_uid_is_skipped_and_empty_metadata_does_not_panic() {
        let mut p = pod();
        p.metadata.uid = None;
        assert!(pod_meta(&p, &keys()).is_none());
        let empty = Pod {
            metadata: ObjectMeta {
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let m = pod_meta(&empty, &keys()).unwrap();
        assert_eq!(
            (m.name.as_str(), m.containers.len(), m.labels.len()),
            ("", 0, 0)
        );
    }
}
