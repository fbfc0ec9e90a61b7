//! `CPUPressureStall`, `MemoryPressureStall`, `IOPressureStall`: pressure stall
//! information (`<procfs>/pressure/{cpu,memory,io}`, Linux 4.20+ with PSI on):
//! the share of the last minute in which some task stalled on the resource
//! (`some avg60`) above its threshold. A minute's average, not avg10, so that a
//! short burst (a build, a log rotation) does not flap the condition.
//!
//! Without PSI the check says so once at start and owns no conditions.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tracing::warn;

use super::{Check, Verdict, condition};
use crate::detect::problem::ConditionDefault;

/// (file, condition type, default reason, default message, problem reason, name in messages)
const RESOURCES: [(&str, &str, &str, &str, &str, &str); 3] = [
    (
        "cpu",
        "CPUPressureStall",
        "NoCPUPressureStall",
        "tasks are not stalled waiting for CPU",
        "CPUPressureStallHigh",
        "CPU",
    ),
    (
        "memory",
        "MemoryPressureStall",
        "NoMemoryPressureStall",
        "tasks are not stalled waiting for memory",
        "MemoryPressureStallHigh",
        "memory",
    ),
    (
        "io",
        "IOPressureStall",
        "NoIOPressureStall",
        "tasks are not stalled waiting for I/O",
        "IOPressureStallHigh",
        "I/O",
    ),
];

pub(super) struct Psi {
    dir: PathBuf,
    /// Percent thresholds, in RESOURCES' order.
    limits: [f64; 3],
    /// Read failures already logged, per resource (log once, not every round).
    warned: [bool; 3],
}

impl Psi {
    /// `None` (after one warning) when this kernel has no PSI.
    pub fn new(procfs: &Path, limits: [f64; 3]) -> Option<Psi> {
        let dir = procfs.join("pressure");
        if !dir.is_dir() {
            warn!(dir = %dir.display(),
                "no pressure stall information (PSI) on this kernel; the PSI checks are off");
            return None;
        }
        Some(Psi {
            dir,
            limits,
            warned: [false; 3],
        })
    }
}

impl Check for Psi {
    fn defaults(&self) -> Vec<ConditionDefault> {
        RESOURCES
            .iter()
            .map(|(_, kind, reason, message, problem, _)| {
                condition(kind, reason, message, &[problem])
            })
            .collect()
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(3);
            for (i, &(file, kind, _, _, problem, name)) in RESOURCES.iter().enumerate() {
                let path = self.dir.join(file);
                let avg60 = std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        some_avg60(&text).ok_or_else(|| "no `some avg60=` value".into())
                    });
                match avg60 {
                    Ok(v) => out.push((kind, judge(v, self.limits[i], problem, name))),
                    Err(e) => {
                        if !std::mem::replace(&mut self.warned[i], true) {
                            warn!(file = %path.display(), error = %e, "cannot read PSI; not reporting it");
                        }
                    }
                }
            }
            out
        })
    }
}

/// `avg60` of the `some` line.
fn some_avg60(text: &str) -> Option<f64> {
    let line = text.lines().find_map(|l| l.strip_prefix("some "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("avg60="))?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

fn judge(avg60: f64, limit: f64, problem: &str, name: &str) -> Verdict {
    if avg60 > limit {
        Verdict::Problem {
            reason: problem.to_string(),
            message: format!(
                "some tasks stalled waiting for {name} {avg60:.1}% of the last minute (above {limit}%)"
            ),
        }
    } else {
        Verdict::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_some_avg60() {
        let t = "some avg10=0.00 avg60=12.50 avg300=0.04 total=818525\nfull avg10=0.00 avg60=99.00 avg300=0.01 total=5\n";
        assert_eq!(some_avg60(t), Some(12.5));
        assert_eq!(some_avg60("full avg60=3.0"), None);
        assert_eq!(some_avg60("some avg60=nan"), None);
        assert_eq!(some_avg60("\u{0}garbage"), None);
    }

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pressure")).unwrap();
        for (f, text) in files {
            std::fs::write(dir.path().join("pressure").join(f), text).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn thresholds_per_resource() {
        let dir = fake(&[
            ("cpu", "some avg10=0 avg60=60.00 avg300=0 total=1\n"),
            (
                "memory",
                "some avg10=0 avg60=9.99 avg300=0 total=1\nfull avg10=0 avg60=9 avg300=0 total=1\n",
            ),
            ("io", "some avg10=0 avg60=20.01 avg300=0 total=1\n"),
        ]);
        let mut c = Psi::new(dir.path(), [50.0, 10.0, 20.0]).unwrap();
        assert_eq!(c.defaults().len(), 3);
        let out = c.round().await;
        assert_eq!(
            out,
            vec![
                (
                    "CPUPressureStall",
                    Verdict::Problem {
                        reason: "CPUPressureStallHigh".into(),
                        message: "some tasks stalled waiting for CPU 60.0% of the last minute (above 50%)".into()
                    }
                ),
                ("MemoryPressureStall", Verdict::Healthy),
                (
                    "IOPressureStall",
                    Verdict::Problem {
                        reason: "IOPressureStallHigh".into(),
                        message: "some tasks stalled waiting for I/O 20.0% of the last minute (above 20%)".into()
                    }
                ),
            ]
        );
    }

    #[tokio::test]
    async fn unreadable_resource_is_left_out_and_absent_psi_is_off() {
        let dir = fake(&[("cpu", "garbage"), ("memory", "some avg60=1.0")]);
        let mut c = Psi::new(dir.path(), [50.0, 10.0, 20.0]).unwrap();
        assert_eq!(
            c.round().await,
            vec![("MemoryPressureStall", Verdict::Healthy)]
        );
        let none = tempfile::tempdir().unwrap();
        assert!(Psi::new(none.path(), [1.0; 3]).is_none());
    }

    #[tokio::test]
    async fn real_psi_if_the_kernel_has_it() {
        let has_psi = Path::new("/proc/pressure/memory").exists();
        match Psi::new(Path::new("/proc"), [100.0; 3]) {
            Some(mut c) => {
                assert!(has_psi);
                // Nothing stalls more than 100% of a minute.
                let out = c.round().await;
                assert_eq!(out.len(), 3, "{out:?}");
                assert!(out.iter().all(|(_, v)| *v == Verdict::Healthy));
            }
            None => assert!(!has_psi),
        }
    }
}
