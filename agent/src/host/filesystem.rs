//! `filesystem`: size, free space and inodes of each mounted filesystem, from
//! /proc/1/mounts (the host's view, not the agent's) and statfs(2) under `rootfs`,
//! with node_exporter 1.5's default mount-point and filesystem-type exclusions.
//!
//! A mount that cannot be stat'ed is served as `node_filesystem_device_error 1`
//! with `node_filesystem_readonly 0` and no sizes, as in node_exporter.

use std::{collections::HashSet, time::Duration};

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    mounts::{self, Mount},
    source::{Collect, Error, Sources, read},
    statfs::{Statfs, Usage},
};
use crate::export::families;

/// node_exporter's `--collector.filesystem.mount-timeout` default.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Filesystem {
    statfs: Statfs,
}

impl Filesystem {
    pub fn new() -> Self {
        Filesystem {
            statfs: Statfs::new(MOUNT_TIMEOUT),
        }
    }
}

impl Collect for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        // /proc/1/mounts is hidden under hidepid; node_exporter then falls back too.
        let text = match read(&src.proc_path("1/mounts")) {
            Err(e) if e.is_not_found() => read(&src.proc_path("mounts"))?,
            other => other?,
        };
        let rootfs = src.rootfs().to_string_lossy();
        let mut mounts = mounts::parse(&text, &rootfs)?;
        mounts.retain(|m| {
            !mounts::mount_point_excluded(&m.mount_point) && !mounts::fs_type_excluded(m.fs_type)
        });
        dedup(&mut mounts);

        let paths = mounts
            .iter()
            .map(|m| src.rootfs().join(m.mount_point.trim_start_matches('/')))
            .collect();
        let usage = self.statfs.all(paths);
        let fs: Vec<(&Mount, Option<Usage>)> =
            mounts.iter().zip(usage).map(|(m, u)| (m, u.ok())).collect();
        // An error is not logged per scrape: device_error already says it, every time.

        let all = || fs.iter();
        let stated = || fs.iter().filter_map(|(m, u)| Some((*m, (*u)?)));
        families::gauge(
            enc,
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            all().map(|(m, u)| (labels(m), if u.is_some() { 0.0 } else { 1.0 })),
        )?;
        families::gauge(
            enc,
            "node_filesystem_readonly",
            "Filesystem read-only status.",
            all().map(|(m, u)| {
                (
                    labels(m),
                    if u.is_some() && m.read_only { 1.0 } else { 0.0 },
                )
            }),
        )?;
        type Pick = fn(&Usage) -> f64;
        let sizes: [(&str, &str, Pick); 5] = [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |u| u.size,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |u| u.free,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |u| u.avail,
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                |u| u.files,
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                |u| u.files_free,
            ),
        ];
        for (name, help, pick) in sizes {
            families::gauge(
                enc,
                name,
                help,
                stated().map(|(m, u)| (labels(m), pick(&u))),
            )?;
        }
        Ok(())
    }
}

fn labels<'a>(m: &'a Mount) -> [(&'static str, &'a str); 3] {
    [
        ("device", m.device),
        ("mountpoint", m.mount_point.as_str()),
        ("fstype", m.fs_type),
    ]
}

/// One series per (device, mountpoint, fstype): the first mount wins, as the
/// duplicate is dropped in node_exporter's output.
fn dedup(mounts: &mut Vec<Mount>) {
    let mut seen = HashSet::new();
    mounts.retain(|m| seen.insert((m.device, m.mount_point.clone(), m.fs_type)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_of_duplicate_mounts() {
        let text = "tmpfs /run tmpfs rw 0 0\ntmpfs /run tmpfs ro 0 0\n/dev/vda / ext4 rw 0 0\n";
        let mut mounts = mounts::parse(text, "/").unwrap();
        dedup(&mut mounts);
        assert_eq!(mounts.len(), 2);
        assert!(!mounts[0].read_only);
    }
}
