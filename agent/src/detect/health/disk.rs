//! `DiskSpacePressure`: space left on the root filesystem (and any configured
//! others) below `disk_min_free_ratio`, from statvfs's blocks available to
//! unprivileged users, as the kubelet's `nodefs.available` counts them.

use std::{path::PathBuf, time::Duration};

use futures::future::BoxFuture;
use tracing::warn;

use super::{
    Check, Verdict, condition,
    fsstat::{FsStat, Stater},
    percent,
};
use crate::detect::problem::ConditionDefault;

const KIND: &str = "DiskSpacePressure";
const PROBLEM: &str = "DiskSpaceLow";

pub(super) struct Disk {
    /// The root filesystem first.
    paths: Vec<PathBuf>,
    min_free: f64,
    timeout: Duration,
    stater: Stater,
}

impl Disk {
    pub fn new(paths: Vec<PathBuf>, min_free: f64, timeout: Duration) -> Disk {
        Disk {
            paths,
            min_free,
            timeout,
            stater: Stater::default(),
        }
    }
}

impl Check for Disk {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "DiskSpaceIsSufficient",
            "filesystems have enough free space",
            &[PROBLEM],
        )]
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            let measured = measure(&self.stater, &self.paths, self.timeout).await;
            judge(&measured, self.min_free)
                .map(|v| vec![(KIND, v)])
                .unwrap_or_default()
        })
    }
}

/// statvfs of each path, labelled for messages; failures are logged and left out.
pub(super) async fn measure(
    stater: &Stater,
    paths: &[PathBuf],
    timeout: Duration,
) -> Vec<(String, FsStat)> {
    let mut out = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        match stater.stat(path, timeout).await {
            Ok(st) => out.push((label(i, path), st)),
            Err(e) => warn!(error = %e, "filesystem check skipped this path"),
        }
    }
    out
}

/// "root filesystem /" for the first path, "filesystem /var" for the others.
fn label(i: usize, path: &std::path::Path) -> String {
    if i == 0 {
        format!("root filesystem {}", path.display())
    } else {
        format!("filesystem {}", path.display())
    }
}

/// `None` when nothing could be measured (nothing is reported then).
fn judge(measured: &[(String, FsStat)], min_free: f64) -> Option<Verdict> {
    if measured.is_empty() {
        return None;
    }
    let low: Vec<String> = measured
        .iter()
        .filter_map(|(name, st)| {
            let r = st.avail_ratio()?;
            (r < min_free).then(|| {
                format!(
                    "{name} has {} space free (below {})",
                    percent(r),
                    percent(min_free)
                )
            })
        })
        .collect();
    Some(Verdict::of_findings(PROBLEM, low))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(blocks: u64, avail: u64) -> FsStat {
        FsStat {
            blocks,
            blocks_avail: avail,
            files: 100,
            files_free: 100,
            readonly: false,
        }
    }

    #[test]
    fn below_the_ratio_is_a_problem_naming_the_filesystem() {
        let m = vec![
            ("root filesystem /".to_string(), fs(1000, 42)),
            ("filesystem /var".to_string(), fs(1000, 500)),
        ];
        let Some(Verdict::Problem { reason, message }) = judge(&m, 0.10) else {
            panic!("4.2% free is below 10%");
        };
        assert_eq!(reason, PROBLEM);
        assert_eq!(
            message,
            "root filesystem / has 4.2% space free (below 10.0%)"
        );
    }

    #[test]
    fn enough_space_or_nothing_measured() {
        let m = vec![("root filesystem /".to_string(), fs(1000, 100))];
        assert_eq!(
            judge(&m, 0.10),
            Some(Verdict::Healthy),
            "exactly 10% is fine"
        );
        assert_eq!(judge(&[], 0.10), None);
        let pseudo = vec![("filesystem /proc".to_string(), fs(0, 0))];
        assert_eq!(judge(&pseudo, 0.10), Some(Verdict::Healthy));
    }

    #[tokio::test]
    async fn real_root_filesystem() {
        let mut d = Disk::new(vec![PathBuf::from("/")], 0.10, Duration::from_secs(5));
        let out = d.round().await;
        assert_eq!(out.len(), 1, "statvfs(/) works here");
        assert_eq!(out[0].0, KIND);
        // Whatever this machine has, a ratio of 0 can never be a problem.
        let mut never = Disk::new(vec![PathBuf::from("/")], 0.0, Duration::from_secs(5));
        assert_eq!(never.round().await, vec![(KIND, Verdict::Healthy)]);
        let mut always = Disk::new(vec![PathBuf::from("/")], 1.01, Duration::from_secs(5));
        let out = always.round().await;
        assert!(
            matches!(&out[0].1, Verdict::Problem { message, .. } if message.starts_with("root filesystem / has ")),
            "{out:?}"
        );
    }
}
