//! `InodePressure`: free inodes on the root filesystem (and any configured
//! others) below `inode_min_free_ratio`. Filesystems without a fixed inode
//! count (statvfs reports 0, e.g. btrfs) cannot run out and are skipped.

use std::{path::PathBuf, time::Duration};

use futures::future::BoxFuture;

use super::{
    Check, Verdict, condition,
    disk::measure,
    fsstat::{FsStat, Stater},
    percent,
};
use crate::detect::problem::ConditionDefault;

const KIND: &str = "InodePressure";
const PROBLEM: &str = "InodesLow";

pub(super) struct Inodes {
    paths: Vec<PathBuf>,
    min_free: f64,
    timeout: Duration,
    stater: Stater,
}

impl Inodes {
    pub fn new(paths: Vec<PathBuf>, min_free: f64, timeout: Duration) -> Inodes {
        Inodes {
            paths,
            min_free,
            timeout,
            stater: Stater::default(),
        }
    }
}

impl Check for Inodes {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "InodesAreSufficient",
            "filesystems have enough free inodes",
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

fn judge(measured: &[(String, FsStat)], min_free: f64) -> Option<Verdict> {
    if measured.is_empty() {
        return None;
    }
    let low: Vec<String> = measured
        .iter()
        .filter_map(|(name, st)| {
            let r = st.inodes_free_ratio()?;
            (r < min_free).then(|| {
                format!(
                    "{name} has {} inodes free ({} of {}; below {})",
                    percent(r),
                    st.files_free,
                    st.files,
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

    fn fs(files: u64, free: u64) -> FsStat {
        FsStat {
            blocks: 100,
            blocks_avail: 100,
            files,
            files_free: free,
            readonly: false,
        }
    }

    #[test]
    fn few_inodes_is_a_problem() {
        let m = vec![("root filesystem /".to_string(), fs(1000, 30))];
        assert_eq!(
            judge(&m, 0.05),
            Some(Verdict::Problem {
                reason: PROBLEM.into(),
                message: "root filesystem / has 3.0% inodes free (30 of 1000; below 5.0%)".into()
            })
        );
    }

    #[test]
    fn enough_inodes_or_none_fixed() {
        assert_eq!(
            judge(&[("a".into(), fs(1000, 50))], 0.05),
            Some(Verdict::Healthy)
        );
        assert_eq!(
            judge(&[("btrfs".into(), fs(0, 0))], 0.05),
            Some(Verdict::Healthy)
        );
        assert_eq!(judge(&[], 0.05), None);
    }

    #[tokio::test]
    async fn real_root_filesystem() {
        let mut c = Inodes::new(vec![PathBuf::from("/")], 0.0, Duration::from_secs(5));
        assert_eq!(c.round().await, vec![(KIND, Verdict::Healthy)]);
    }
}
