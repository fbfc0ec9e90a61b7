//! Labels from a kubelet log path: `<log-dir>/<namespace>_<pod>_<uid>/<container>/<n>.log`.
//! Namespace and pod names cannot contain `_` (DNS labels/subdomains), so the
//! directory name splits unambiguously at the first two underscores.

use std::path::Path;

/// Who wrote a log file: the resource attributes its lines carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodContainer {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
}

/// Parses `<namespace>_<pod>_<uid>` and the container directory name; `None` for
/// anything else (such directories are not kubelet's and are skipped).
pub fn parse_pod_dir(pod_dir: &str, container: &str) -> Option<PodContainer> {
    let mut parts = pod_dir.splitn(3, '_');
    let namespace = parts.next().filter(|s| !s.is_empty())?;
    let pod = parts.next().filter(|s| !s.is_empty())?;
    let uid = parts.next().filter(|s| !s.is_empty())?;
    if container.is_empty() {
        return None;
    }
    Some(PodContainer {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        uid: uid.to_string(),
        container: container.to_string(),
    })
}

/// The labels for a log file's path (its two parent directories).
pub fn parse_log_path(file: &Path) -> Option<PodContainer> {
    let container_dir = file.parent()?;
    let pod_dir = container_dir.parent()?;
    parse_pod_dir(
        pod_dir.file_name()?.to_str()?,
        container_dir.file_name()?.to_str()?,
    )
}

/// A live log file name: `*.log`. Rotated (`0.log.20240101-000000`, `0.log.1`) and
/// compressed (`*.gz`) names are not followed on their own.
pub fn is_live_log_name(name: &str) -> bool {
    name.ends_with(".log") && name.len() > 4
}

/// A rotated sibling that may still hold lines we have not read: any other plain
/// file in the container directory except compressed ones.
pub fn is_rotated_candidate(name: &str) -> bool {
    const COMPRESSED: [&str; 6] = [".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip"];
    !name.starts_with('.')
        && !name.ends_with(".tmp")
        && !COMPRESSED.iter().any(|ext| name.ends_with(ext))
}

/// The live log a rotated name came from: `0.log.20240101-000000` and `0.log.1`
/// -> `0.log`; a live name is its own. `None` for names that are neither.
pub fn live_name_of(name: &str) -> Option<&str> {
    if is_live_log_name(name) {
        return Some(name);
    }
    let end = name.find(".log.")? + ".log".len();
    Some(&name[..end]).filter(|live| live.len() > 4)
}

/// A plain rotated sibling of the live log `live_name` (`0.log` -> `0.log.<suffix>`).
pub fn is_rotation_of(name: &str, live_name: &str) -> bool {
    name.len() > live_name.len() + 1
        && name.starts_with(live_name)
        && name.as_bytes()[live_name.len()] == b'.'
        && is_rotated_candidate(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_dirs() {
        let p = parse_log_path(Path::new(
            "/var/log/pods/kube-system_coredns-5d78c9869d-abcde_1b2c3d4e-0000/coredns/0.log",
        ))
        .unwrap();
        assert_eq!(p.namespace, "kube-system");
        assert_eq!(p.pod, "coredns-5d78c9869d-abcde");
        assert_eq!(p.uid, "1b2c3d4e-0000");
        assert_eq!(p.container, "coredns");
        for bad in ["nounderscore", "ns_pod", "_pod_uid", "ns__uid", "ns_pod_"] {
            assert_eq!(parse_pod_dir(bad, "c"), None, "{bad}");
        }
        assert_eq!(parse_pod_dir("a_b_c_d", "c").unwrap().uid, "c_d");
        assert!(parse_log_path(Path::new("0.log")).is_none());
    }

    #[test]
    fn names() {
        assert!(is_live_log_name("0.log"));
        assert!(!is_live_log_name("0.log.20240101-000000"));
        assert!(!is_live_log_name(".log"));
        assert!(is_rotated_candidate("0.log.20240101-000000"));
        assert!(is_rotated_candidate("0.log.1"));
        assert!(!is_rotated_candidate("0.log.20240101-000000.gz"));
        assert_eq!(live_name_of("0.log"), Some("0.log"));
        assert_eq!(live_name_of("0.log.20240101-000000"), Some("0.log"));
        assert_eq!(live_name_of("12.log.1"), Some("12.log"));
        assert_eq!(live_name_of("notes.txt"), None);
        assert_eq!(live_name_of(".log.1"), None);
        assert!(is_rotation_of("0.log.20240101-000000", "0.log"));
        assert!(!is_rotation_of("0.log.20240101-000000.gz", "0.log"));
        assert!(!is_rotation_of("10.log.1", "0.log"));
        assert!(!is_rotation_of("0.log", "0.log"));
        assert!(!is_rotation_of("0.logx", "0.log"));
    }
}
