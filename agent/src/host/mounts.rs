//! The mount table as node_exporter's `filesystem` collector reads it, and its
//! default exclusions.
//!
//! Hand-parsed: procfs's `MountEntry` does not decode `\040` (space) in mount
//! points, and node_exporter decodes exactly `\040` and `\011`.

use super::source::Error;

#[derive(Debug, PartialEq)]
pub(super) struct Mount<'a> {
    pub device: &'a str,
    /// As the host sees it: `rootfs` already stripped.
    pub mount_point: String,
    pub fs_type: &'a str,
    pub read_only: bool,
}

/// Parses /proc/1/mounts. `rootfs` is the prefix to strip when the agent's own
/// mount table is read (the host's `/` mounted at `/host`); "/" strips nothing.
pub(super) fn parse<'a>(text: &'a str, rootfs: &str) -> Result<Vec<Mount<'a>>, Error> {
    let mut mounts = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Error::parse(format!("mounts: malformed line {line:?}")));
        };
        let mount_point = mount_point.replace("\\040", " ").replace("\\011", "\t");
        mounts.push(Mount {
            device,
            mount_point: strip_rootfs(mount_point, rootfs),
            fs_type,
            read_only: options.split(',').any(|o| o == "ro"),
        });
    }
    Ok(mounts)
}

/// node_exporter's `rootfsStripPrefix`: a plain string prefix, "" becoming "/".
/// (A trailing "/" on `rootfs` is ignored, which node_exporter does not do.)
fn strip_rootfs(mount_point: String, rootfs: &str) -> String {
    let rootfs = rootfs.trim_end_matches('/');
    if rootfs.is_empty() {
        return mount_point;
    }
    match mount_point.strip_prefix(rootfs) {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => mount_point,
    }
}

/// node_exporter 1.5's default `--collector.filesystem.mount-points-exclude`:
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
/// (Debian's package patches its own default; upstream's is the one Kubernetes
/// node_exporter images ship.)
pub(super) fn mount_point_excluded(mount_point: &str) -> bool {
    let Some(path) = mount_point.strip_prefix('/') else {
        return false;
    };
    let whole = ["dev", "proc", "sys"].iter().any(|dir| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let below = [
        "run/credentials/",
        "var/lib/docker/",
        "var/lib/containers/storage/",
    ]
    .iter()
    .any(|dir| path.strip_prefix(dir).is_some_and(|rest| !rest.is_empty()));
    whole || below
}

/// node_exporter 1.5's default `--collector.filesystem.fs-types-exclude`.
pub(super) fn fs_type_excluded(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "autofs"
            | "binfmt_misc"
            | "bpf"
            | "cgroup"
            | "cgroup2"
            | "configfs"
            | "debugfs"
            | "devpts"
            | "devtmpfs"
            | "fusectl"
            | "hugetlbfs"
            | "iso9660"
            | "mqueue"
            | "nsfs"
            | "overlay"
            | "proc"
            | "procfs"
            | "pstore"
            | "rpc_pipefs"
            | "securityfs"
            | "selinuxfs"
            | "squashfs"
            | "sysfs"
            | "tracefs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_like_node_exporter() {
        let text =
            "/dev/vda / ext4 rw,relatime 0 0\n/dev/sdb /mnt/my\\040disk\\011x xfs ro,noatime 0 0\n";
        let mounts = parse(text, "/").unwrap();
        assert_eq!(
            mounts[0],
            Mount {
                device: "/dev/vda",
                mount_point: "/".into(),
                fs_type: "ext4",
                read_only: false
            }
        );
        assert_eq!(mounts[1].mount_point, "/mnt/my disk\tx");
        assert!(mounts[1].read_only);
    }

    #[test]
    fn strips_the_rootfs_prefix() {
        let mounts = parse(
            "/dev/vda /host ext4 rw 0 0\n/dev/vdb /host/data ext4 rw 0 0\n/dev/vdc /other ext4 rw 0 0\n",
            "/host",
        )
        .unwrap();
        let points: Vec<_> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/", "/data", "/other"]);
        assert_eq!(strip_rootfs("/host/data".into(), "/host/"), "/data");
    }

    #[test]
    fn excludes_like_node_exporter() {
        for mp in [
            "/dev",
            "/dev/shm",
            "/proc",
            "/sys/fs/cgroup",
            "/run/credentials/x.service",
            "/var/lib/docker/overlay2/a",
        ] {
            assert!(mount_point_excluded(mp), "{mp}");
        }
        for mp in [
            "/",
            "/devices",
            "/run",
            "/run/credentials",
            "/var/lib/docker",
            "/var/lib/containers/storage",
            "/home",
            "/mnt",
        ] {
            assert!(!mount_point_excluded(mp), "{mp}");
        }
        assert!(fs_type_excluded("cgroup2") && fs_type_excluded("overlay"));
        assert!(!fs_type_excluded("ext4") && !fs_type_excluded("tmpfs"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("/dev/vda / ext4\n", "/").is_err());
        assert!(parse("", "/").unwrap().is_empty());
    }
}
