//! `ReadonlyRootFilesystem`: the host's root filesystem mounted (or remounted,
//! e.g. by ext4's `errors=remount-ro`) read-only.
//!
//! The truth is pid 1's view: `<procfs>/1/mountinfo`, the last mount on `/`,
//! read-only if its mount options or its superblock options say `ro`. statvfs
//! of `rootfs` is only the fallback (pid 1 unreadable), because in a container
//! the agent often sees the host's root through a read-only bind mount, which
//! says nothing about the host.

use std::{path::PathBuf, time::Duration};

use futures::future::BoxFuture;
use tracing::warn;

use super::{Check, Verdict, condition, fsstat::Stater};
use crate::detect::problem::ConditionDefault;

const KIND: &str = "ReadonlyRootFilesystem";
const PROBLEM: &str = "RootFilesystemReadOnly";

pub(super) struct Readonly {
    procfs: PathBuf,
    rootfs: PathBuf,
    timeout: Duration,
    stater: Stater,
    warned_fallback: bool,
}

impl Readonly {
    pub fn new(procfs: PathBuf, rootfs: PathBuf, timeout: Duration) -> Readonly {
        Readonly {
            procfs,
            rootfs,
            timeout,
            stater: Stater::default(),
            warned_fallback: false,
        }
    }
}

/// How the root mount was found read-only (or not).
#[derive(Debug, PartialEq)]
struct RootMount {
    readonly: bool,
    /// What was read, for the message.
    how: String,
}

impl Check for Readonly {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "RootFilesystemIsWritable",
            "the root filesystem is mounted read-write",
            &[PROBLEM],
        )]
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            let mountinfo = self.procfs.join("1/mountinfo");
            let found = match std::fs::read_to_string(&mountinfo) {
                Ok(text) => root_mount(&text).map(|readonly| RootMount {
                    readonly,
                    how: format!("{} lists / as read-only", mountinfo.display()),
                }),
                Err(e) => {
                    if !self.warned_fallback {
                        self.warned_fallback = true;
                        warn!(file = %mountinfo.display(), error = %e,
                            "cannot read pid 1's mounts; judging the root filesystem by statvfs of rootfs");
                    }
                    None
                }
            };
            let found = match found {
                Some(f) => f,
                None => match self.stater.stat(&self.rootfs, self.timeout).await {
                    Ok(st) => RootMount {
                        readonly: st.readonly,
                        how: format!("statvfs({}) has ST_RDONLY", self.rootfs.display()),
                    },
                    Err(e) => {
                        warn!(error = %e, "read-only root filesystem check skipped");
                        return Vec::new();
                    }
                },
            };
            vec![(KIND, verdict(found))]
        })
    }
}

fn verdict(m: RootMount) -> Verdict {
    if m.readonly {
        Verdict::Problem {
            reason: PROBLEM.to_string(),
            message: format!("the root filesystem is read-only ({})", m.how),
        }
    } else {
        Verdict::Healthy
    }
}

/// Whether the last mount on `/` in a mountinfo is read-only; `None` if there is
/// none (or the file is garbage).
fn root_mount(mountinfo: &str) -> Option<bool> {
    mountinfo.lines().rev().find_map(parse_line)
}

/// `Some(readonly)` for a line mounting `/`.
fn parse_line(line: &str) -> Option<bool> {
    // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    if fields.get(4) != Some(&"/") {
        return None;
    }
    let mount_opts = fields.get(5)?;
    let super_opts = after.split(' ').nth(2).unwrap_or("");
    let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
    Some(ro(mount_opts) || ro(super_opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
";

    #[test]
    fn parses_the_root_mount() {
        assert_eq!(root_mount(RW), Some(false));
        let remounted = format!("{RW}28 1 8:1 / / ro,relatime - ext4 /dev/sda1 rw\n");
        assert_eq!(
            root_mount(&remounted),
            Some(true),
            "the last mount on / wins"
        );
        let super_ro = "27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 ro,errors=remount-ro";
        assert_eq!(
            root_mount(super_ro),
            Some(true),
            "ext4 remounted ro after errors"
        );
        assert_eq!(root_mount("garbage\n\n- - -"), None);
        assert_eq!(root_mount("27 1 8:1 / /var ro - ext4 x ro"), None);
    }

    #[test]
    fn verdict_names_how_it_knows() {
        let v = verdict(RootMount {
            readonly: true,
            how: "x lists / as read-only".into(),
        });
        assert_eq!(
            v,
            Verdict::Problem {
                reason: PROBLEM.into(),
                message: "the root filesystem is read-only (x lists / as read-only)".into()
            }
        );
    }

    #[tokio::test]
    async fn fake_procfs_and_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1")).unwrap();
        std::fs::write(
            dir.path().join("1/mountinfo"),
            "27 1 8:1 / / ro,relatime - ext4 /dev/sda1 ro\n",
        )
        .unwrap();
        let mut c = Readonly::new(dir.path().into(), dir.path().into(), Duration::from_secs(5));
        assert!(matches!(c.round().await[0].1, Verdict::Problem { .. }));
        // No pid 1 there: statvfs of rootfs (a writable tempdir) decides.
        let empty = tempfile::tempdir().unwrap();
        let mut c = Readonly::new(
            empty.path().into(),
            empty.path().into(),
            Duration::from_secs(5),
        );
        assert_eq!(c.round().await, vec![(KIND, Verdict::Healthy)]);
    }

    #[tokio::test]
    async fn real_proc() {
        // This machine's root is writable (the build writes to it).
        let mut c = Readonly::new("/proc".into(), "/".into(), Duration::from_secs(5));
        assert_eq!(c.round().await, vec![(KIND, Verdict::Healthy)]);
    }
}
